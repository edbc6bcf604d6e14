/* test_classifier: what a classifier trained by ddpmc is made of.
 *   - F.cross_entropy and F.log_softmax (lua/ddpm/functional.lua) against
 *     their closed form, log sum_j e^z_j - z_label, computed here in double
 *     on the fixture's logits (tests/scripts/cross_entropy.lua; one row of
 *     values near 80, where e^z overflows f32 without the max subtraction).
 *   - ddpm.load and Module:use_weights: a Linear whose weights come from a
 *     safetensors file beside the script computes with them (checked in
 *     double here); a missing tensor, a wrong shape, a missing file and a
 *     path with ".." are errors naming the script line;
 *   - the shipped classifier (ddpm.classifier.fashion_mnist(), its weights
 *     compiled in) against PyTorch on 8 t10k images
 *     (tests/golden/classifier_io.safetensors, make_classifier_golden.py,
 *     which builds the network from its description): features and
 *     logits, in the interpreter and in compiled kernels (ddpmc run);
 *   - models/classifier.lua compiled (batch 4) and driven as an executable
 *     on small IDX sets: train without the labels file fails before the
 *     first step naming it, with it trains; eval prints the accuracy on
 *     the t10k set beside the data; export writes model.safetensors with
 *     the 12 parameter tensors alone.
 * Their gradients are checked by finite differences in test_autodiff
 * (grad_composite.lua). */
#include <math.h>

#include "state.h"
#include "testutil.h"

static const double logits[4][5] = {
	{ 0.5, -1.25, 2.0, 0.75, -0.5 }, { 3.0, 1.0, -2.0, 0.0, 0.25 },
	{ -0.75, 0.5, 1.5, -1.0, 2.25 }, { 80.0, 81.5, 79.0, 80.5, 78.0 },
};
static const int labels[4] = { 3, 0, 4, 1 };

static void test_cross_entropy_closed_form(void **state)
{
	(void)state;
	char err[512];
	double logp[20], loss = 0;
	for (int i = 0; i < 4; i++) {
		double m = logits[i][0], s = 0;
		for (int j = 1; j < 5; j++)
			m = fmax(m, logits[i][j]);
		for (int j = 0; j < 5; j++)
			s += exp(logits[i][j] - m);
		for (int j = 0; j < 5; j++)
			logp[i * 5 + j] = logits[i][j] - m - log(s);
		loss -= logp[i * 5 + labels[i]] / 4;
	}
	ir_graph *g = tu_load("tests/scripts/cross_entropy.lua");
	rt_tensorset out = { 0 };
	if (interp_run(g, ir_entry_find(g, "ce"), NULL, NULL, &out, err, sizeof err) < 0)
		fail_msg("interp_run: %s", err);
	const double want[1] = { loss };
	CHECK_VALUES(rt_set_find(&out, "loss"), SH0, want, 1e-6, 1e-6);
	CHECK_PTR(rt_set_find(&out, "logp"), SH(4, 5), logp, 1e-6, 1e-6);
	rt_set_free(&out);
	ir_free(g);
}

static char dir[64];

static void write_linear(const char *name, int64_t rows)
{
	char path[256], err[256];
	rt_tensorset w = { 0 };
	rt_tensor *t = rt_set_add(&w, "weight", RT_F32, 2, (int64_t[]){ rows, 2 });
	rt_tensor *b = rt_set_add(&w, "bias", RT_F32, 1, (int64_t[]){ 3 });
	assert_non_null(t);
	assert_non_null(b);
	t = rt_set_find(&w, "weight");
	for (int i = 0; i < rows * 2; i++)
		((float *)t->data)[i] = 0.25f * (float)(i + 1);
	for (int i = 0; i < 3; i++)
		((float *)b->data)[i] = -1.0f + (float)i;
	snprintf(path, sizeof path, "%s/%s", dir, name);
	if (rt_st_write(path, &w, err, sizeof err) != RT_OK)
		fail_msg("%s", err);
	rt_set_free(&w);
}

