/* export: `OUT export --ckpt FILE --out DIR [--no-ema]` (runtime/main/export.c).
 *
 * tests/models/export_tiny.lua is compiled once with the driver, trained 2
 * steps on a small synthetic IDX file, and exported. The folder must hold
 * the four files diffusers reads, config.json etc. must carry the expected
 * keys, and the weights file every trainable parameter of the model (as the
 * frontend lists them) in F32 with its shape and the checkpoint's EMA values
 * (raw values with --no-ema). A checkpoint with a tensor of the wrong shape
 * or a missing tensor, an unwritable --out and bad flags each fail with one
 * line naming the cause, and write nothing. (tests/golden/check_export.py
 * loads the folder with diffusers itself.) */
#include "testutil.h"

#include <dirent.h>
#include <sys/stat.h>

#include "json.h"
#include "safetensors.h"

static char dir[256], exe[512], ckpt[512], out[512];

static int run_ok(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run_ok(const char *fmt, ...)
{
	char cmd[3000], msg[8192];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	int rc = tu_stderr_of(cmd, msg, sizeof msg);
	if (rc != 0)
		print_error("%s: exit %d: %s\n", cmd, rc, msg);
	return rc;
}

static int file_exists(const char *d, const char *name)
{
	char path[1024];
	struct stat st;
	snprintf(path, sizeof path, "%s/%s", d, name);
	return stat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0;
}

/* A raw IDX image file of n 28x28 images of a fixed pattern. */
static int setup(void **unused)
{
	char data[512];
	tu_tmpdir(dir, sizeof dir);
	snprintf(exe, sizeof exe, "%s/tiny", dir);
	snprintf(data, sizeof data, "%s/images-idx3-ubyte.gz", dir);
	snprintf(ckpt, sizeof ckpt, "%s/run/checkpoint.safetensors", dir);
	snprintf(out, sizeof out, "%s/export", dir);
	if (tu_write_idx(data, 8, 28) || tu_compile("tests/models/export_tiny.lua", "", exe) ||
	    run_ok("'%s' train --data '%s' --steps 2 --out '%s/run' --seed 1 --threads 2", exe, data,
	           dir) ||
	    run_ok("'%s' export --ckpt '%s' --out '%s'", exe, ckpt, out))
		return -1;
	return 0;
}

static int teardown(void **unused)
{
	tu_rmtree(dir);
	return 0;
}

static void read_json(const char *d, const char *name, rt_json *j)
{
	char path[1024], err[256];
	snprintf(path, sizeof path, "%s/%s", d, name);
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	static char text[1 << 16];
	size_t n = fread(text, 1, sizeof text, f);
	fclose(f);
	if (rt_json_parse(text, n, j, err, sizeof err) != RT_OK)
		fail_msg("%s: %s", path, err);
	assert_int_equal(j->type, RT_JOBJ);
}

static void want_str(const rt_json *o, const char *key, const char *want)
{
	const rt_json *v = rt_json_get(o, key);
	if (!v || v->type != RT_JSTR || strcmp(v->str, want) != 0)
		fail_msg("\"%s\": expected \"%s\"", key, want);
}

static void want_num(const rt_json *o, const char *key, double want)
{
	const rt_json *v = rt_json_get(o, key);
	if (!v || v->type != RT_JNUM || fabs(v->num - want) > 1e-12 * fabs(want))
		fail_msg("\"%s\": expected %g", key, want);
}

static void want_bool(const rt_json *o, const char *key, int want)
{
	const rt_json *v = rt_json_get(o, key);
	if (!v || v->type != RT_JBOOL || v->b != want)
		fail_msg("\"%s\": expected %s", key, want ? "true" : "false");
}

static void want_strs(const rt_json *o, const char *key, const char *a, const char *b)
{
	const rt_json *v = rt_json_get(o, key);
	if (!v || v->type != RT_JARR || v->n != 2 || v->kids[0].type != RT_JSTR ||
	    v->kids[1].type != RT_JSTR || strcmp(v->kids[0].str, a) || strcmp(v->kids[1].str, b))
		fail_msg("\"%s\": expected [\"%s\", \"%s\"]", key, a, b);
}

static void folder_holds_what_diffusers_reads(void **unused)
{
	static const char *const files[] = { "diffusion_pytorch_model.safetensors", "config.json",
	                                     "scheduler_config.json", "model_index.json" };
	for (int i = 0; i < TU_LEN(files); i++)
		if (!file_exists(out, files[i]))
			fail_msg("%s/%s is missing", out, files[i]);
	/* nothing else: no temporary files left behind */
	DIR *d = opendir(out);
	assert_non_null(d);
	int n = 0;
	for (struct dirent *e; (e = readdir(d));)
		n += e->d_name[0] != '.';
	closedir(d);
	assert_int_equal(n, 4);
}

static void config_json_is_the_unet_config(void **unused)
{
	rt_json j;
	read_json(out, "config.json", &j);
	want_str(&j, "_class_name", "UNet2DModel");
	const rt_json *v = rt_json_get(&j, "_diffusers_version");
	assert_true(v && v->type == RT_JSTR && v->str[0]);
	want_num(&j, "sample_size", 28);
	want_num(&j, "in_channels", 1);
	want_num(&j, "out_channels", 1);
	want_num(&j, "layers_per_block", 1);
	want_num(&j, "norm_num_groups", 4);
	want_num(&j, "norm_eps", 1e-6);
	want_num(&j, "freq_shift", 1);
	want_num(&j, "downsample_padding", 0);
	want_bool(&j, "flip_sin_to_cos", 0);
	want_str(&j, "act_fn", "silu");
	want_strs(&j, "down_block_types", "DownBlock2D", "AttnDownBlock2D");
	want_strs(&j, "up_block_types", "AttnUpBlock2D", "UpBlock2D");
	v = rt_json_get(&j, "block_out_channels");
	assert_true(v && v->type == RT_JARR && v->n == 2 && v->kids[0].i == 8 && v->kids[1].i == 16);
	v = rt_json_get(&j, "attention_head_dim");
	assert_true(v && v->type == RT_JNULL);
	rt_json_free(&j);

	read_json(out, "scheduler_config.json", &j);
	want_str(&j, "_class_name", "DDPMScheduler");
	want_num(&j, "num_train_timesteps", 1000);
	want_num(&j, "beta_start", 1e-4);
	want_num(&j, "beta_end", 0.012);        /* export_tiny.lua's */
	want_str(&j, "beta_schedule", "linear");
	want_str(&j, "variance_type", "fixed_small");
	want_str(&j, "prediction_type", "epsilon");
	want_bool(&j, "clip_sample", 1);
	rt_json_free(&j);

	read_json(out, "model_index.json", &j);
	want_str(&j, "_class_name", "DDPMPipeline");
	want_strs(&j, "unet", "diffusers", "UNet2DModel");
	want_strs(&j, "scheduler", "diffusers", "DDPMScheduler");
	rt_json_free(&j);
}

static void read_set(const char *path, rt_tensorset *s)
{
	char err[512];
	if (rt_st_read(path, s, err, sizeof err) != RT_OK)
		fail_msg("%s", err);
}

static int same_values(const rt_tensor *a, const rt_tensor *b)
{
	int64_t n = rt_numel(a->rank, a->shape);
	if (n != rt_numel(b->rank, b->shape))
		return 0;
	for (int64_t i = 0; i < n; i++)
		if ((float)rt_load(a->dtype, a->data, i) != (float)rt_load(b->dtype, b->data, i))
			return 0;
	return 1;
}

/* Every trainable param of the model, F32 with its shape, valued as the
 * checkpoint's `prefix`NAME; returns how many differ from NAME. */
static int check_weights(const char *folder, const char *prefix)
{
	char path[1024], name[600];
	ir_graph *g = tu_load("tests/models/export_tiny.lua");
	rt_tensorset w = { 0 }, c = { 0 };
	snprintf(path, sizeof path, "%s/diffusion_pytorch_model.safetensors", folder);
	read_set(path, &w);
	read_set(ckpt, &c);
	int ntrain = 0, moved = 0;
	for (int i = 0; i < g->nparams; i++) {
		const ir_node *q = &g->nodes[g->params[i]];
		if (!q->a.param.trainable)
			continue;
		ntrain++;
		const rt_tensor *t = rt_set_find(&w, q->name);
		if (!t)
			fail_msg("%s: no '%s'", path, q->name);
		assert_int_equal(t->dtype, RT_F32);
		ir_shape got = ir_shape_of(t->rank, t->shape);
		if (!ir_shape_eq(&got, &q->shape))
			fail_msg("'%s': wrong shape", q->name);
		snprintf(name, sizeof name, "%s%s", prefix, q->name);
		const rt_tensor *src = rt_set_find(&c, name), *raw = rt_set_find(&c, q->name);
		assert_non_null(src);
		if (!same_values(t, src))
			fail_msg("'%s' is not the checkpoint's '%s'", q->name, name);
		moved += !same_values(t, raw);
	}
	assert_true(ntrain > 100);
	assert_int_equal(w.n, ntrain);
	const char *fmt = rt_get_meta(&w, "format");
	assert_true(fmt && strcmp(fmt, "pt") == 0);
	rt_set_free(&w);
	rt_set_free(&c);
	ir_free(g);
	return moved;
}

static void weights_are_every_trainable_param_from_ema(void **unused)
{
	assert_true(check_weights(out, "ema.") > 0);     /* EMA differs from the raw weights */
}

static void no_ema_exports_the_raw_weights(void **unused)
{
	char raw[600];
	snprintf(raw, sizeof raw, "%s/raw", dir);
	assert_int_equal(run_ok("'%s' export --ckpt '%s' --out '%s' --no-ema", exe, ckpt, raw), 0);
	assert_int_equal(check_weights(raw, ""), 0);
	/* exporting again over an existing folder replaces it */
	assert_int_equal(run_ok("'%s' export --ckpt='%s' --out='%s'", exe, ckpt, raw), 0);
	assert_true(check_weights(raw, "ema.") > 0);
}

/* The checkpoint with tensor `bad` given shape `shape` (rank 4), or left
 * out when rank is 0, written to dir/name. */
static const char *bad_ckpt(const char *name, const char *bad, int rank, const int64_t *shape,
                            char *path, size_t len)
{
	char err[512];
	rt_tensorset c = { 0 }, d = { 0 };
	read_set(ckpt, &c);
	for (int i = 0; i < c.n; i++) {
		const rt_tensor *t = &c.t[i];
		int hit = strcmp(t->name, bad) == 0;
		if (hit && rank == 0)
			continue;
		rt_tensor *u = rt_set_add(&d, t->name, t->dtype, hit ? rank : t->rank,
		                          hit ? shape : t->shape);
		assert_non_null(u);
		if (!hit)
			memcpy(u->data, t->data, (size_t)rt_numel(t->rank, t->shape) * rt_dtype_size(t->dtype));
	}
	for (int i = 0; i < c.nmeta; i++)
		rt_set_meta(&d, c.meta[i].key, c.meta[i].value);
	snprintf(path, len, "%s/%s", dir, name);
	if (rt_st_write(path, &d, err, sizeof err) != RT_OK)
		fail_msg("%s", err);
	rt_set_free(&c);
	rt_set_free(&d);
	return path;
}

/* Runs export on `file` into dir/`sub`; expects failure with one line
 * holding every one of the NULL-terminated substrings, and no dir/sub. */
static void expect_failure(const char *args, const char *sub, ...)
{
	char cmd[3000], msg[8192], folder[600];
	struct stat st;
	snprintf(folder, sizeof folder, "%s/%s", dir, sub);
	snprintf(cmd, sizeof cmd, "'%s' export %s", exe, args);
	int rc = tu_stderr_of(cmd, msg, sizeof msg);
	print_message("%s\n  -> exit %d: %s", cmd, rc, msg);
	assert_true(rc > 0);
	assert_int_equal(tu_lines(msg), 1);
	assert_true(tu_starts(msg, "tiny: "));
	va_list ap;
	va_start(ap, sub);
	for (const char *s; (s = va_arg(ap, const char *)) != NULL;)
		if (!strstr(msg, s))
			fail_msg("expected \"%s\" in: %s", s, msg);
	va_end(ap);
	assert_int_not_equal(stat(folder, &st), 0);     /* nothing written */
}

static void wrong_shape_fails_naming_the_tensor(void **unused)
{
	char path[600], args[2048];
	static const int64_t shape[4] = { 8, 1, 3, 2 };
	bad_ckpt("wrong_shape.safetensors", "conv_in.weight", 4, shape, path, sizeof path);
	snprintf(args, sizeof args, "--ckpt '%s' --out '%s/bad1'", path, dir);
	expect_failure(args, "bad1", "wrong_shape.safetensors", "'conv_in.weight' has shape (8, 1, 3, 2)",
	               "the model expects (8, 1, 3, 3)", (const char *)NULL);
}

static void missing_tensor_fails_naming_it(void **unused)
{
	char path[600], args[2048];
	bad_ckpt("missing.safetensors", "conv_out.bias", 0, NULL, path, sizeof path);
	snprintf(args, sizeof args, "--ckpt '%s' --out '%s/bad2'", path, dir);
	expect_failure(args, "bad2", "'conv_out.bias' is missing", "F32 (1)", (const char *)NULL);
}

static void unwritable_out_fails(void **unused)
{
	char file[600], args[2048];
	tu_write(dir, "a_file", "x", -1, file, sizeof file);
	snprintf(args, sizeof args, "--ckpt '%s' --out '%s/a_file/sub'", ckpt, dir);
	expect_failure(args, "a_file/sub", "a_file/sub", (const char *)NULL);
	snprintf(args, sizeof args, "--ckpt '%s' --out '%s'", ckpt, file);
	expect_failure(args, "a_file/x", "a_file", "not a folder", (const char *)NULL);
}

static void bad_flags_fail(void **unused)
{
	char args[2048];
	snprintf(args, sizeof args, "--ckpt '%s'", ckpt);
	expect_failure(args, "nothing", "--out", (const char *)NULL);
	snprintf(args, sizeof args, "--ckpt '%s' --out '%s/bad3' --steps 3", ckpt, dir);
	expect_failure(args, "bad3", "--steps", (const char *)NULL);
	snprintf(args, sizeof args, "--ckpt '%s/none.safetensors' --out '%s/bad4'", dir, dir);
	expect_failure(args, "bad4", "none.safetensors", (const char *)NULL);
	snprintf(args, sizeof args, "--ckpt '%s/images.idx' --out '%s/bad5'", dir, dir);
	expect_failure(args, "bad5", "images.idx", (const char *)NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(folder_holds_what_diffusers_reads),
		cmocka_unit_test(config_json_is_the_unet_config),
		cmocka_unit_test(weights_are_every_trainable_param_from_ema),
		cmocka_unit_test(no_ema_exports_the_raw_weights),
		cmocka_unit_test(wrong_shape_fails_naming_the_tensor),
		cmocka_unit_test(missing_tensor_fails_naming_it),
		cmocka_unit_test(unwritable_out_fails),
		cmocka_unit_test(bad_flags_fail),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
