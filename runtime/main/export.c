/* export.c: `OUT export --ckpt FILE --out DIR [--no-ema]` — a folder that
 * diffusers loads (docs/semantics.md §3, §7); for a classifier (ddpm.program.
 * classifier) DIR/model.safetensors, its parameters alone.
 *
 * The folder (flat, the layout of the google/ddpm-cifar10-32 hub repo):
 *   DIR/diffusion_pytorch_model.safetensors  the UNet's parameters under their
 *                                  diffusers names (every trainable param of
 *                                  the program), F32, from ema.NAME when the
 *                                  checkpoint has it (unless --no-ema), else NAME
 *   DIR/config.json                meta.config (the UNet2DModel config as
 *                                  diffusers writes it) + _class_name,
 *                                  _diffusers_version
 *   DIR/scheduler_config.json      DDPMScheduler: meta.timesteps, meta.schedule
 *                                  (linear | squaredcos_cap_v2), meta.variance,
 *                                  meta.prediction, meta.beta_start..beta_end
 *                                  (default 1e-4..0.02), clip_sample
 *   DIR/model_index.json           DDPMPipeline = unet UNet2DModel + scheduler
 *                                  DDPMScheduler
 * so that both load it:
 *   UNet2DModel.from_pretrained(DIR)   reads config.json and the weights;
 *   DDPMPipeline.from_pretrained(DIR)  reads model_index.json and, as DIR has
 *       no unet/ or scheduler/ subfolder, loads each component from DIR itself
 *       (diffusers' pipeline_loading_utils.load_sub_model), i.e. the same
 *       config.json, weights and scheduler_config.json.
 * Our own programs read the weights back with `ddpmc run --weights` or
 * `OUT sample --weights`.
 *
 * The checkpoint is checked against the program before anything is written
 * (export_check): a checkpoint of another model fails naming the first
 * mismatching tensors and their shapes, and DIR is not created. Each file is
 * written atomically (PATH.tmp.<pid>, fsync, rename, fsync of DIR), so a
 * failure leaves every file either as it was or complete. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "json.h"
#include "safetensors.h"

#define EXPORT_MAX_LISTED 3     /* problems named in the one-line message */

/* --- the checkpoint against the program ------------------------------------ */

static int same_shape(const rt_tensor *t, const rt_param *q)
{
	if (t->rank != q->rank)
		return 0;
	for (int k = 0; k < q->rank; k++)
		if (t->shape[k] != q->shape[k])
			return 0;
	return 1;
}

static void add_problem(rt_strbuf *b, int *n, const char *text)
{
	if ((*n)++ >= EXPORT_MAX_LISTED)
		return;
	if (*n > 1)
		rt_sb_puts(b, "; ");
	rt_sb_puts(b, text);
}

/* Whether `w` (tensors read from `what`) is a checkpoint of program p:
 * every trainable param is present, every tensor of w that names a state
 * tensor of p has that tensor's shape, and w has no tensor p does not know.
 * Returns the number of problems (0: fine); when there are any, err holds one
 * line naming the first EXPORT_MAX_LISTED: shape mismatches and missing
 * tensors in the program's param order, then unknown tensors in file order:
 *   "ckpt.safetensors: not a checkpoint of this model (2 mismatching tensors):
 *    'conv_in.weight' has shape (8, 1, 3, 3), the model expects (16, 1, 3, 3);
 *    'conv_out.bias' is missing (the model expects F32 (1))"
 * rt_state_init accepts everything this accepts; sample and train (--resume)
 * can call this first to name several tensors instead of the first one. */
static int export_check(const rt_program *p, const rt_tensorset *w, const char *what, char *err,
                        size_t errlen)
{
	rt_strbuf b = { 0 };
	char s1[96], s2[96], line[1400];
	int n = 0;
	for (int i = 0; i < p->nparams; i++) {
		const rt_param *q = &p->params[i];
		const rt_tensor *t = rt_set_find(w, q->name);
		rt_shape_str(q->rank, q->shape, s2, sizeof s2);
		if (t && !same_shape(t, q)) {
			snprintf(line, sizeof line, "'%.1000s' has shape %s, the model expects %s", q->name,
			         rt_shape_str(t->rank, t->shape, s1, sizeof s1), s2);
			add_problem(&b, &n, line);
		} else if (!t && q->trainable) {
			snprintf(line, sizeof line, "'%.1000s' is missing (the model expects %s %s)", q->name,
			         rt_dtype_name(q->dtype), s2);
			add_problem(&b, &n, line);
		}
	}
	for (int i = 0; i < w->n; i++) {
		const rt_tensor *t = &w->t[i];
		if (rt_program_param(p, t->name))
			continue;
		snprintf(line, sizeof line, "'%.1000s' (%s %s) is not in the model", t->name,
		         rt_dtype_name(t->dtype), rt_shape_str(t->rank, t->shape, s2, sizeof s2));
		add_problem(&b, &n, line);
	}
	if (n) {
		snprintf(err, errlen, "%s: not a checkpoint of this model (%d mismatching tensor%s): %s%s",
		         what, n, n == 1 ? "" : "s", b.oom ? "out of memory" : b.p,
		         n > EXPORT_MAX_LISTED ? "; ..." : "");
	}
	rt_sb_free(&b);
	return n;
}

