/* checkpoint.c: what train --resume, sample and eval check in a
 * checkpoint before they use it (the checksums are safetensors.c's):
 * every metadata number they read lies in its range, every weight is
 * finite, and a run resumes only under the configuration that began it. */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int cli_ckpt_int(const cli_opts *o, const rt_tensorset *ckpt, const char *path, const char *key,
                 int64_t lo, int64_t hi, int64_t *out)
{
	const char *v = rt_get_meta(ckpt, key);
	char *end;
	if (!v)
		return 0;
	long long x = strtoll(v, &end, 10);
	if (end == v || *end || x < lo || x > hi)
		return cli_fail(o, "%s: metadata %s = '%.40s' is not an integer in [%" PRId64 ", %" PRId64
		                "]", path, key, v, lo, hi);
	*out = x;
	return 0;
}

int cli_ckpt_finite(const cli_opts *o, const rt_tensorset *s, const char *what)
{
	int64_t at;
	const rt_tensor *t = rt_set_nonfinite(s, &at);
	if (!t)
		return 0;
	double v = rt_load(t->dtype, t->data, at);
	return cli_fail(o, "%s: '%s' holds %g at element %" PRId64 ": the weights are not finite", what,
	                t->name, isnan(v) ? NAN : v, at);       /* "nan", whatever its sign */
}

/* What may change between the start of a run and --resume: the batch
 * (resume_meta warns) and the optimizer's defaults (the run keeps the
 * checkpoint's hyperparameters, and flags set them). */
static int may_change(const char *key)
{
	return strcmp(key, "batch") == 0 || strcmp(key, "optimizer") == 0;
}

/* j[key] as JSON text into b ("absent" when j lacks it). */
static void value_text(rt_strbuf *b, const rt_json *j, const char *key)
{
	const rt_json *v = rt_json_get(j, key);
	if (v)
		rt_json_write(b, v);
	else
		rt_sb_puts(b, "absent");
}

/* The first key of a or b, outside may_change, whose values differ; NULL
 * when none does. There and here get both values as text. */
static const char *first_difference(const rt_json *a, const rt_json *b, rt_strbuf *there,
                                    rt_strbuf *here)
{
	for (int pass = 0; pass < 2; pass++) {
		const rt_json *keys = pass ? b : a;
		for (int k = 0; k < keys->n; k++) {
			const char *key = keys->keys[k];
			if (may_change(key))
				continue;
			there->len = here->len = 0;
			value_text(there, a, key);
			value_text(here, b, key);
			if (there->oom || here->oom || strcmp(there->p, here->p) != 0)
				return key;
		}
	}
	return NULL;
}

int cli_ckpt_config(const cli_opts *o, const rt_tensorset *ckpt, const char *path,
                    const rt_program *p)
{
	const char *text = rt_get_meta(ckpt, "config");
	rt_json saved = { 0 };
	rt_strbuf there = { 0 }, here = { 0 };
	char err[160];
	if (!text)
		return 0;
	int rc = rt_json_parse(text, strlen(text), &saved, err, sizeof err) || saved.type != RT_JOBJ
	         ? cli_fail(o, "%s: metadata config is not a JSON object", path) : 0;
	const char *key = rc ? NULL : first_difference(&saved, p->meta, &there, &here);
	if (key)
		rc = cli_fail(o, "%s was trained by a program of another configuration: %s is %.60s "
		              "there, %.60s here (resume with the program that began the run, or "
		              "train afresh into another --out)", path, key, there.p, here.p);
	rt_json_free(&saved);
	rt_sb_free(&there);
	rt_sb_free(&here);
	return rc;
}
