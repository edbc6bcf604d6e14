/* import: `ddpmc import DIR -o MODEL.lua [--force]` writes the model script
 * of a diffusers UNet2DModel folder: nn.UNet2DModel with every setting of
 * its config.json, and ddpm.program.diffusion with its scheduler's
 * (docs/cli.md, "ddpmc import").
 *
 *   DIR                      a model folder (config.json) or a pipeline folder
 *                            (model_index.json, unet/config.json)
 *   scheduler_config.json    DIR/scheduler/, else beside config.json; absent:
 *                            DDPMScheduler's defaults
 *
 * Every UNet2DModel setting (runtime/weights.h, rt_unet_fields) is carried
 * as it is; a value ddpmc does not implement, and a key it does not know
 * that is not null, is refused naming the file, the key and the value.
 * Keys starting with '_' (diffusers' bookkeeping: _class_name,
 * _diffusers_version, _name_or_path) are ignored. The script is written to
 * MODEL.lua.tmp.PID, run by the frontend (so whatever nn.UNet2DModel
 * refuses is refused here, not at compile time) and renamed over MODEL.lua;
 * an existing MODEL.lua is kept unless --force. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "driver.h"
#include "json.h"
#include "weights.h"

enum { PATH_LEN = 4096 };

typedef struct {
	char config[PATH_LEN], scheduler[PATH_LEN];     /* scheduler "": absent */
	rt_json unet, sched;                            /* sched: zeroed (no keys) when absent */
	char err[PATH_LEN + 512];
} import_src;

/* The program part of the script, from the scheduler config. */
typedef struct {
	long long timesteps;
	const char *schedule, *prediction, *variance, *spacing;
	int clip_sample;
	double clip_range;
	double beta_start, beta_end;    /* linear only */
} import_program;