/* --- JSON out -------------------------------------------------------------- */

static void indent(rt_strbuf *b, int depth)
{
	rt_sb_puts(b, "\n");
	for (int i = 0; i < depth; i++)
		rt_sb_puts(b, "  ");
}

/* j as JSON with diffusers' layout (indent 2), arrays of scalars on one
 * line, object members in their order. */
static void put_json(rt_strbuf *b, const rt_json *j, int depth)
{
	switch (j->type) {
	case RT_JNULL: rt_sb_puts(b, "null"); return;
	case RT_JBOOL: rt_sb_puts(b, j->b ? "true" : "false"); return;
	case RT_JNUM:
		if (j->isint)
			rt_sb_printf(b, "%lld", (long long)j->i);
		else
			rt_sb_json_number(b, j->num);
		return;
	case RT_JSTR: rt_sb_json_string(b, j->str); return;
	case RT_JARR: {
		int flat = 1;
		for (int i = 0; i < j->n; i++)
			flat &= j->kids[i].type != RT_JARR && j->kids[i].type != RT_JOBJ;
		rt_sb_puts(b, "[");
		for (int i = 0; i < j->n; i++) {
			if (i)
				rt_sb_puts(b, flat ? ", " : ",");
			if (!flat)
				indent(b, depth + 1);
			put_json(b, &j->kids[i], depth + 1);
		}
		if (!flat && j->n)
			indent(b, depth);
		rt_sb_puts(b, "]");
		return;
	}
	case RT_JOBJ:
		rt_sb_puts(b, "{");
		for (int i = 0; i < j->n; i++) {
			rt_sb_puts(b, i ? "," : "");
			indent(b, depth + 1);
			rt_sb_json_string(b, j->keys[i]);
			rt_sb_puts(b, ": ");
			put_json(b, &j->kids[i], depth + 1);
		}
		if (j->n)
			indent(b, depth);
		rt_sb_puts(b, "}");
		return;
	}
}

/* The version of diffusers the names and config follow (meta.config's own
 * _diffusers_version when it has one). */
static const char *diffusers_version(const rt_json *config)
{
	const rt_json *v = rt_json_get(config, "_diffusers_version");
	return v && v->type == RT_JSTR ? v->str : "0.42.1";
}

/* config.json: _class_name and _diffusers_version first, then meta.config's
 * other members in their order. */
static void config_json(rt_strbuf *b, const rt_json *config)
{
	rt_sb_puts(b, "{\n  \"_class_name\": \"UNet2DModel\",\n  \"_diffusers_version\": ");
	rt_sb_json_string(b, diffusers_version(config));
	for (int i = 0; i < config->n; i++) {
		if (!strcmp(config->keys[i], "_class_name") || !strcmp(config->keys[i], "_diffusers_version"))
			continue;
		rt_sb_puts(b, ",");
		indent(b, 1);
		rt_sb_json_string(b, config->keys[i]);
		rt_sb_puts(b, ": ");
		put_json(b, &config->kids[i], 1);
	}
	rt_sb_puts(b, "\n}\n");
}

/* scheduler_config.json: DDPMScheduler as the program's schedule and sampler
 * (lua/ddpm/program.lua, diffusion.lua) define it. */
