/* kernel_cases: the cases every code generator is held to, against the
 * reference interpreter. A test program includes this after declaring
 * nothing; it must define
 *
 *   static void backend_run(ir_graph *g, kir_program *p, rt_tensorset *state,
 *                           const rt_tensorset *inputs, rt_tensorset *outputs);
 *   static const kir_target *case_target(void);
 *
 * which run lowered program p of g on its backend (inputs as the caller
 * gives them, converted as `ddpmc run` does; state updated in place;
 * outputs added) and say the target the cases are lowered for. KERNEL_CASES lists the cases for cmocka
 * (KERNEL_VALUE_CASES those of them that check values alone).
 *
 * Each case lowers an entry, runs it on the backend and on interp_run
 * with the same inputs and initial state, and compares every output and
 * updated param. Tolerances, elementwise |got - want| <= tol * max(1, |want|):
 *   1e-5 for elementwise chains and normals (f32 math libraries against
 *        the reference's double ones, a few ulp);
 *   1e-4 for reductions and contractions (f32 accumulation, FMA);
 *   exact for uniforms, integers, movement;
 *   one bf16/f16 ulp where outputs are stored in bf16/f16.
 * Shapes are odd on purpose: not multiples of 8 or 16, size-1 dims. */
#ifndef DDPMC_KERNEL_CASES_H
#define DDPMC_KERNEL_CASES_H

#include "kernel_check.h"

#include "kir.h"
#include "safetensors.h"

static const kir_target *case_target(void);

/* check_entry_for the case's target. */
static double check_entry(ir_graph *g, const char *entry, const rt_tensorset *inputs,
                          const rt_tensorset *weights, double tol)
{
	return check_entry_for(case_target(), g, entry, inputs, weights, tol);
}

/* Loads `script` with options n0 n1 n2, fills its inputs at random and
 * checks entry "main". */
static void check_script(const char *script, const int64_t *dims, double lo, double hi, double tol)
{
	char v[3][32];
	fe_option opts[3] = { { "n0", v[0] }, { "n1", v[1] }, { "n2", v[2] } };
	for (int i = 0; i < 3; i++)
		snprintf(v[i], sizeof v[i], "%lld", (long long)dims[i]);
	ir_graph *g = load_script(script, opts, 3);
	rt_tensorset in = { 0 };
	random_inputs(g, &in, lo, hi, (int)dims[0]);
	double worst = check_entry(g, "main", &in, NULL, tol);
	print_message("    shape (%lld, %lld, %lld): worst relative difference %.3g\n", (long long)dims[0],
	              (long long)dims[1], (long long)dims[2], worst);
	rt_set_free(&in);
	ir_free(g);
}

/* Shapes: fixed awkward ones, then random ones. */
static const int64_t fixed_shapes[][3] = {
	{ 1, 1, 1 }, { 2, 3, 17 }, { 3, 1, 33 }, { 1, 7, 16 }, { 2, 5, 8 }, { 4, 2, 3 },
};

static void shapes_for(int i, int64_t *d)
{
	if (i < TU_LEN(fixed_shapes)) {
		memcpy(d, fixed_shapes[i], sizeof fixed_shapes[i]);
		return;
	}
	d[0] = 1 + (int64_t)(urand() * 4);
	d[1] = 1 + (int64_t)(urand() * 6);
	d[2] = 1 + (int64_t)(urand() * 70);
}

static void check_shapes(const char *script, double lo, double hi, double tol)
{
	int64_t d[3];
	for (int i = 0; i < TU_LEN(fixed_shapes) + 4; i++) {
		shapes_for(i, d);
		check_script(script, d, lo, hi, tol);
	}
}

/* --- elementwise ------------------------------------------------------------- */