/* The script dir/NAME.lua building y = Linear(2, 3) with `load`'s weights. */
static ir_graph *load_script(const char *name, const char *file, char *err, size_t len)
{
	char text[1024], path[256];
	snprintf(text, sizeof text,
	         "local ddpm = require 'ddpm'\n"
	         "local lin = ddpm.nn.Linear(2, 3)\n"
	         "lin:use_weights(ddpm.load('%s'))\n"
	         "ddpm.entry('y', { y = lin(ddpm.constant({ 1, -2 }, { 1, 2 })) })\n", file);
	tu_write(dir, name, text, -1, path, sizeof path);
	return fe_load(path, NULL, 0, err, len);
}

static void test_use_weights(void **state)
{
	(void)state;
	char err[1024];
	rt_tensorset out = { 0 };
	write_linear("good.safetensors", 3);
	write_linear("bad.safetensors", 4);
	ir_graph *g = load_script("good.lua", "good.safetensors", err, sizeof err);
	if (!g)
		fail_msg("%s", err);
	assert_int_equal(g->nparams, 0);            /* constants, not parameters */
	if (interp_run(g, ir_entry_find(g, "y"), NULL, NULL, &out, err, sizeof err) < 0)
		fail_msg("interp_run: %s", err);
	double want[3];
	for (int o = 0; o < 3; o++)                 /* y = x W^T + b, x = (1, -2) */
		want[o] = 0.25 * (2 * o + 1) - 2 * 0.25 * (2 * o + 2) + (-1 + o);
	CHECK_VALUES(rt_set_find(&out, "y"), SH(1, 3), want, 1e-6, 1e-6);
	rt_set_free(&out);
	ir_free(g);
	assert_null(load_script("shape.lua", "bad.safetensors", err, sizeof err));
	tu_contains(err, "shape.lua:3", "'weight' is (4, 2) in the weights, the module's is (3, 2)", NULL);
	assert_null(load_script("missing.lua", "nothing.safetensors", err, sizeof err));
	tu_contains(err, "missing.lua:3", "neither beside the script nor in the library", NULL);
	assert_null(load_script("up.lua", "../x.safetensors", err, sizeof err));
	tu_contains(err, "up.lua:3", "without '..'", NULL);
}

/* models/classifier.lua as an executable on 20 + 10 images with labels. */
static void test_classifier_program(void **state)
{
	(void)state;
	char exe[128], cmd[1024], out[8192], path[256], err[512];
	snprintf(exe, sizeof exe, "%s/classifier", dir);
	if (tu_compile("models/classifier.lua", "--set batch=4 --target cpu", exe))
		fail_msg("models/classifier.lua did not compile");
	snprintf(path, sizeof path, "%s/train-images-idx3-ubyte.gz", dir);
	assert_int_equal(tu_write_idx(path, 20, 28), 0);
	snprintf(cmd, sizeof cmd, "'%s' train --steps 6 --data '%s' --out '%s/run'", exe, path, dir);
	assert_int_not_equal(tu_output_of(cmd, out, sizeof out), 0);
	tu_contains(out, "train-labels-idx1-ubyte.gz: cannot open", NULL);
	snprintf(path, sizeof path, "%s/train-labels-idx1-ubyte.gz", dir);
	assert_int_equal(tu_write_labels(path, 20), 0);
	if (tu_output_of(cmd, out, sizeof out))
		fail_msg("train failed:\n%s", out);
	tu_contains(out, "20 images with labels", "saved", NULL);
	snprintf(path, sizeof path, "%s/t10k-images-idx3-ubyte.gz", dir);
	assert_int_equal(tu_write_idx(path, 10, 28), 0);
	snprintf(path, sizeof path, "%s/t10k-labels-idx1-ubyte.gz", dir);
	assert_int_equal(tu_write_labels(path, 10), 0);
	snprintf(cmd, sizeof cmd, "'%s' eval --ckpt '%s/run/checkpoint.safetensors' --data '%s'", exe,
	         dir, dir);
	if (tu_output_of(cmd, out, sizeof out))
		fail_msg("eval failed:\n%s", out);
	tu_contains(out, "accuracy ", "of 10 images of", "t10k-images-idx3-ubyte.gz", NULL);
	snprintf(cmd, sizeof cmd, "'%s' export --ckpt '%s/run/checkpoint.safetensors' --out '%s/exp'",
	         exe, dir, dir);
	if (tu_output_of(cmd, out, sizeof out))
		fail_msg("export failed:\n%s", out);
	rt_tensorset w = { 0 };
	snprintf(path, sizeof path, "%s/exp/model.safetensors", dir);
	if (rt_st_read(path, &w, err, sizeof err) != RT_OK)
		fail_msg("%s", err);
	assert_int_equal(w.n, 12);
	assert_non_null(rt_set_find(&w, "convs.0.weight"));
	assert_non_null(rt_set_find(&w, "head.bias"));
	rt_set_free(&w);
}

