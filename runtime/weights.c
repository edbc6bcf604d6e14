/* weights: --weights / --init W located, its config.json checked against
 * the program's, its tensors read (weights.h has the contract). */
#include "weights.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "safetensors.h"

#define WEIGHTS_FILE "diffusion_pytorch_model.safetensors"

/* diffusers 0.42.1, models/unets/unet_2d.py, UNet2DModel.__init__, in its order. */
const rt_unet_field rt_unet_fields[] = {
	{ "sample_size", "null", NULL, 1 },
	{ "in_channels", "3", NULL, 1 },
	{ "out_channels", "3", NULL, 1 },
	{ "center_input_sample", "false", NULL, 1 },
	{ "time_embedding_type", "\"positional\"", "[\"positional\"]", 1 },
	{ "time_embedding_dim", "null", NULL, 1 },
	{ "freq_shift", "0", NULL, 1 },
	{ "flip_sin_to_cos", "true", NULL, 1 },
	{ "down_block_types", "[\"DownBlock2D\", \"AttnDownBlock2D\", \"AttnDownBlock2D\", "
	  "\"AttnDownBlock2D\"]", NULL, 1 },
	{ "mid_block_type", "\"UNetMidBlock2D\"", "[\"UNetMidBlock2D\", null]", 1 },
	{ "up_block_types", "[\"AttnUpBlock2D\", \"AttnUpBlock2D\", \"AttnUpBlock2D\", "
	  "\"UpBlock2D\"]", NULL, 1 },
	{ "block_out_channels", "[224, 448, 672, 896]", NULL, 1 },
	{ "layers_per_block", "2", NULL, 1 },
	{ "mid_block_scale_factor", "1", NULL, 1 },
	{ "downsample_padding", "1", NULL, 1 },
	{ "downsample_type", "\"conv\"", "[\"conv\"]", 1 },
	{ "upsample_type", "\"conv\"", "[\"conv\"]", 1 },
	{ "dropout", "0.0", NULL, 0 },
	{ "act_fn", "\"silu\"", "[\"silu\", \"swish\"]", 1 },
	{ "attention_head_dim", "8", NULL, 1 },
	{ "norm_num_groups", "32", NULL, 1 },
	{ "attn_norm_num_groups", "null", NULL, 1 },
	{ "norm_eps", "1e-05", NULL, 1 },
	{ "resnet_time_scale_shift", "\"default\"", "[\"default\"]", 1 },
	{ "add_attention", "true", NULL, 1 },
	{ "class_embed_type", "null", "[null]", 1 },
	{ "num_class_embeds", "null", "[null]", 1 },
	{ "num_train_timesteps", "null", NULL, 0 },
};
const int rt_unet_nfields = (int)(sizeof rt_unet_fields / sizeof rt_unet_fields[0]);

const rt_unet_field *rt_unet_field_find(const char *key)
{
	for (int i = 0; i < rt_unet_nfields; i++)
		if (!strcmp(rt_unet_fields[i].key, key))
			return &rt_unet_fields[i];
	return NULL;
}

static int is_silu(const char *s)
{
	return !strcmp(s, "silu") || !strcmp(s, "swish");
}

int rt_unet_same(const rt_json *a, const rt_json *b)
{
	if (a->type != b->type)
		return 0;
	switch (a->type) {
	case RT_JNULL: return 1;
	case RT_JBOOL: return a->b == b->b;
	case RT_JNUM: return a->num == b->num;
	case RT_JSTR: return !strcmp(a->str, b->str) || (is_silu(a->str) && is_silu(b->str));
	case RT_JARR:
	case RT_JOBJ:
		if (a->n != b->n)
			return 0;
		for (int i = 0; i < a->n; i++)
			if ((a->type == RT_JOBJ && strcmp(a->keys[i], b->keys[i])) ||
			    !rt_unet_same(&a->kids[i], &b->kids[i]))
				return 0;
		return 1;
	}
	return 0;
}

/* --- where the files are --------------------------------------------------- */