static const char *elementwise_lua =
	"local ddpm = require 'ddpm'\n"
	"local n0, n1, n2 = ddpm.option('n0', 1), ddpm.option('n1', 1), ddpm.option('n2', 1)\n"
	"local a = ddpm.input('a', { n0, n1, n2 })\n"
	"local b = ddpm.input('b', { n1, n2 })\n"
	"local c = ddpm.input('c', { n0, 1, n2 })\n"
	"local p = ddpm.input('p', { n0, n1, n2 }):abs() + 0.25\n"
	"local s = ddpm.input('s', {})\n"
	"ddpm.entry('main', {\n"
	"  neg = -a, exp = a:exp(), log = p:log(), sqrt = p:sqrt(), rsqrt = p:rsqrt(),\n"
	"  sin = a:sin(), cos = a:cos(), tanh = a:tanh(), sigmoid = a:sigmoid(), abs = a:abs(),\n"
	"  add = a + b, sub = b - a, mul = a * c, div = a / p, max = ddpm.maximum(a, b),\n"
	"  min = ddpm.minimum(c, a), lt = ddpm.lt(a, b), le = ddpm.le(a, s), eq = ddpm.eq(a, a * 1),\n"
	"  gt = ddpm.gt(c, 0.25), select = ddpm.where(ddpm.lt(a, 0), a, b), relu = a:relu(),\n"
	"  chain = (a * b + p):tanh() * a:sigmoid() - (b / p):exp() * s + c:cos(),\n"
	"  silu = a * a:sigmoid(), scalar = s * 2 + 1, relu_abs = a:abs():relu(),\n"
	"  max_abs = ddpm.maximum(ddpm.minimum(-b:abs(), 0), -0.5),\n"
	"})\n";

static void elementwise_ops_match_interpreter(void **state)
{
	check_shapes(elementwise_lua, -3, 3, 1e-5);
}

static const char *int_lua =
	"local ddpm = require 'ddpm'\n"
	"local n0, n1, n2 = ddpm.option('n0', 1), ddpm.option('n1', 1), ddpm.option('n2', 1)\n"
	"local i = ddpm.input('i', { n1, n2 }, 'i32')\n"
	"local j = ddpm.input('j', { n1, n2 }, 'i32')\n"
	"local a = ddpm.input('a', { n1, n2 })\n"
	"ddpm.entry('main', {\n"
	"  add = i + j, mul = i * j - 1, max = ddpm.maximum(i, j), lt = ddpm.lt(i, j), f = i:cast('f32') * a,\n"
	"  sel = ddpm.where(ddpm.eq(i, j), i, j), neg = -i, abs = (i - j):abs(),\n"
	"  trunc = (a * 4):cast('i32'),\n"
	"})\n";

static void integer_ops_match_interpreter(void **state)
{
	check_shapes(int_lua, -3, 3, 0);
}

/* max, min and reduce_max propagate NaN (torch semantics). */
static void nan_propagates_through_max_and_min(void **state)
{
	ir_graph *g = load_script("local ddpm = require 'ddpm'\n"
	                          "local a = ddpm.input('a', { 3, 21 })\n"
	                          "local b = ddpm.input('b', { 3, 21 })\n"
	                          "ddpm.entry('main', { max = ddpm.maximum(a, b), min = ddpm.minimum(b, a),\n"
	                          "  rmax = a:max(1), rmax0 = b:max(0), sum = a:sum(1), relu_abs = a:abs():relu() })\n",
	                          NULL, 0);
	rt_tensorset in = { 0 };
	random_inputs(g, &in, -1, 1, 1);
	float *a = rt_set_find(&in, "a")->data, *b = rt_set_find(&in, "b")->data;
	a[5] = NAN, b[17] = NAN, a[21 + 20] = NAN, b[42] = NAN;
	check_entry(g, "main", &in, NULL, 1e-5);
	rt_set_free(&in);
	ir_free(g);
}

/* --- reductions and movement -------------------------------------------------- */

static const char *reduce_lua =
	"local ddpm = require 'ddpm'\n"
	"local n0, n1, n2 = ddpm.option('n0', 1), ddpm.option('n1', 1), ddpm.option('n2', 1)\n"
	"local a = ddpm.input('a', { n0, n1, n2 })\n"
	"ddpm.entry('main', {\n"
	"  s1 = a:sum(1), s02 = a:sum({ 0, 2 }), slast = a:sum(-1, true), sall = a:sum(),\n"
	"  m2 = a:max(2), m01 = a:max({ 0, 1 }, true), mall = a:max(),\n"
	"  mean = a:mean(-1), var = a:var({ 1, 2 }), softmax = (a - a:max(-1, true)):exp() / (a - a:max(-1, true)):exp():sum(-1, true),\n"
	"  epilogue = (a:sum(1) * 0.5):tanh(),\n"
	"  joint = (ddpm.cat({ (a * a):reshape { -1 }, a:permute { 2, 0, 1 }:reshape { -1 }, a:sum(1):reshape { -1 } }, 0):sum() + 1):sqrt(),\n"
	"  jmax = ddpm.cat({ a:reshape { -1 }, a:sum(2):reshape { -1 } }, 0):max(),\n"
	"})\n";

