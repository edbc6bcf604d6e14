/* weights: --weights / --init W located, its config.json and
 * scheduler_config.json checked against the program's, its tensors read
 * (weights.h has the contract). */
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

/* out := the file `name` in the folder of `file`, or "" when there is none. */
static void beside(char *out, const char *file, const char *name)
{
	const char *slash = strrchr(file, '/');
	int dirlen = slash ? (int)(slash - file) : 1;
	if (snprintf(out, RT_WEIGHTS_PATH, "%.*s/%s", dirlen, slash ? file : ".", name) >=
	    RT_WEIGHTS_PATH || !is_file(out))
		out[0] = 0;
}

static int locate_folder(const char *w, rt_weights_src *src, char *err, size_t errlen)
{
	static const char *const places[] = { "", "unet/" };
	char name[64];
	for (size_t i = 0; i < sizeof places / sizeof places[0]; i++) {
		snprintf(name, sizeof name, "%s" WEIGHTS_FILE, places[i]);
		if (join(src->file, w, name) || !is_file(src->file))
			continue;
		beside(src->config, src->file, "config.json");
		if (join(src->scheduler, w, "scheduler/scheduler_config.json") ||
		    !is_file(src->scheduler))
			beside(src->scheduler, src->file, "scheduler_config.json");
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
	beside(src->config, w, "config.json");
	beside(src->scheduler, w, "scheduler_config.json");
	return RT_OK;
}

int rt_weights_locate(const char *w, rt_weights_src *src, char *err, size_t errlen)
{
	struct stat st;
	src->file[0] = src->config[0] = src->scheduler[0] = 0;
	if (stat(w, &st) != 0) {
		snprintf(err, errlen, "%s: cannot open: %s", w, strerror(errno));
		return RT_ERR;
	}
	if (S_ISDIR(st.st_mode))
		return locate_folder(w, src, err, errlen);
	return locate_file(w, src, err, errlen);
}

/* --- the config against the program's --------------------------------------- */

/* obj[key] (none when key is NULL), or the JSON text dflt parsed into *parsed. */
static const rt_json *value_or(const rt_json *obj, const char *key, const char *dflt,
                               rt_json *parsed)
{
	const rt_json *v = key ? rt_json_get(obj, key) : NULL;
	char why[128];
	if (v)
		return v;
	rt_json_parse(dflt, strlen(dflt), parsed, why, sizeof why);
	return parsed;
}

/* The first computing field on which have and want differ, both values
 * as text; NULL when none does. */
static const char *first_mismatch(const rt_json *have, const rt_json *want, rt_strbuf *there,
                                  rt_strbuf *here)
{
	for (int i = 0; i < rt_unet_nfields; i++) {
		const rt_unet_field *f = &rt_unet_fields[i];
		rt_json d1 = { 0 }, d2 = { 0 };
		const rt_json *a = value_or(have, f->key, f->dflt, &d1);
		const rt_json *b = value_or(want, f->key, f->dflt, &d2);
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

/* A config file against the program: the classes it may be of
 * (NULL-terminated; a config without _class_name passes), the words after
 * "the config of a X" for another, the first differing setting (NULL:
 * none; both values into there and here) and what a difference means. */
typedef struct {
	const char *const *classes;
	const char *other_class;
	const char *(*mismatch)(const rt_json *have, const rt_json *want, rt_strbuf *there,
	                        rt_strbuf *here);
	const char *meaning;
} config_check;

static int is_one_of(const rt_json *cls, const char *const *classes)
{
	for (int i = 0; cls->type == RT_JSTR && classes[i]; i++)
		if (!strcmp(cls->str, classes[i]))
			return 1;
	return 0;
}

static int check_config(const char *path, const rt_json *want, const config_check *c, char *err,
                        size_t errlen)
{
	rt_json have = { 0 };
	rt_strbuf there = { 0 }, here = { 0 };
	if (rt_json_read_file(path, &have, err, errlen) != RT_OK)
		return RT_ERR;
	const rt_json *cls = rt_json_get(&have, "_class_name");
	const char *key = NULL;
	int rc = RT_ERR;
	if (have.type != RT_JOBJ)
		snprintf(err, errlen, "%s: not a JSON object", path);
	else if (cls && !is_one_of(cls, c->classes))
		snprintf(err, errlen, "%s: the config of a %s%s", path,
		         cls->type == RT_JSTR ? cls->str : "(no class name)", c->other_class);
	else if ((key = c->mismatch(&have, want, &there, &here)))
		snprintf(err, errlen, "%s: %s is %.100s there, %.100s in this program: %s", path, key,
		         there.oom ? "?" : there.p, here.oom ? "?" : here.p, c->meaning);
	else
		rc = RT_OK;
	rt_json_free(&have);
	rt_sb_free(&there);
	rt_sb_free(&here);
	return rc;
}

int rt_weights_check(const char *config_path, const rt_json *want, char *err, size_t errlen)
{
	static const char *const unet[] = { "UNet2DModel", NULL };
	static const config_check c = { unet, ", not of a UNet2DModel", first_mismatch,
	                                "the weights are for another model (ddpmc import writes a "
	                                "script for theirs)" };
	return check_config(config_path, want, &c, err, errlen);
}

/* --- the scheduler config against the program's ------------------------------ */

const char *rt_beta_schedule_name(const char *schedule)
{
	return !strcmp(schedule, "linear") ? "linear"
	     : !strcmp(schedule, "cosine") ? "squaredcos_cap_v2" : NULL;
}

/* DDPMScheduler's settings (diffusers 0.42.1) that change what the program
 * computes, each with diffusers' default, the program's meta key (NULL:
 * ddpmc implements the default alone) and the program's value without it
 * (lua/ddpm/program.lua's defaults). A row with if_meta is compared only
 * while the program's if_meta is if_value (its default when absent): the
 * betas of a linear schedule (squaredcos_cap_v2 ignores them), the clip
 * range of a clipping sampler.
 * Not compared: timestep_spacing, which is not compiled in (OUT sample
 * --spacing takes it at each run, leading unless given), and
 * dynamic_thresholding_ratio and sample_max_value, unused while
 * thresholding is off. */
static const struct {
	const char *key, *dflt, *meta, *meta_dflt, *if_meta, *if_value;
} sched_fields[] = {
	{ "num_train_timesteps", "1000", "timesteps", "1000", NULL, NULL },
	{ "beta_schedule", "\"linear\"", "schedule", "\"linear\"", NULL, NULL },
	{ "beta_start", "0.0001", "beta_start", "0.0001", "schedule", "\"linear\"" },
	{ "beta_end", "0.02", "beta_end", "0.02", "schedule", "\"linear\"" },
	{ "trained_betas", "null", NULL, "null", NULL, NULL },
	{ "rescale_betas_zero_snr", "false", NULL, "false", NULL, NULL },
	{ "prediction_type", "\"epsilon\"", "prediction", "\"epsilon\"", NULL, NULL },
	{ "variance_type", "\"fixed_small\"", "variance", "\"fixed_small\"", NULL, NULL },
	{ "clip_sample", "true", "clip_sample", "true", NULL, NULL },
	{ "clip_sample_range", "1.0", "clip_sample_range", "1.0", "clip_sample", "true" },
	{ "thresholding", "false", NULL, "false", NULL, NULL },
	{ "steps_offset", "0", NULL, "0", NULL, NULL },
	{ "set_alpha_to_one", "true", NULL, "true", NULL, NULL },      /* DDIMScheduler's */
};

/* Whether row i applies to the program meta. */
static int sched_applies(int i, const rt_json *meta)
{
	rt_json d = { 0 };
	const char *key = sched_fields[i].if_meta, *value = sched_fields[i].if_value;
	if (!key || !rt_json_get(meta, key))
		return 1;
	int same = rt_unet_same(rt_json_get(meta, key), value_or(NULL, NULL, value, &d));
	rt_json_free(&d);
	return same;
}

/* The first setting on which the scheduler config have and the program
 * meta differ, both values as text (diffusers' names); NULL when none does. */
static const char *sched_mismatch(const rt_json *have, const rt_json *meta, rt_strbuf *there,
                                  rt_strbuf *here)
{
	for (int i = 0; i < (int)(sizeof sched_fields / sizeof *sched_fields); i++) {
		rt_json d1 = { 0 }, d2 = { 0 };
		const rt_json *a = value_or(have, sched_fields[i].key, sched_fields[i].dflt, &d1);
		const rt_json *b = value_or(meta, sched_fields[i].meta, sched_fields[i].meta_dflt, &d2);
		const char *renamed = b->type == RT_JSTR && !strcmp(sched_fields[i].key, "beta_schedule")
		                    ? rt_beta_schedule_name(b->str) : NULL;
		rt_json as_named = { .type = RT_JSTR, .str = (char *)renamed };
		if (renamed)
			b = &as_named;
		int differ = sched_applies(i, meta) && !rt_unet_same(a, b);
		if (differ) {
			rt_json_write(there, a);
			rt_json_write(here, b);
		}
		rt_json_free(&d1);
		rt_json_free(&d2);
		if (differ)
			return sched_fields[i].key;
	}
	return NULL;
}

int rt_weights_check_scheduler(const char *path, const rt_json *meta, char *err, size_t errlen)
{
	static const char *const schedulers[] = { "DDPMScheduler", "DDIMScheduler", NULL };
	static const config_check c = { schedulers, "; ddpmc samples as DDPMScheduler and "
	                                "DDIMScheduler do (give the unet folder to take the weights "
	                                "alone)", sched_mismatch, "the pipeline samples with another "
	                                "scheduler (ddpmc import writes a script for it)" };
	return check_config(path, meta, &c, err, errlen);
}

int rt_weights_read(const char *w, const rt_json *meta, rt_weights_src *src, rt_tensorset *out,
                    char *err, size_t errlen)
{
	if (rt_weights_locate(w, src, err, errlen) != RT_OK)
		return RT_ERR;
	const rt_json *config = meta ? rt_json_get(meta, "config") : NULL;
	if (config && config->type == RT_JOBJ && src->config[0] &&
	    rt_weights_check(src->config, config, err, errlen) != RT_OK)
		return RT_ERR;
	if (meta && rt_json_get(meta, "timesteps") && src->scheduler[0] &&
	    rt_weights_check_scheduler(src->scheduler, meta, err, errlen) != RT_OK)
		return RT_ERR;
	return rt_st_read(src->file, out, err, errlen);
}