static int is_file(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* dir/name into out; 0, or -1 when it does not fit. */
static int join(char *out, const char *dir, const char *name)
{
	return snprintf(out, RT_WEIGHTS_PATH, "%s/%s", dir, name) < RT_WEIGHTS_PATH ? 0 : -1;
}

/* A file that holds JSON rather than safetensors: it starts with '{' and
 * read as safetensors its header would run past its end. */
static int looks_like_json(const char *path)
{
	unsigned char head[8];
	struct stat st;
	FILE *f = fopen(path, "rb");
	size_t n = f ? fread(head, 1, sizeof head, f) : 0;
	if (f)
		fclose(f);
	if (n < 1 || head[0] != '{' || stat(path, &st) != 0)
		return 0;
	uint64_t len = 0;
	for (size_t i = n; i-- > 0;)
		len = len << 8 | head[i];
	return n < sizeof head || len > (uint64_t)st.st_size - sizeof head;
}

static int locate_folder(const char *w, rt_weights_src *src, char *err, size_t errlen)
{
	static const char *const places[] = { "", "unet/" };
	char name[64];
	for (size_t i = 0; i < sizeof places / sizeof places[0]; i++) {
		snprintf(name, sizeof name, "%s" WEIGHTS_FILE, places[i]);
		if (join(src->file, w, name) || !is_file(src->file))
			continue;
		snprintf(name, sizeof name, "%sconfig.json", places[i]);
		if (join(src->config, w, name) || !is_file(src->config))
			src->config[0] = 0;
		return RT_OK;
	}
	snprintf(err, errlen, "%s: a folder without " WEIGHTS_FILE " (nor unet/" WEIGHTS_FILE
	         "): not a diffusers model or pipeline folder", w);
	return RT_ERR;
}

static int locate_file(const char *w, rt_weights_src *src, char *err, size_t errlen)
{
	size_t len = strlen(w);
	if ((len >= 5 && !strcmp(w + len - 5, ".json")) || looks_like_json(w)) {
		snprintf(err, errlen, "%s is a JSON file, not weights: give the folder that holds it "
		         "(its " WEIGHTS_FILE " is read and its config.json checked) or a "
		         ".safetensors file", w);
		return RT_ERR;
	}
	if (snprintf(src->file, RT_WEIGHTS_PATH, "%s", w) >= RT_WEIGHTS_PATH) {
		snprintf(err, errlen, "%.200s...: path too long", w);
		return RT_ERR;
	}
	const char *slash = strrchr(w, '/');
	int dirlen = slash ? (int)(slash - w) : 1;
	if (snprintf(src->config, RT_WEIGHTS_PATH, "%.*s/config.json", dirlen, slash ? w : ".") >=
	    RT_WEIGHTS_PATH || !is_file(src->config))
		src->config[0] = 0;
	return RT_OK;
}

int rt_weights_locate(const char *w, rt_weights_src *src, char *err, size_t errlen)
{
	struct stat st;
	src->file[0] = src->config[0] = 0;
	if (stat(w, &st) != 0) {
		snprintf(err, errlen, "%s: cannot open: %s", w, strerror(errno));
		return RT_ERR;
	}
	if (S_ISDIR(st.st_mode))
		return locate_folder(w, src, err, errlen);
	return locate_file(w, src, err, errlen);
}

/* --- the config against the program's --------------------------------------- */

/* obj[key], or the field's default parsed into *dflt. */
static const rt_json *setting(const rt_json *obj, const rt_unet_field *f, rt_json *dflt)
{
	const rt_json *v = rt_json_get(obj, f->key);
	char why[128];
	if (v)
		return v;
	rt_json_parse(f->dflt, strlen(f->dflt), dflt, why, sizeof why);
	return dflt;
}

/* The first computing field on which have and want differ, both values
 * as text; NULL when none does. */
static const char *first_mismatch(const rt_json *have, const rt_json *want, rt_strbuf *there,
                                  rt_strbuf *here)
{
	for (int i = 0; i < rt_unet_nfields; i++) {
		const rt_unet_field *f = &rt_unet_fields[i];
		rt_json d1 = { 0 }, d2 = { 0 };
		const rt_json *a = setting(have, f, &d1), *b = setting(want, f, &d2);
		int same = rt_unet_same(a, b);
		if (!same) {
			rt_json_write(there, a);
			rt_json_write(here, b);
		}
		rt_json_free(&d1);
		rt_json_free(&d2);
		if (f->computes && !same)
			return f->key;
		there->len = here->len = 0;
	}
	return NULL;
}

int rt_weights_check(const char *config_path, const rt_json *want, char *err, size_t errlen)
{
	rt_json have = { 0 };
	rt_strbuf there = { 0 }, here = { 0 };
	if (rt_json_read_file(config_path, &have, err, errlen) != RT_OK)
		return RT_ERR;
	const rt_json *cls = rt_json_get(&have, "_class_name");
	const char *key = NULL;
	int rc = RT_ERR;
	if (have.type != RT_JOBJ)
		snprintf(err, errlen, "%s: not a JSON object", config_path);
	else if (cls && (cls->type != RT_JSTR || strcmp(cls->str, "UNet2DModel")))
		snprintf(err, errlen, "%s: the config of a %s, not of a UNet2DModel", config_path,
		         cls->type == RT_JSTR ? cls->str : "(no class name)");
	else if ((key = first_mismatch(&have, want, &there, &here)))
		snprintf(err, errlen, "%s: %s is %.100s there, %.100s in this program: the weights "
		         "are for another model (ddpmc import writes a script for theirs)", config_path,
		         key, there.oom ? "?" : there.p, here.oom ? "?" : here.p);
	else
		rc = RT_OK;
	rt_json_free(&have);
	rt_sb_free(&there);
	rt_sb_free(&here);
	return rc;
}

int rt_weights_read(const char *w, const rt_json *want, rt_weights_src *src, rt_tensorset *out,
                    char *err, size_t errlen)
{
	if (rt_weights_locate(w, src, err, errlen) != RT_OK)
		return RT_ERR;
	if (want && want->type == RT_JOBJ && src->config[0] &&
	    rt_weights_check(src->config, want, err, errlen) != RT_OK)
		return RT_ERR;
	return rt_st_read(src->file, out, err, errlen);
}