static int is_file(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int fail(import_src *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(import_src *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->err, sizeof s->err, fmt, ap);
	va_end(ap);
	return -1;
}

/* --- the files ------------------------------------------------------------- */

/* config.json: DIR/unet/ in a pipeline folder, else DIR/; the scheduler's
 * in DIR/scheduler/, else beside config.json. */
static int locate(const char *dir, import_src *s)
{
	char unet[PATH_LEN];
	struct stat st;
	if (stat(dir, &st) != 0)
		return fail(s, "%s: %s", dir, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return fail(s, "%s: not a folder (give the diffusers model or pipeline folder)", dir);
	snprintf(unet, sizeof unet, "%s/unet/config.json", dir);
	snprintf(s->config, sizeof s->config, "%s/config.json", dir);
	if (is_file(unet))
		snprintf(s->config, sizeof s->config, "%s", unet);
	else if (!is_file(s->config))
		return fail(s, "%s: no config.json (nor unet/config.json): not a diffusers model or "
		            "pipeline folder", dir);
	snprintf(s->scheduler, sizeof s->scheduler, "%s/scheduler/scheduler_config.json", dir);
	if (is_file(s->scheduler))
		return 0;
	snprintf(s->scheduler, sizeof s->scheduler, "%.*s/scheduler_config.json",
	         (int)(strrchr(s->config, '/') - s->config), s->config);
	if (!is_file(s->scheduler))
		s->scheduler[0] = 0;
	return 0;
}

/* path as a JSON object into *j; its _class_name, when it has one, one of
 * `classes` (NULL-terminated). */
static int read_config(import_src *s, const char *path, const char *const *classes, rt_json *j)
{
	if (rt_json_read_file(path, j, s->err, sizeof s->err) != RT_OK)
		return -1;
	if (j->type != RT_JOBJ)
		return fail(s, "%s: not a JSON object", path);
	const rt_json *c = rt_json_get(j, "_class_name");
	for (int i = 0; c && classes[i]; i++)
		if (c->type == RT_JSTR && !strcmp(c->str, classes[i]))
			return 0;
	if (!c)
		return 0;
	return fail(s, "%s: the config of a %s; ddpmc imports %s", path,
	            c->type == RT_JSTR ? c->str : "(no class name)", classes[0]);
}

/* --- the UNet's settings ----------------------------------------------------- */

/* v as compact JSON text, for messages. */
static const char *text_of(const rt_json *v, rt_strbuf *b)
{
	b->len = 0;
	rt_json_write(b, v);
	return b->oom || !b->p ? "?" : b->p;
}

/* Whether v is one of the values of the JSON array `supported`. */
static int supported(const char *list, const rt_json *v)
{
	rt_json a = { 0 };
	char why[128];
	int ok = 0;
	rt_json_parse(list, strlen(list), &a, why, sizeof why);
	for (int i = 0; i < a.n && !ok; i++)
		ok = rt_unet_same(&a.kids[i], v);
	rt_json_free(&a);
	return ok;
}

/* Every key of config.json is bookkeeping, or a setting ddpmc implements
 * with a value it implements. */
static int check_unet(import_src *s)
{
	rt_strbuf b = { 0 };
	int rc = 0;
	for (int i = 0; i < s->unet.n && !rc; i++) {
		const char *key = s->unet.keys[i];
		const rt_json *v = &s->unet.kids[i];
		const rt_unet_field *f = rt_unet_field_find(key);
		if (key[0] == '_')
			continue;
		if (!f && v->type != RT_JNULL)
			rc = fail(s, "%s: %s = %.200s is not supported (ddpmc knows no UNet2DModel setting "
			          "'%s')", s->config, key, text_of(v, &b), key);
		else if (f && f->supported && !supported(f->supported, v))
			rc = fail(s, "%s: %s = %.200s is not supported (ddpmc supports %s)", s->config, key,
			          text_of(v, &b), f->supported);
	}
	rt_sb_free(&b);
	return rc;
}

/* The image (C, H, W): in_channels and sample_size (a number or [H, W]). */
static int image_of(import_src *s, long long chw[3])
{
	const rt_json *c = rt_json_get(&s->unet, "in_channels");
	const rt_json *size = rt_json_get(&s->unet, "sample_size");
	chw[0] = c ? (c->isint ? c->i : 0) : 3;
	if (size && size->type == RT_JNUM && size->isint)
		chw[1] = chw[2] = size->i;
	else if (size && size->type == RT_JARR && size->n == 2 && size->kids[0].isint &&
	         size->kids[1].isint)
		chw[1] = size->kids[0].i, chw[2] = size->kids[1].i;
	else
		return fail(s, "%s: sample_size must be the image size (a number or [H, W]); ddpmc "
		            "compiles for one image size", s->config);
	for (int k = 0; k < 3; k++)
		if (chw[k] < 1 || chw[k] > 65536)
			return fail(s, "%s: in_channels and sample_size must be integers from 1 to 65536",
			            s->config);
	return 0;
}

/* --- the scheduler's settings -------------------------------------------------- */

/* sched[key] as a string from `names` (mapped to the value after it in
 * `names`: pairs "diffusers", "ddpmc"), or its default when absent. */
static int pick(import_src *s, const char *key, const char *const *names, const char **out)
{
	const rt_json *v = rt_json_get(&s->sched, key);
	rt_strbuf b = { 0 }, list = { 0 };
	if (!v)
		return 0;
	for (int i = 0; names[i]; i += 2)
		if (v->type == RT_JSTR && !strcmp(v->str, names[i])) {
			*out = names[i + 1];
			return 0;
		}
	for (int i = 0; names[i]; i += 2)
		rt_sb_printf(&list, "%s%s", i ? ", " : "", names[i]);
	int rc = fail(s, "%s: %s = %.200s is not supported (ddpmc supports %s)", s->scheduler, key,
	              text_of(v, &b), list.p ? list.p : "");
	rt_sb_free(&b);
	rt_sb_free(&list);
	return rc;
}

/* Keys a scheduler config may hold with only these values (DDPMScheduler's
 * defaults), each a JSON array of the values ddpmc implements. */
static const struct { const char *key, *values; } sched_fixed[] = {
	{ "trained_betas", "[null]" }, { "thresholding", "[false]" },
	{ "rescale_betas_zero_snr", "[false]" }, { "steps_offset", "[0]" },
	{ "set_alpha_to_one", "[true]" },       /* DDIMScheduler's; ddpmc's last step ends at 1 */
};

/* Keys read by program_of, those without effect while thresholding is
 * off, and the early diffusers' array library ("tensor_format": "pt"). */
static const char *const sched_read[] = {
	"num_train_timesteps", "beta_schedule", "beta_start", "beta_end", "prediction_type",
	"variance_type", "clip_sample", "clip_sample_range", "timestep_spacing",
	"dynamic_thresholding_ratio", "sample_max_value", "tensor_format",
};

/* key = v of the scheduler config is one ddpmc reads or implements. */
static int check_sched_key(import_src *s, const char *key, const rt_json *v)
{
	rt_strbuf b = { 0 };
	int rc = 0, known = key[0] == '_';
	for (size_t i = 0; i < sizeof sched_read / sizeof *sched_read && !known; i++)
		known = !strcmp(key, sched_read[i]);
	for (size_t i = 0; i < sizeof sched_fixed / sizeof *sched_fixed && !known; i++) {
		if (strcmp(key, sched_fixed[i].key))
			continue;
		known = 1;
		if (!supported(sched_fixed[i].values, v))
			rc = fail(s, "%s: %s = %.200s is not supported (ddpmc supports %s)", s->scheduler,
			          key, text_of(v, &b), sched_fixed[i].values);
	}
	if (!known && v->type != RT_JNULL)
		rc = fail(s, "%s: %s = %.200s is not supported (ddpmc knows no scheduler setting '%s')",
		          s->scheduler, key, text_of(v, &b), key);
	rt_sb_free(&b);
	return rc;
}

/* sched[key] as a number in [lo, hi] into *out (left when absent). */
static int number(import_src *s, const char *key, double lo, double hi, int integer, double *out)
{
	const rt_json *v = rt_json_get(&s->sched, key);
	if (!v)
		return 0;
	if (v->type != RT_JNUM || !(v->num >= lo && v->num <= hi) || (integer && !v->isint))
		return fail(s, "%s: %s must be %s from %g to %g", s->scheduler, key,
		            integer ? "an integer" : "a number", lo, hi);
	*out = v->num;
	return 0;
}

/* The program's settings from the scheduler config (DDPMScheduler's
 * defaults where it is absent or silent). */
static int program_of(import_src *s, import_program *pr)
{
	static const char *const schedules[] = { "linear", "linear", "squaredcos_cap_v2", "cosine",
	                                          NULL };
	static const char *const predictions[] = { "epsilon", "epsilon", "v_prediction",
	                                           "v_prediction", "sample", "sample", NULL };
	static const char *const variances[] = { "fixed_small", "fixed_small", "fixed_large",
	                                         "fixed_large", NULL };
	static const char *const spacings[] = { "leading", "leading", "trailing", "trailing",
	                                        "linspace", "linspace", NULL };
	double T = 1000, range = 1;
	const rt_json *clip = rt_json_get(&s->sched, "clip_sample");
	*pr = (import_program){ 1000, "linear", "epsilon", "fixed_small", "leading", 1, 1.0, 1e-4,
	                        0.02 };
	for (int i = 0; i < s->sched.n; i++)
		if (check_sched_key(s, s->sched.keys[i], &s->sched.kids[i]))
			return -1;
	if (clip && clip->type != RT_JBOOL)
		return fail(s, "%s: clip_sample must be true or false", s->scheduler);
	pr->clip_sample = clip ? clip->b : 1;
	if (pick(s, "beta_schedule", schedules, &pr->schedule) ||
	    pick(s, "prediction_type", predictions, &pr->prediction) ||
	    pick(s, "variance_type", variances, &pr->variance) ||
	    pick(s, "timestep_spacing", spacings, &pr->spacing) ||
	    number(s, "num_train_timesteps", 2, 1e6, 1, &T) ||
	    number(s, "clip_sample_range", 1e-6, 1e6, 0, &range) ||
	    number(s, "beta_start", 0, 1, 0, &pr->beta_start) ||
	    number(s, "beta_end", 0, 1, 0, &pr->beta_end))
		return -1;
	pr->timesteps = (long long)T;
	pr->clip_range = range;
	return 0;
}

/* --- the script ---------------------------------------------------------------- */

/* s as a Lua string literal. */
static void lua_string(rt_strbuf *b, const char *s)
{
	rt_sb_puts(b, "\"");
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			rt_sb_printf(b, "\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			rt_sb_printf(b, "\\%03d", c);
		else
			rt_sb_put(b, s, 1);
	}
	rt_sb_puts(b, "\"");
}

/* v as a Lua value: null is nn.None, arrays are tables. */
static void lua_value(rt_strbuf *b, const rt_json *v)
{
	switch (v->type) {
	case RT_JNULL: rt_sb_puts(b, "nn.None"); return;
	case RT_JBOOL: rt_sb_puts(b, v->b ? "true" : "false"); return;
	case RT_JNUM:
		if (v->isint)
			rt_sb_printf(b, "%lld", (long long)v->i);
		else
			rt_sb_json_number(b, v->num);
		return;
	case RT_JSTR: lua_string(b, v->str); return;
	case RT_JARR:
	case RT_JOBJ:           /* no UNet2DModel setting is an object: check_unet refused it */
		rt_sb_puts(b, "{ ");
		for (int i = 0; i < v->n; i++) {
			rt_sb_puts(b, i ? ", " : "");
			lua_value(b, &v->kids[i]);
		}
		rt_sb_puts(b, " }");
		return;
	}
}

/* nn.UNet2DModel { every setting of config.json, in its order }. */
static void script_unet(rt_strbuf *b, const import_src *s)
{
	rt_sb_puts(b, "local unet = nn.UNet2DModel {\n");
	for (int i = 0; i < s->unet.n; i++) {
		if (s->unet.keys[i][0] == '_' || !rt_unet_field_find(s->unet.keys[i]))
			continue;
		rt_sb_printf(b, "  %s = ", s->unet.keys[i]);
		lua_value(b, &s->unet.kids[i]);
		rt_sb_puts(b, ",\n");
	}
	rt_sb_puts(b, "}\n\n");
}

static void script_program(rt_strbuf *b, const import_program *pr, const long long chw[3])
{
	rt_sb_printf(b, "ddpm.program.diffusion {\n"
	             "  model = unet, image = { %lld, %lld, %lld }, batch = ddpm.option(\"batch\", 16),\n"
	             "  schedule = \"%s\", timesteps = %lld,\n",
	             chw[0], chw[1], chw[2], pr->schedule, pr->timesteps);
	if (!strcmp(pr->schedule, "linear")) {
		rt_sb_puts(b, "  beta_start = ");
		rt_sb_json_number(b, pr->beta_start);
		rt_sb_puts(b, ", beta_end = ");
		rt_sb_json_number(b, pr->beta_end);
		rt_sb_puts(b, ",\n");
	}
	rt_sb_printf(b, "  prediction = \"%s\", variance = \"%s\",\n"
	             "  clip_sample = %s, clip_sample_range = ",
	             pr->prediction, pr->variance, pr->clip_sample ? "true" : "false");
	rt_sb_json_number(b, pr->clip_range);
	rt_sb_puts(b, ",\n"
	           "  optimizer = { lr = ddpm.option(\"lr\", 1e-4), warmup = ddpm.option(\"warmup\", 500),\n"
	           "                clip = 1.0, ema = ddpm.option(\"ema\", 0.9999), ema_warmup = \"power\",\n"
	           "                ema_power = 3 / 4 },\n}\n");
}

/* s in a Lua comment: control characters (a newline would end it) as '?'. */
static void comment_text(rt_strbuf *b, const char *s)
{
	for (; *s; s++)
		rt_sb_put(b, (unsigned char)*s < 0x20 || *s == 0x7f ? "?" : s, 1);
}

static void script(rt_strbuf *b, const char *dir, const import_src *s, const import_program *pr,
                   const long long chw[3])
{
	rt_sb_puts(b, "-- Written by `ddpmc import ");
	comment_text(b, dir);
	rt_sb_puts(b, "`:\n--   diffusers' UNet2DModel with every setting of ");
	comment_text(b, s->config);
	rt_sb_puts(b, ",\n--   the diffusion program of ");
	comment_text(b, s->scheduler[0] ? s->scheduler : "DDPMScheduler's defaults");
	rt_sb_puts(b, ".\n-- Its weights: OUT sample --weights DIR, OUT train --init DIR.\n");
	if (strcmp(pr->spacing, "leading"))
		rt_sb_printf(b, "-- The scheduler samples with timestep_spacing \"%s\": OUT sample "
		             "--spacing %s.\n", pr->spacing, pr->spacing);
	rt_sb_puts(b, "local ddpm = require \"ddpm\"\nlocal nn = ddpm.nn\n\n");
	script_unet(b, s);
	script_program(b, pr, chw);
}

/* --- writing ------------------------------------------------------------------- */

/* text into the new file tmp (beside out), flushed to disk. */
static int write_new(import_src *s, const char *out, const char *tmp, const char *text, size_t len)
{
	int e = rt_write_file(tmp, text, len, 1);
	return e ? fail(s, "cannot write %s: %s", out, strerror(e)) : 0;
}

/* The script runs: nn.UNet2DModel and the program accept every setting. */
static int check_script(import_src *s, const drv_args *a, const char *tmp)
{
	char err[2048];
	ir_graph *g = fe_load_limited(tmp, NULL, 0, &a->limits, err, sizeof err);
	if (g) {
		ir_free(g);
		return 0;
	}
	const char *why = strstr(err, ": ");
	return fail(s, "%s: ddpmc cannot build this model: %s", s->config,
	            why && !strncmp(err, tmp, strlen(tmp)) ? why + 2 : err);
}

/* tmp becomes out: over it with --force, else only when out does not exist. */
static int publish(import_src *s, const drv_args *a, const char *tmp)
{
	int rc = a->force ? rename(tmp, a->output) : link(tmp, a->output);
	int e = errno;
	unlink(tmp);
	if (rc == 0)
		return 0;
	if (e == EEXIST)
		return fail(s, "%s exists: --force replaces it", a->output);
	return fail(s, "cannot write %s: %s", a->output, strerror(e));
}

static int import_to(import_src *s, const drv_args *a, const char *text, size_t len)
{
	char tmp[PATH_LEN + 32];
	snprintf(tmp, sizeof tmp, "%s.tmp.%ld", a->output, (long)getpid());
	if (write_new(s, a->output, tmp, text, len))
		return -1;
	if (check_script(s, a, tmp)) {
		unlink(tmp);
		return -1;
	}
	return publish(s, a, tmp);
}

static int import_run(import_src *s, const drv_args *a, rt_strbuf *b)
{
	static const char *const unets[] = { "UNet2DModel", NULL };
	static const char *const schedulers[] = { "DDPMScheduler", "DDIMScheduler", NULL };
	import_program pr;
	long long chw[3];
	if (!a->force && access(a->output, F_OK) == 0)
		return fail(s, "%s exists: --force replaces it", a->output);
	if (locate(a->model, s) || read_config(s, s->config, unets, &s->unet) || check_unet(s) ||
	    image_of(s, chw))
		return -1;
	if (s->scheduler[0] && read_config(s, s->scheduler, schedulers, &s->sched))
		return -1;
	if (program_of(s, &pr))
		return -1;
	script(b, a->model, s, &pr, chw);
	if (b->oom)
		return fail(s, "out of memory");
	return import_to(s, a, b->p, b->len);
}

int drv_import(const drv_args *a)
{
	import_src *s = calloc(1, sizeof *s);
	rt_strbuf b = { 0 };
	if (!a->output) {
		fputs("ddpmc import: -o MODEL.lua is required\n", stderr);
		free(s);
		return -1;
	}
	int rc = s ? import_run(s, a, &b) : -1;
	if (rc)
		fprintf(stderr, "ddpmc import: %s\n", s ? s->err : "out of memory");
	else
		printf("wrote %s from %s\nnext: ddpmc compile %s, then OUT sample --weights %s\n",
		       a->output, s->config, a->output, a->model);
	if (s) {
		rt_json_free(&s->unet);
		rt_json_free(&s->sched);
	}
	free(s);
	rt_sb_free(&b);
	return rc;
}