/* Every reduction; `joint` and `jmax` are joint reductions (kir.h), a
 * sum or max over several tensors joined end to end. */
static void reductions_match_interpreter(void **state)
{
	check_shapes(reduce_lua, -2, 2, 1e-4);
}

static const char *max_grad_lua =
	"local ddpm = require 'ddpm'\n"
	"local n0, n1, n2 = ddpm.option('n0', 1), ddpm.option('n1', 1), ddpm.option('n2', 1)\n"
	"local a = ddpm.input('a', { n0, n1, n2 })\n"
	"local b = ddpm.input('b', { n0, n1, n2 })\n"
	"local c = ddpm.input('c', { 1, n1, 1 })\n"
	"local y = (a * c + b * 0.05):max({ 0, -1 }, true)\n"
	"local z = (a * b - c * a):max(-1)\n"
	"local g = ddpm.grad((y * y):sum() + z:sum(), { a, b, c })\n"
	"ddpm.entry('main', { y = y, z = z, ga = g[1], gb = g[2], gc = g[3] })\n";

/* A max reduction's gradient reaches the element that won: its operand,
 * computed by arithmetic a backend may contract to FMAs, is the same
 * value in the maximum and in the gradient's comparison with it. */
static void max_gradient_reaches_the_maximum(void **state)
{
	check_shapes(max_grad_lua, -2, 2, 1e-4);
}

static const char *movement_lua =
	"local ddpm = require 'ddpm'\n"
	"local tensor = require 'ddpm.tensor'\n"
	"local n0, n1, n2 = ddpm.option('n0', 1), ddpm.option('n1', 1), ddpm.option('n2', 1)\n"
	"local a = ddpm.input('a', { n0, n1, n2 })\n"
	"local x = ddpm.input('x', { n0, n1, 3, n2 })\n"
	"local idx = ddpm.input('idx', { n1, 2 }, 'i32')\n"
	"local t = ddpm.input('t', { n0, n2 })\n"
	"ddpm.entry('main', {\n"
	"  perm = a:permute { 2, 0, 1 }:exp(), tr = a:transpose(1, 2) * 2,\n"
	"  sl = a:slice(2, 0, n2, 2):sin(), cat = ddpm.cat({ a, a:exp(), a * 3 }, 2),\n"
	"  pad = a:pad({ 1, 2, 0, 3 }, 0.5):tanh(), up = x:upsample_nearest(2) + 1,\n"
	"  resh = a:reshape { n0 * n1 * n2 }:exp():reshape { n2, n1 * n0 },\n"
	"  gather = ddpm.gather(t, idx) * 2,\n"
	"  scatter = tensor.op('scatter_add', { ddpm.gather(t, idx), idx }, { shape = { n0, n2 } }),\n"
	"  expand = a:slice(2, 0, 1):expand { n0, n1, n2 } + a,\n"
	"})\n";

static void movement_ops_match_interpreter(void **state)
{
	check_shapes(movement_lua, -2, 2, 1e-5);
}

/* --- contractions --------------------------------------------------------------------- */

static const char *matmul_lua =
	"local ddpm = require 'ddpm'\n"
	"local n0, n1, n2 = ddpm.option('n0', 1), ddpm.option('n1', 1), ddpm.option('n2', 1)\n"
	"local a = ddpm.input('a', { n0, n1 + 2, n2 })\n"
	"local b = ddpm.input('b', { n0, n2, n1 * 3 + 1 })\n"
	"local c = ddpm.input('c', { n2, 19 })\n"
	"local bias = ddpm.input('bias', { 19 })\n"
	"ddpm.entry('main', {\n"
	"  mm = a:matmul(b), mm2 = (a:reshape { n0 * (n1 + 2), n2 }:matmul(c) + bias):tanh(),\n"
	"  tb = a:matmul(a:transpose(1, 2)),\n"
	"})\n";

static void matmul_matches_interpreter(void **state)
{
	check_shapes(matmul_lua, -1, 1, 1e-4);
}