static int scheduler_json(const cli_opts *o, const rt_program *p, const char *version,
                          rt_strbuf *b)
{
	const char *sched = cli_meta_str(p, "schedule", "linear");
	const char *pred = cli_meta_str(p, "prediction", "epsilon");
	const char *var = cli_meta_str(p, "variance", "fixed_small");
	const char *beta_schedule = rt_beta_schedule_name(sched);
	if (!p->timesteps)
		return cli_fail(o, "export: the program does not say its number of timesteps "
		                "(meta.timesteps)");
	if (!beta_schedule)
		return cli_fail(o, "export: meta.schedule '%s' has no diffusers equivalent", sched);
	if (strcmp(pred, "epsilon") && strcmp(pred, "v_prediction") && strcmp(pred, "sample"))
		return cli_fail(o, "export: meta.prediction '%s' has no diffusers equivalent", pred);
	if (strcmp(var, "fixed_small") && strcmp(var, "fixed_large"))
		return cli_fail(o, "export: meta.variance '%s' has no diffusers equivalent", var);
	rt_sb_puts(b, "{\n  \"_class_name\": \"DDPMScheduler\",\n  \"_diffusers_version\": ");
	rt_sb_json_string(b, version);
	rt_sb_puts(b, ",\n  \"beta_end\": ");
	rt_sb_json_number(b, cli_meta_num(p, "beta_end", 0.02));
	rt_sb_printf(b, ",\n  \"beta_schedule\": \"%s\",\n  \"beta_start\": ", beta_schedule);
	rt_sb_json_number(b, cli_meta_num(p, "beta_start", 1e-4));
	rt_sb_printf(b, ",\n  \"clip_sample\": %s,\n"
	             "  \"clip_sample_range\": %.17g,\n  \"dynamic_thresholding_ratio\": 0.995,\n"
	             "  \"num_train_timesteps\": %lld,\n  \"prediction_type\": \"%s\",\n"
	             "  \"rescale_betas_zero_snr\": false,\n  \"sample_max_value\": 1.0,\n"
	             "  \"steps_offset\": 0,\n  \"thresholding\": false,\n"
	             "  \"timestep_spacing\": \"leading\",\n  \"trained_betas\": null,\n"
	             "  \"variance_type\": \"%s\"\n}\n",
	             cli_meta_bool(p, "clip_sample", 1) ? "true" : "false",
	             cli_meta_num(p, "clip_sample_range", 1.0),
	             (long long)p->timesteps, pred, var);
	return 0;
}

static void model_index_json(rt_strbuf *b, const char *version)
{
	rt_sb_puts(b, "{\n  \"_class_name\": \"DDPMPipeline\",\n  \"_diffusers_version\": ");
	rt_sb_json_string(b, version);
	rt_sb_puts(b, ",\n  \"scheduler\": [\n    \"diffusers\",\n    \"DDPMScheduler\"\n  ],\n"
	              "  \"unet\": [\n    \"diffusers\",\n    \"UNet2DModel\"\n  ]\n}\n");
}

/* --- files ----------------------------------------------------------------- */

/* dir/name := text, atomically (as rt_st_write does). */
static int write_atomic(const cli_opts *o, const char *dir, const char *name, const char *text,
                        size_t len)
{
	char path[4096], tmp[4200];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
	int e = rt_write_file(tmp, text, len, 0);
	if (!e && rename(tmp, path))
		e = errno;
	if (e) {
		unlink(tmp);
		return cli_fail(o, "cannot write %s: %s", path, strerror(e));
	}
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	return 0;
}