static void expect_like_torch(const rt_tensorset *got, const rt_tensorset *want, const char *how)
{
	const char *names[] = { "features", "logits" };
	for (int i = 0; i < 2; i++) {
		const rt_tensor *g = rt_set_find(got, names[i]), *w = rt_set_find(want, names[i]);
		assert_non_null(g);
		assert_non_null(w);
		int64_t n = rt_numel(w->rank, w->shape);
		double *v = malloc((size_t)n * sizeof *v);
		for (int64_t k = 0; k < n; k++)
			v[k] = rt_load(RT_F32, w->data, k);
		ir_shape s = ir_shape_of(w->rank, w->shape);
		if (tu_diff(names[i], g, &s, v, 1e-4, 1e-4))
			fail_msg("%s: %s differ from PyTorch's", how, names[i]);
		free(v);
	}
}

static void test_shipped_classifier_like_torch(void **state)
{
	(void)state;
	char err[512], cmd[2048], path[256], golden[512];
	rt_tensorset want = { 0 }, got = { 0 }, inputs = { 0 };
	tu_read_golden("classifier_io.safetensors", &want);
	rt_tensor *x = rt_set_add(&inputs, "x", RT_F32, 4, (int64_t[]){ 8, 1, 28, 28 });
	assert_non_null(x);
	rt_tensor_convert(rt_set_find(&want, "x"), x);
	ir_graph *g = tu_load("tests/scripts/classifier_features.lua");
	if (interp_run(g, ir_entry_find(g, "classify"), NULL, &inputs, &got, err, sizeof err) < 0)
		fail_msg("interp_run: %s", err);
	expect_like_torch(&got, &want, "interpreter");
	rt_set_free(&got);
	ir_free(g);
	snprintf(path, sizeof path, "%s/features_out.safetensors", dir);
	snprintf(golden, sizeof golden, "%s/tests/golden/classifier_io.safetensors", DDPMC_SOURCE_DIR);
	snprintf(cmd, sizeof cmd, "'%s' run '%s/tests/scripts/classifier_features.lua' --entry classify "
	         "--inputs '%s' -o '%s'", DDPMC_BIN, DDPMC_SOURCE_DIR, golden, path);
	if (tu_stderr_of(cmd, err, sizeof err))
		fail_msg("%s: %s", cmd, err);
	if (rt_st_read(path, &got, err, sizeof err) != RT_OK)
		fail_msg("%s", err);
	expect_like_torch(&got, &want, "compiled kernels");
	rt_set_free(&got);
	rt_set_free(&inputs);
	rt_set_free(&want);
}

static int setup(void **unused)
{
	(void)unused;
	tu_tmpdir(dir, sizeof dir);
	return 0;
}

static int teardown(void **unused)
{
	(void)unused;
	tu_rmtree(dir);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cross_entropy_closed_form),
		cmocka_unit_test(test_use_weights),
		cmocka_unit_test(test_shipped_classifier_like_torch),
		cmocka_unit_test(test_classifier_program),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