static const char *conv_lua =
	"local ddpm = require 'ddpm'\n"
	"local n0, n1, n2 = ddpm.option('n0', 1), ddpm.option('n1', 1), ddpm.option('n2', 1)\n"
	"local x = ddpm.param('x', { n0, n1, n2 + 4, n2 + 7 }, { init = 'normal', a = 0, b = 1 })\n"
	"local w = ddpm.param('w', { 5, n1, 3, 2 }, { init = 'normal', a = 0, b = 0.5 })\n"
	"local w3 = ddpm.param('w3', { 17, n1, 3, 3 }, { init = 'normal', a = 0, b = 0.5 })\n"
	"local bias = ddpm.param('bias', { 17, 1, 1 }, { init = 'normal', a = 0, b = 0.5 })\n"
	"local y = ddpm.conv2d(x, w, { stride = 2, padding = { 1, 0, 0, 1 } })\n"
	"local seed = ddpm.input('seed', y:shape())\n"
	"local g = ddpm.grad(y, { x, w }, seed)\n"
	"local z = ddpm.conv2d(x, w3, { padding = 1 }) + bias\n"
	"-- stride 1: the input gradient reads g zero-padded by K-1-p, unless p > K-1\n"
	"local z1 = ddpm.conv2d(x, w, { padding = { 0, 1, 1, 0 } })\n"
	"local g1 = ddpm.grad(z1, { x, w }, ddpm.input('seed1', z1:shape()))\n"
	"local z2 = ddpm.conv2d(x, w, { padding = 2 })\n"
	"local g2 = ddpm.grad(z2, { x }, ddpm.input('seed2', z2:shape()))\n"
	"-- 48 channels: convolutions and input gradients computed channels-last,\n"
	"-- weight gradients with vectors over output channels in groups\n"
	"local w4 = ddpm.param('w4', { 48, n1, 3, 3 }, { init = 'normal', a = 0, b = 0.5 })\n"
	"local w5 = ddpm.param('w5', { 16, 48, 3, 3 }, { init = 'normal', a = 0, b = 0.2 })\n"
	"local z4 = ddpm.conv2d(x, w4, { padding = 1 })\n"
	"local z5 = ddpm.conv2d(z4, w5, { padding = 1, stride = 2 })\n"
	"local g4 = ddpm.grad(z5, { x, w4, w5 }, ddpm.input('seed4', z5:shape()))\n"
	"ddpm.entry('main', { y = y, gx = g[1], gw = g[2], z = z * z:sigmoid(),\n"
	"  gx1 = g1[1], gw1 = g1[2], gx2 = g2[1], z4 = z4, gx4 = g4[1], gw4 = g4[2], gw5 = g4[3],\n"
	"  k1 = ddpm.conv2d(x, w3:slice(2, 1, 2):slice(3, 1, 2), {}),\n"
	"  s21 = ddpm.conv2d(x, w, { stride = { 2, 1 }, padding = { 0, 1, 1, 0 } }) })\n";

static void conv2d_and_gradients_match_interpreter(void **state)
{
	static const int64_t dims[][3] = { { 2, 3, 5 }, { 1, 1, 1 }, { 3, 4, 12 }, { 1, 8, 26 } };
	for (int i = 0; i < TU_LEN(dims); i++)
		check_script(conv_lua, dims[i], -1, 1, 1e-4);
}

/* Convolutions (3x3, stride 1, padding 1) and both their gradients by
 * Winograd F(2x2, 3x3), then F(4x4, 3x3) (the weight gradient by their
 * duals), lowered for the case's target with each asked for, against the
 * interpreter: two fixed shapes (a height of 1, a width of 1), then
 * random ones (a fixed seed) of batch 1 to 3, heights and widths 1 to 13
 * (most half-fill their last tiles), channel counts 1 to 37 (seldom
 * multiples of 8 or 16); a bias and SiLU fused after the forward
 * convolution (into its output transform). Tolerance x max(1, |want|):
 * 5e-5 for F(2x2, 3x3), whose transforms only add, subtract and halve;
 * 2e-4 for F(4x4, 3x3), whose transforms scale by up to 8 and by 1/6 and
 * 1/24 (inexact in f32). With x ~ N(0, 1), w ~ N(0, 0.2^2) and dL/dy
 * uniform in [-1, 1) the worst differences seen are 1.7e-5 and 9.6e-5,
 * both in the weight gradient, a sum of up to 468 products (the direct
 * one's: 1e-5). */