/* --out DIR, created when absent; a one-line error when it cannot be. */
static int make_out_dir(const cli_opts *o, const char *dir)
{
	struct stat st;
	if (cli_mkdirs(dir))
		return cli_fail(o, "--out %s: cannot create the folder: %s", dir, strerror(errno));
	if (stat(dir, &st))
		return cli_fail(o, "--out %s: %s", dir, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return cli_fail(o, "--out %s: not a folder", dir);
	if (access(dir, W_OK | X_OK))
		return cli_fail(o, "--out %s: not writable: %s", dir, strerror(errno));
	return 0;
}

/* --- the command ----------------------------------------------------------- */

/* The weights to export: a tensor set of F32 copies of every trainable
 * param, from ema.NAME unless --no-ema or the checkpoint has none. */
static int collect(const cli_opts *o, const rt_program *p, const rt_tensorset *ckpt,
                   rt_tensorset *out, int *from_ema, int64_t *numel)
{
	char ema[1024];
	int used_ema = 0, raw = 0;
	*numel = 0;
	for (int i = 0; i < p->nparams; i++) {
		const rt_param *q = &p->params[i];
		if (!q->trainable)
			continue;
		snprintf(ema, sizeof ema, "ema.%s", q->name);
		const rt_tensor *src = o->no_ema ? NULL : rt_set_find(ckpt, ema);
		if (src && rt_numel(src->rank, src->shape) == q->numel)
			used_ema++;
		else
			src = rt_set_find(ckpt, q->name), raw++;
		rt_tensor *t = rt_set_add(out, q->name, RT_F32, q->rank, q->shape);
		if (!t)
			return cli_fail(o, "export: cannot add '%s' (duplicate or out of memory)", q->name);
		rt_tensor_convert(src, t);
		*numel += q->numel;
	}
	if (!out->n)
		return cli_fail(o, "export: the program has no trainable parameters");
	if (!o->no_ema && raw && !used_ema)
		fprintf(stderr, "%s: note: %s has no EMA weights (ema.NAME); exporting its weights\n",
		        o->prog, o->ckpt);
	else if (!o->no_ema && raw)
		fprintf(stderr, "%s: warning: %s has no EMA weights for %d of %d tensors; exporting "
		        "the raw weights for those\n", o->prog, o->ckpt, raw, out->n);
	*from_ema = used_ema > 0;
	return rt_set_meta(out, "format", "pt") == RT_OK ? 0 : cli_fail(o, "out of memory");
}

/* A classifier (meta.task "classifier"): DIR/model.safetensors, its
 * trainable parameters alone (F32, by name; what ddpm.load reads). */
static int export_weights(cli_opts *o, const rt_program *p)
{
	char err[2048], path[4200];
	rt_tensorset ckpt = { 0 }, weights = { 0 };
	int from_ema = 0, rc = 1;
	int64_t numel = 0;
	o->no_ema = 1;
	if (rt_st_read(o->ckpt, &ckpt, err, sizeof err) != RT_OK ||
	    export_check(p, &ckpt, o->ckpt, err, sizeof err)) {
		cli_fail(o, "%s", err);
		goto done;
	}
	if (collect(o, p, &ckpt, &weights, &from_ema, &numel) || make_out_dir(o, o->out))
		goto done;
	snprintf(path, sizeof path, "%s/model.safetensors", o->out);
	if (rt_st_write(path, &weights, err, sizeof err) != RT_OK) {
		cli_fail(o, "%s", err);
		goto done;
	}
	printf("exported %lld parameters in %d tensors from %s to %s\n", (long long)numel,
	       weights.n, o->ckpt, path);
	rc = 0;
done:
	rt_set_free(&ckpt);
	rt_set_free(&weights);
	return rc;
}

int cli_export(const cli_opts *opts, const rt_program *p)
{
	cli_opts copy = *opts, *o = &copy;
	if (cli_check_out_dir(o, "--out", o->out))
		return 1;
	if (strcmp(cli_meta_str(p, "task", ""), "classifier") == 0)
		return export_weights(o, p);
	const rt_json *config = rt_json_get(p->meta, "config");
	if (!config || config->type != RT_JOBJ)
		return cli_fail(o, "export: the program has no diffusers model config (meta.config); "
		                "only nn.UNet2DModel programs can be exported");
	const char *version = diffusers_version(config);

	char err[2048];
	rt_tensorset ckpt = { 0 }, weights = { 0 };
	rt_strbuf cfg = { 0 }, sched = { 0 }, index = { 0 };
	char path[4096];
	int from_ema = 0, rc = 1;
	int64_t numel = 0;
	if (rt_st_read(o->ckpt, &ckpt, err, sizeof err) != RT_OK) {
		cli_fail(o, "%s", err);
		goto done;
	}
	if (export_check(p, &ckpt, o->ckpt, err, sizeof err)) {
		cli_fail(o, "%s", err);
		goto done;
	}
	if (collect(o, p, &ckpt, &weights, &from_ema, &numel) || scheduler_json(o, p, version, &sched))
		goto done;
	config_json(&cfg, config);
	model_index_json(&index, version);
	if (cfg.oom || sched.oom || index.oom) {
		cli_fail(o, "out of memory");
		goto done;
	}
	/* Nothing is written before this point. */
	if (make_out_dir(o, o->out))
		goto done;
	snprintf(path, sizeof path, "%s/diffusion_pytorch_model.safetensors", o->out);
	if (rt_st_write(path, &weights, err, sizeof err) != RT_OK) {
		cli_fail(o, "%s", err);
		goto done;
	}
	if (write_atomic(o, o->out, "config.json", cfg.p, cfg.len) ||
	    write_atomic(o, o->out, "scheduler_config.json", sched.p, sched.len) ||
	    write_atomic(o, o->out, "model_index.json", index.p, index.len))
		goto done;
	printf("exported %lld parameters in %d tensors (%s weights) from %s to %s\n",
	       (long long)numel, weights.n, from_ema ? "EMA" : "raw", o->ckpt, o->out);
	rc = 0;
done:
	rt_set_free(&ckpt);
	rt_set_free(&weights);
	rt_sb_free(&cfg);
	rt_sb_free(&sched);
	rt_sb_free(&index);
	return rc;
}