static void winograd_convolutions_match_interpreter(void **state)
{
	static const int fixed[][5] = { { 1, 3, 5, 1, 7 }, { 2, 17, 9, 2, 1 } };
	uint32_t r = 20261205;
	for (int trial = 0; trial < 6; trial++) {
		int d[5];
		for (int i = 0; i < 5; i++)
			r = r * 1664525u + 1013904223u, d[i] = trial < TU_LEN(fixed) ? fixed[trial][i] - 1 : (int)(r >> 16);
		int n = 1 + d[0] % 3, c = 1 + d[1] % 37, o = 1 + d[2] % 37, h = 1 + d[3] % 13, wd = 1 + d[4] % 13;
		char script[1400];
		snprintf(script, sizeof script,
		         "local ddpm = require 'ddpm'\n"
		         "local x = ddpm.param('x', { %d, %d, %d, %d }, { init = 'normal', a = 0, b = 1 })\n"
		         "local w = ddpm.param('w', { %d, %d, 3, 3 }, { init = 'normal', a = 0, b = 0.2 })\n"
		         "local bias = ddpm.param('bias', { %d, 1, 1 }, { init = 'normal', a = 0, b = 0.5 })\n"
		         "local y = ddpm.conv2d(x, w, { padding = 1 })\n"
		         "local g = ddpm.grad(y, { x, w }, ddpm.input('g', y:shape()))\n"
		         "local z = y + bias\n"
		         "ddpm.entry('main', { y = z * z:sigmoid(), gx = g[1], gw = g[2] })\n",
		         n, c, h, wd, o, c, o);
		ir_graph *g = load_script(script, NULL, 0);
		rt_tensorset in = { 0 };
		random_inputs(g, &in, -1, 1, 1);
		for (int f = 0; f < 2; f++) {
			kir_target t = *case_target();
			t.winograd = f ? KIR_WINOGRAD_4X4 : KIR_WINOGRAD_2X2;
			kir_program *p = kir_lower(g, ir_entry_find(g, "main"), &t);
			assert_non_null(p);
			int products = 0;
			for (int k = 0; k < p->nk; k++)
				products += strstr(p->k[k].name, "winograd_products") != NULL;
			kir_program_free(p);
			assert_int_equal(products, 3);          /* the convolution and both gradients */
			double worst = check_entry_for(&t, g, "main", &in, NULL, f ? 2e-4 : 5e-5);
			print_message("    F(%dx%d, 3x3), batch %d, %d -> %d channels, %dx%d: worst relative "
			              "difference %.3g\n", 2 + 2 * f, 2 + 2 * f, n, c, o, h, wd, worst);
		}
		rt_set_free(&in);
		ir_free(g);
	}
}

/* --- fusion counts --------------------------------------------------------------- */

/* Entry "main" of g against the interpreter on random inputs; frees g. */
static void check_main(ir_graph *g)
{
	rt_tensorset in = { 0 };
	random_inputs(g, &in, -3, 5, 1);
	print_message("    worst relative difference %.3g\n", check_entry(g, "main", &in, NULL, 1e-4));
	rt_set_free(&in);
	ir_free(g);
}

/* Lowers `script`, checks that entry "main" has `kernels` kernels, the
 * first with `accs` accumulators, and that it matches the interpreter. */
static void check_fusion(const char *script, int kernels, int accs)
{
	ir_graph *g = load_script(script, NULL, 0);
	kir_program *p = kir_lower(g, ir_entry_find(g, "main"), case_target());
	assert_non_null(p);
	if (p->nk != kernels || p->k[0].nacc != accs) {
		kir_report(p, stderr);
		fail_msg("%d kernels (want %d), the first with %d accumulators (want %d)", p->nk, kernels,
		         p->k[0].nacc, accs);
	}
	kir_program_free(p);
	check_main(g);
}

static const char *group_norm_lua =
	"local ddpm = require 'ddpm'\n"
	"local x = ddpm.input('x', { 3, 6, 5, 7 })\n"
	"local w = ddpm.param('w', { 6 }, { init = 'normal', a = 1, b = 0.5 })\n"
	"local b = ddpm.param('b', { 6 }, { init = 'normal', a = 0, b = 0.5 })\n"
	"local y = ddpm.F.group_norm(x, 3, w, b, 1e-6)\n"
	"ddpm.entry('main', { y = y * y:sigmoid() })\n";

/* GroupNorm+SiLU forward: one kernel computes the sum and then the sum of
 * squares about the mean (two accumulators, the interpreter's two-pass
 * variance), one normalises, scales, shifts and applies SiLU. */
static void group_norm_silu_is_two_kernels(void **state)
{
	check_fusion(group_norm_lua, 2, 2);
}

static const char *group_norm_grad_lua =
	"local ddpm = require 'ddpm'\n"
	"local x = ddpm.input('x', { 3, 6, 5, 7 })\n"
	"local w = ddpm.param('w', { 6 }, { init = 'normal', a = 1, b = 0.5 })\n"
	"local b = ddpm.param('b', { 6 }, { init = 'normal', a = 0, b = 0.5 })\n"
	"local y = ddpm.F.group_norm(x, 3, w, b, 1e-6)\n"
	"local s = y * y:sigmoid()\n"
	"local g = ddpm.grad((s * s):mean(), { x, w, b })\n"
	"ddpm.entry('main', { gx = g[1], gw = g[2], gb = g[3] })\n";

/* GroupNorm+SiLU and its gradients: two temporaries of x's size, the
 * sigmoid (a transcendental, kept from the forward pass) and the gradient
 * at GroupNorm's output (the weight, bias and input gradients share it).
 * GroupNorm's normalized x is recomputed from x and the stored mean and
 * rstd per group, not kept (it was a third). The values match the
 * interpreter. */
static void group_norm_backward_recomputes_its_output(void **state)
{
	ir_graph *g = load_script(group_norm_grad_lua, NULL, 0);
	kir_program *p = kir_lower(g, ir_entry_find(g, "main"), case_target());
	assert_non_null(p);
	int full = 0;
	for (int b = 0; b < p->nbuf; b++)
		full += p->buf[b].kind == KB_TEMP && p->buf[b].numel == 3 * 6 * 5 * 7;
	if (full > 2) {
		kir_report(p, stderr);
		fail_msg("%d temporaries of x's size (want at most 2)", full);
	}
	kir_program_free(p);
	check_main(g);
}

static const char *mse_lua =
	"local ddpm = require 'ddpm'\n"
	"local pred = ddpm.param('pred', { 3, 2, 5, 7 }, { init = 'normal', a = 0, b = 1 })\n"
	"local target = ddpm.input('target', { 3, 2, 5, 7 })\n"
	"local scale = ddpm.param('scale', {}, { init = 'uniform', a = 2, b = 3 })\n"
	"local err = pred - target\n"
	"local loss = (err * err):mean()\n"
	"local g = ddpm.grad(loss * scale, { pred })\n"
	"ddpm.entry('main', { loss = loss, g = g[1] })\n";

/* The MSE loss and its (scaled) gradient: one kernel, the gradient stored
 * from inside the loop that sums the squared error. */
static void mse_loss_and_gradient_are_one_kernel(void **state)
{
	check_fusion(mse_lua, 1, 1);
}


static const char *adam_lua =
	"local ddpm = require 'ddpm'\n"
	"local optim = require 'ddpm.optim'\n"
	"local x = ddpm.input('x', { 6, 5 })\n"
	"local w = ddpm.param('w', { 3, 5 }, { init = 'normal', a = 0, b = 1 })\n"
	"local b = ddpm.param('b', { 3 }, { init = 'normal', a = 0, b = 1 })\n"
	"local s = ddpm.param('s', { 1 }, { init = 'uniform', a = 1, b = 2 })\n"
	"local y = ddpm.autocast('fp16', function() return (x:matmul(w:transpose(0, 1)) + b) * s end)\n"
	"local params = { { name = 'w', tensor = w }, { name = 'b', tensor = b }, { name = 's', tensor = s } }\n"
	"local opt = optim.Adam(params, { lr = 1e-2, clip = 0.5, warmup = 3, ema = 0.9, loss_scaling = true })\n"
	"local updates, info = opt:minimize((y * y):mean())\n"
	"ddpm.entry('main', { grad_norm = info.grad_norm, lr = info.lr, finite = info.finite }, updates)\n"
	"local applied, ainfo = opt:apply()\n"
	"ddpm.entry('apply', { grad_norm = ainfo.grad_norm }, applied)\n";

/* The whole optimizer step (unscale, inf check, global norm, clip, Adam,
 * EMA, step and loss-scale counters; the gradients of an fp16 matmul's
 * f32 weights are casts) is the program's last two kernels:
 * a joint reduction over every gradient, then a batch writing all state.
 * No kernel before them writes state. The data-parallel second half
 * (opt:apply(), from the gradient sums) is those two kernels alone. */
static void optimizer_is_two_kernels(void **state)
{
	ir_graph *g = load_script(adam_lua, NULL, 0);
	static const char *entries[] = { "main", "apply" };
	for (int e = 0; e < 2; e++) {
		kir_program *p = kir_lower(g, ir_entry_find(g, entries[e]), case_target());
		assert_non_null(p);
		int writes_state = 0;
		for (int n = 0; n < p->nk - 2; n++)
			for (int s = 0; s < p->k[n].nst; s++)
				writes_state |= p->buf[p->k[n].st[s].buf].kind == KB_PARAM;
		if (p->nk < 2 || !kir_is_joint(&p->k[p->nk - 2]) || !kir_is_batch(&p->k[p->nk - 1]) ||
		    writes_state || (e == 1 && p->nk != 2)) {
			kir_report(p, stderr);
			fail_msg("%s: the optimizer is not a joint reduction and a batch", entries[e]);
		}
		kir_program_free(p);
	}
	check_main(g);
}

/* --- storage dtypes and random numbers ----------------------------------------------- */

static const char *dtype_lua =
	"local ddpm = require 'ddpm'\n"
	"local n0, n1, n2 = ddpm.option('n0', 1), ddpm.option('n1', 1), ddpm.option('n2', 1)\n"
	"local h = ddpm.input('h', { n0, n1, n2 }, 'bf16')\n"
	"local f = ddpm.input('f', { n0, n1, n2 }, 'f16')\n"
	"local a = ddpm.input('a', { n0, n1, n2 })\n"
	"ddpm.entry('main', { hh = h * h, ff = f + f, ha = h:cast('f32') * a, fa = f:cast('f32') - a,\n"
	"  ah = (a * 3):cast('bf16'), af = (a * 3):cast('f16'), big = (a * 70000):cast('f16'),\n"
	"  tiny = (a * 1e-6):cast('f16'), hs = h:sum(2) })\n";

static void bf16_and_f16_storage_match_interpreter(void **state)
{
	check_shapes(dtype_lua, -4, 4, 1.0 / 256);
}

static const char *rng_lua =
	"local ddpm = require 'ddpm'\n"
	"local n0, n1, n2 = ddpm.option('n0', 1), ddpm.option('n1', 1), ddpm.option('n2', 1)\n"
	"local seed = ddpm.input('seed', {}, 'i32')\n"
	"local step = ddpm.input('step', {}, 'i32')\n"
	"local shard = ddpm.input('shard', {}, 'i32')\n"
	"ddpm.entry('main', { u = ddpm.rand({ n0, n1, n2 }, seed, step, 3),\n"
	"  z = ddpm.randn({ n0, n1, n2 }, seed, step, 5), mix = ddpm.randn({ n0, n2 }, seed, step, 1) * 2 + 1,\n"
	"  us = ddpm.rand({ n0, n1, n2 }, seed, step, 3, shard), zs = ddpm.randn({ n0, n2 }, seed, step, 5, shard) })\n";

/* Draws at odd shapes, seeds and steps; of shards 0, 1 and near 2^31,
 * whose elements (shard * numel + i) lie far beyond int's range. */
static void random_numbers_match_interpreter(void **state)
{
	int64_t d[3];
	for (int i = 0; i < TU_LEN(fixed_shapes) + 4; i++) {
		shapes_for(i, d);
		char v[3][32];
		fe_option opts[3] = { { "n0", v[0] }, { "n1", v[1] }, { "n2", v[2] } };
		for (int k = 0; k < 3; k++)
			snprintf(v[k], sizeof v[k], "%lld", (long long)d[k]);
		ir_graph *g = load_script(rng_lua, opts, 3);
		rt_tensorset in = { 0 };
		int64_t none[1] = { 0 };
		*(int32_t *)rt_set_add(&in, "seed", RT_I32, 0, none)->data = i == 0 ? -5 : 1234 + i;
		*(int32_t *)rt_set_add(&in, "step", RT_I32, 0, none)->data = i == 1 ? 70000 : i;
		*(int32_t *)rt_set_add(&in, "shard", RT_I32, 0, none)->data = i % 3 == 2 ? INT32_MAX - i : i % 3;
		check_entry(g, "main", &in, NULL, 1e-5);
		rt_set_free(&in);
		ir_free(g);
	}
}

/* --- whole models --------------------------------------------------------------------------- */

/* The diffusers forward pass (tests/golden, as test_models.c): the
 * backend's eps against the stored one, max |error| <= 1e-4. */
static void unet_forward_matches_diffusers(void **state)
{
	char err[1024];
	ir_graph *g = tu_load("tests/models/unet_attn.lua");
	rt_tensorset weights = { 0 }, io = { 0 }, st = { 0 }, out = { 0 };
	tu_read_golden("unet_attn_weights.safetensors", &weights);
	tu_read_golden("unet_attn_io.safetensors", &io);
	if (interp_init_state(g, 0, &weights, "weights", &st, err, sizeof err) < 0)
		fail_msg("%s", err);
	kir_program *p = kir_lower(g, ir_entry_find(g, "forward"), case_target());
	if (kir_verify(p, err, sizeof err) < 0)
		fail_msg("%s", err);
	backend_run(g, p, &st, &io, &out);
	const rt_tensor *want = rt_set_find(&io, "eps"), *got = rt_set_find(&out, "eps");
	assert_non_null(got);
	double worst = 0;
	for (int64_t i = 0; i < rt_numel(want->rank, want->shape); i++)
		worst = fmax(worst, fabs(rt_load(got->dtype, got->data, i) - rt_load(want->dtype, want->data, i)));
	print_message("    %d kernels: max |backend - diffusers| = %.3g\n", p->nk, worst);
	if (!(worst <= 1e-4))
		fail_msg("eps differs from diffusers by %g (limit 1e-4)", worst);
	kir_program_free(p);
	rt_set_free(&weights);
	rt_set_free(&io);
	rt_set_free(&st);
	rt_set_free(&out);
	ir_free(g);
}

static void unet_forward_matches_interpreter(void **state)
{
	ir_graph *g = tu_load("tests/models/unet_attn.lua");
	rt_tensorset weights = { 0 }, io = { 0 };
	tu_read_golden("unet_attn_weights.safetensors", &weights);
	tu_read_golden("unet_attn_io.safetensors", &io);
	double worst = check_entry(g, "forward", &io, &weights, 1e-4);
	print_message("    worst relative difference %.3g\n", worst);
	rt_set_free(&weights);
	rt_set_free(&io);
	ir_free(g);
}

/* The cases that hold whatever kernels the target's lowering makes:
 * values against the interpreter (and diffusers). */
#define KERNEL_VALUE_CASES \
	cmocka_unit_test(elementwise_ops_match_interpreter), \
	cmocka_unit_test(integer_ops_match_interpreter), \
	cmocka_unit_test(nan_propagates_through_max_and_min), \
	cmocka_unit_test(reductions_match_interpreter), \
	cmocka_unit_test(max_gradient_reaches_the_maximum), \
	cmocka_unit_test(movement_ops_match_interpreter), \
	cmocka_unit_test(matmul_matches_interpreter), \
	cmocka_unit_test(conv2d_and_gradients_match_interpreter), \
	cmocka_unit_test(winograd_convolutions_match_interpreter), \
	cmocka_unit_test(bf16_and_f16_storage_match_interpreter), \
	cmocka_unit_test(random_numbers_match_interpreter), \
	cmocka_unit_test(unet_forward_matches_diffusers), \
	cmocka_unit_test(unet_forward_matches_interpreter)

/* Those, and the fusions every target's lowering must make. */
#define KERNEL_CASES \
	KERNEL_VALUE_CASES, \
	cmocka_unit_test(group_norm_silu_is_two_kernels), \
	cmocka_unit_test(group_norm_backward_recomputes_its_output), \
	cmocka_unit_test(mse_loss_and_gradient_are_one_kernel), \
	cmocka_unit_test(optimizer_is_two_kernels)

#endif
