/* test_shape_errors: every builder rule rejects bad shapes and dtypes with
 * one message "file:line: op: what is wrong (shapes)" and appends nothing;
 * from Lua the file:line is the model script's (or a module's beside it),
 * never a file of lua/ddpm/, even when the error is raised inside a library
 * composite; the driver turns such an error into exit status 1 and exactly
 * one line on stderr. */
#include "testutil.h"

/* The builder returned -1, left the graph as it was, and said `want`
 * (exactly, when exact) or started with it and mentions every extra
 * substring. */
static void expect(ir_graph *g, int before, int id, int exact, const char *want, ...)
{
	if (id >= 0)
		fail_msg("expected \"%s\", but node %d was built", want, id);
	assert_int_equal(g->n, before);
	if (exact ? strcmp(g->err, want) != 0 : !tu_starts(g->err, want))
		fail_msg("expected %s\"%s\", got \"%s\"", exact ? "" : "a message starting ", want,
		         g->err);
	va_list ap;
	va_start(ap, want);
	for (const char *sub; (sub = va_arg(ap, const char *)) != NULL;)
		if (!strstr(g->err, sub)) {
			va_end(ap);
			fail_msg("expected \"%s\" in \"%s\"", sub, g->err);
		}
	va_end(ap);
	g->err[0] = 0;
}
#define EXACT(g, id, msg) do { int n_ = (g)->n; int id_ = (id); \
	expect((g), n_, id_, 1, (msg), (const char *)NULL); } while (0)
#define STARTS(g, id, ...) do { int n_ = (g)->n; int id_ = (id); \
	expect((g), n_, id_, 0, __VA_ARGS__, (const char *)NULL); } while (0)

static int leaf(ir_graph *g, const char *name, rt_dtype dt, ir_shape s)
{
	return tu_ok(g, ir_input(g, name, dt, &s, "m.lua:1"));
}

static int op2(ir_graph *g, ir_opcode op, int a, int b, const ir_attrs *at, const char *where)
{
	int in[2] = { a, b };
	return ir_add(g, op, in, 2, at, NULL, RT_F32, where);
}

static int op1(ir_graph *g, ir_opcode op, int a, const ir_attrs *at, const ir_shape *s,
               const char *where)
{
	return ir_add(g, op, &a, 1, at, s, RT_F32, where);
}

static void test_elemwise(void **state)
{
	ir_graph *g = ir_new();
	(void)state;
	int a = leaf(g, "a", RT_F32, SH(2, 3)), b = leaf(g, "b", RT_F32, SH(4));
	int c = leaf(g, "c", RT_F32, SH(3, 1, 2)), k = leaf(g, "k", RT_I32, SH(2, 3));
	EXACT(g, op2(g, OP_add, a, b, NULL, "m.lua:7"),
	      "m.lua:7: add: shapes (2, 3) and (4) do not broadcast");
	EXACT(g, op2(g, OP_mul, a, c, NULL, "m.lua:8"),
	      "m.lua:8: mul: shapes (2, 3) and (3, 1, 2) do not broadcast");
	EXACT(g, op2(g, OP_sub, a, k, NULL, "m.lua:9"), "m.lua:9: sub: dtypes differ (F32 and I32)");
	EXACT(g, op1(g, OP_exp, k, NULL, NULL, "m.lua:10"),
	      "m.lua:10: exp: needs a floating-point input, got I32");
	EXACT(g, op1(g, OP_sigmoid, k, NULL, NULL, "m.lua:11"),
	      "m.lua:11: sigmoid: needs a floating-point input, got I32");
	int sel[3] = { a, a, b };
	STARTS(g, ir_add(g, OP_select, sel, 3, NULL, NULL, RT_F32, "m.lua:12"), "m.lua:12: select: ",
	       "(4)", "do not broadcast");
	int sel2[3] = { k, a, k };              /* the condition may differ, a and b may not */
	STARTS(g, ir_add(g, OP_select, sel2, 3, NULL, NULL, RT_F32, "m.lua:13"),
	       "m.lua:13: select: dtypes differ");
	STARTS(g, op1(g, OP_add, a, NULL, NULL, "m.lua:14"), "m.lua:14: add: takes 2 inputs, got 1");
	/* and the valid neighbours build */
	int d = leaf(g, "d", RT_F32, SH(3, 1, 3));
	tu_ok(g, op2(g, OP_add, a, d, NULL, "m.lua:15"));
	int ok[3] = { k, a, a };
	tu_ok(g, ir_add(g, OP_select, ok, 3, NULL, NULL, RT_F32, "m.lua:16"));
	ir_free(g);
}

static void test_reduce_reshape_permute(void **state)
{
	ir_graph *g = ir_new();
	(void)state;
	int x = leaf(g, "x", RT_F32, SH(2, 3, 4));
	ir_attrs ax = { .reduce = { 0x8 } };
	EXACT(g, op1(g, OP_reduce_sum, x, &ax, NULL, "m.lua:3"),
	      "m.lua:3: reduce_sum: axes mask 0x8 names a dim beyond rank 3 of (2, 3, 4)");
	ir_shape bad = SH(6, 5);
	EXACT(g, op1(g, OP_reshape, x, NULL, &bad, "m.lua:4"),
	      "m.lua:4: reshape: cannot reshape (2, 3, 4) (24 elements) to (6, 5) (30 elements)");
	EXACT(g, op1(g, OP_reshape, x, NULL, NULL, "m.lua:5"), "m.lua:5: reshape: needs a target shape");
	ir_attrs p = { .permute = { { 0, 0, 2 } } };
	EXACT(g, op1(g, OP_permute, x, &p, NULL, "m.lua:6"),
	      "m.lua:6: permute: perm is not a permutation of the 3 dims of (2, 3, 4)");
	ir_attrs p3 = { .permute = { { 0, 3, 1 } } };
	STARTS(g, op1(g, OP_permute, x, &p3, NULL, "m.lua:7"), "m.lua:7: permute: perm is not");
	ir_free(g);
}

/* Target dims of reshape, broadcast and the random ops must be positive:
 * (-4, -6) has the same element count as (4, 6), and broadcasting (1) to
 * (2, -1) matches numpy's rule dim by dim, but neither is a shape. */
static void test_nonpositive_targets(void **state)
{
	ir_graph *g = ir_new();
	(void)state;
	int x = leaf(g, "x", RT_F32, SH(2, 3, 4)), y = leaf(g, "y", RT_F32, SH(1));
	ir_shape neg = SH(-4, -6), neg2 = SH(2, -1), zero = SH(0, 3);
	STARTS(g, op1(g, OP_reshape, x, NULL, &neg, "m.lua:3"), "m.lua:3: reshape: ");
	STARTS(g, op1(g, OP_broadcast, y, NULL, &neg2, "m.lua:4"), "m.lua:4: broadcast: ");
	STARTS(g, op1(g, OP_broadcast, y, NULL, &zero, "m.lua:5"), "m.lua:5: broadcast: ");
	ir_shape s0 = SH0;
	int seed = tu_ok(g, ir_input(g, "seed", RT_I32, &s0, "m.lua:1"));
	int ss[3] = { seed, seed, seed };
	STARTS(g, ir_add(g, OP_rng_uniform, ss, 3, NULL, &neg2, RT_F32, "m.lua:6"), "m.lua:6: rng_uniform: ");
	ir_free(g);
}

/* Element counts past 2^53 (ir_numel would overflow int64 past 2^63) are
 * refused for leaves, targets and results alike. */
static void test_element_count_overflow(void **state)
{
	ir_graph *g = ir_new();
	(void)state;
	ir_shape big = SH(1 << 30, 1 << 30, 1 << 30);
	EXACT(g, ir_input(g, "x", RT_F32, &big, "m.lua:2"),
	      "m.lua:2: input: (1073741824, 1073741824, 1073741824) has more than 2^53 elements");
	int col = leaf(g, "col", RT_F32, SH(1 << 30, 1)), row = leaf(g, "row", RT_F32, SH(1, 1 << 30));
	EXACT(g, op2(g, OP_mul, col, row, NULL, "m.lua:3"),
	      "m.lua:3: mul: result (1073741824, 1073741824) has more than 2^53 elements");
	EXACT(g, op1(g, OP_reshape, col, NULL, &big, "m.lua:4"),
	      "m.lua:4: reshape: target (1073741824, 1073741824, 1073741824) has more than 2^53 elements");
	ir_free(g);
}

static void test_broadcast_slice(void **state)
{
	ir_graph *g = ir_new();
	(void)state;
	int v = leaf(g, "v", RT_F32, SH(3)), x = leaf(g, "x", RT_F32, SH(3, 7));
	ir_shape to = SH(2, 4), lower = SH(7);
	EXACT(g, op1(g, OP_broadcast, v, NULL, &to, "m.lua:3"),
	      "m.lua:3: broadcast: cannot broadcast (3) to (2, 4)");
	EXACT(g, op1(g, OP_broadcast, x, NULL, &lower, "m.lua:4"),
	      "m.lua:4: broadcast: cannot broadcast (3, 7) to (7)");
	ir_attrs s = { .slice = { { 0, 1 }, { 1, 3 } } };
	ir_shape n = SH(3, 3);          /* cols 1, 4, 7: 7 is outside */
	EXACT(g, op1(g, OP_slice, x, &s, &n, "m.lua:5"),
	      "m.lua:5: slice: axis 1: start 1, step 3, 3 elements is outside (3, 7)");
	ir_attrs z = { .slice = { { 0, 0 }, { 1, 0 } } };
	ir_shape n2 = SH(3, 2);
	STARTS(g, op1(g, OP_slice, x, &z, &n2, "m.lua:6"), "m.lua:6: slice: axis 1: start 0, step 0");
	ir_attrs ok = { .slice = { { 0, 0 }, { 1, 1 } } };
	ir_shape r1 = SH(3);
	EXACT(g, op1(g, OP_slice, x, &ok, &r1, "m.lua:7"), "m.lua:7: slice: slice of (3, 7) has rank 1");
	ir_shape n3 = SH(3, 0);
	STARTS(g, op1(g, OP_slice, x, &ok, &n3, "m.lua:8"), "m.lua:8: slice: target dimension 1 of (3, 0) is not positive");
	ir_attrs neg = { .slice = { { -1, 0 }, { 1, 1 } } };
	ir_shape n4 = SH(1, 7);
	STARTS(g, op1(g, OP_slice, x, &neg, &n4, "m.lua:9"), "m.lua:9: slice: axis 0: start -1");
	ir_free(g);
}

static void test_concat_pad_upsample(void **state)
{
	ir_graph *g = ir_new();
	(void)state;
	int a = leaf(g, "a", RT_F32, SH(2, 1, 2)), b = leaf(g, "b", RT_F32, SH(3, 2, 2));
	int h = leaf(g, "h", RT_F16, SH(2, 2, 2)), r = leaf(g, "r", RT_F32, SH(2, 2));
	ir_attrs ax1 = { .concat = { 1 } }, ax3 = { .concat = { 3 } };
	int ab[2] = { a, b }, ah[2] = { a, h }, ar[3] = { a, a, r };
	EXACT(g, ir_add(g, OP_concat, ab, 2, &ax1, NULL, RT_F32, "m.lua:3"),
	      "m.lua:3: concat: F32 (2, 1, 2) and F32 (3, 2, 2) differ outside axis 1");
	STARTS(g, ir_add(g, OP_concat, ah, 2, &ax1, NULL, RT_F32, "m.lua:4"),
	       "m.lua:4: concat: dtypes differ (F32 and F16)");
	STARTS(g, ir_add(g, OP_concat, ar, 3, &ax1, NULL, RT_F32, "m.lua:5"),
	       "m.lua:5: concat: ", "(2, 2)");
	EXACT(g, ir_add(g, OP_concat, ab, 2, &ax3, NULL, RT_F32, "m.lua:6"),
	      "m.lua:6: concat: axis 3 is outside rank 3");
	STARTS(g, ir_add(g, OP_concat, ab, 0, &ax1, NULL, RT_F32, "m.lua:7"), "m.lua:7: concat: takes");

	ir_attrs p = { .pad = { { 0, 1, 0 }, { 0, -1, 0 }, 0 } };
	EXACT(g, op1(g, OP_pad, a, &p, NULL, "m.lua:8"),
	      "m.lua:8: pad: negative padding on axis 1 of (2, 1, 2)");

	ir_attrs up = { .upsample = { 2 } }, up0 = { .upsample = { 0 } };
	EXACT(g, op1(g, OP_upsample2d, a, &up, NULL, "m.lua:9"),
	      "m.lua:9: upsample2d: needs (N, C, H, W) and a scale >= 1, got (2, 1, 2) and 2");
	int x4 = leaf(g, "x4", RT_F32, SH(1, 1, 2, 2));
	STARTS(g, op1(g, OP_upsample2d, x4, &up0, NULL, "m.lua:10"),
	       "m.lua:10: upsample2d: needs", "and 0");
	ir_free(g);
}

static void test_matmul_conv_gather(void **state)
{
	ir_graph *g = ir_new();
	(void)state;
	int a = leaf(g, "a", RT_F32, SH(2, 3)), b = leaf(g, "b", RT_F32, SH(4, 5));
	int a3 = leaf(g, "a3", RT_F32, SH(2, 2, 3)), b3 = leaf(g, "b3", RT_F32, SH(3, 3, 2));
	int v = leaf(g, "v", RT_F32, SH(3)), ai = leaf(g, "ai", RT_I32, SH(2, 3));
	int bi = leaf(g, "bi", RT_I32, SH(3, 2)), bh = leaf(g, "bh", RT_F16, SH(3, 2));
	EXACT(g, op2(g, OP_matmul, a, b, NULL, "m.lua:3"),
	      "m.lua:3: matmul: cannot multiply (2, 3) by (4, 5)");
	EXACT(g, op2(g, OP_matmul, a3, b3, NULL, "m.lua:4"),
	      "m.lua:4: matmul: cannot multiply (2, 2, 3) by (3, 3, 2)");
	EXACT(g, op2(g, OP_matmul, a, v, NULL, "m.lua:5"),
	      "m.lua:5: matmul: cannot multiply (2, 3) by (3)");
	EXACT(g, op2(g, OP_matmul, ai, bi, NULL, "m.lua:6"),
	      "m.lua:6: matmul: needs floating-point inputs, got I32");
	EXACT(g, op2(g, OP_matmul, a, bh, NULL, "m.lua:7"),
	      "m.lua:7: matmul: dtypes differ (F32 and F16)");

	int x = leaf(g, "x", RT_F32, SH(2, 3, 9, 7)), w = leaf(g, "w", RT_F32, SH(4, 2, 3, 3));
	int w5 = leaf(g, "w5", RT_F32, SH(1, 3, 5, 5)), w3 = leaf(g, "w3", RT_F32, SH(1, 3, 3));
	int xs = leaf(g, "xs", RT_F32, SH(1, 3, 3, 3));
	ir_attrs c1 = { .conv = { { 1, 1 }, { 1, 1, 1, 1 } } };
	ir_attrs c0 = { .conv = { { 1, 1 }, { 0, 0, 0, 0 } } };
	ir_attrs s0 = { .conv = { { 0, 1 }, { 0, 0, 0, 0 } } };
	ir_attrs pn = { .conv = { { 1, 1 }, { 0, 0, -1, 0 } } };
	EXACT(g, op2(g, OP_conv2d, x, w, &c1, "m.lua:8"),
	      "m.lua:8: conv2d: input has 3 channels, weight expects 2 ((2, 3, 9, 7) and (4, 2, 3, 3))");
	EXACT(g, op2(g, OP_conv2d, xs, w5, &c0, "m.lua:9"),
	      "m.lua:9: conv2d: kernel 5x5 is larger than the padded input (1, 3, 3, 3)");
	STARTS(g, op2(g, OP_conv2d, x, w3, &c0, "m.lua:10"), "m.lua:10: conv2d: needs input (N, C, H, W)",
	       "(1, 3, 3)");
	EXACT(g, op2(g, OP_conv2d, xs, w5, &s0, "m.lua:11"),
	      "m.lua:11: conv2d: stride (0, 1) or padding (0, 0, 0, 0) is invalid");
	STARTS(g, op2(g, OP_conv2d, xs, w5, &pn, "m.lua:12"), "m.lua:12: conv2d: stride (1, 1) or padding");
	/* padding makes room for the 5x5 kernel */
	ir_attrs c2 = { .conv = { { 1, 1 }, { 1, 1, 2, 0 } } };
	tu_ok(g, op2(g, OP_conv2d, xs, w5, &c2, "m.lua:13"));
	ir_shape one = SH(1, 1, 1, 1);
	assert_true(ir_shape_eq(&g->nodes[g->n - 1].shape, &one));

	int t = leaf(g, "t", RT_F32, SH(10, 4)), fi = leaf(g, "fi", RT_F32, SH(3));
	EXACT(g, op2(g, OP_gather, t, fi, NULL, "m.lua:14"),
	      "m.lua:14: gather: index must be i32, got F32");
	ir_free(g);
}

static void test_structural(void **state)
{
	ir_graph *g = ir_new();
	(void)state;
	int a = leaf(g, "a", RT_F32, SH(2));
	EXACT(g, op2(g, OP_add, a, 7, NULL, "m.lua:3"), "m.lua:3: add: input 1 is not a node");
	EXACT(g, op2(g, OP_add, -1, a, NULL, "m.lua:4"), "m.lua:4: add: input 0 is not a node");
	EXACT(g, ir_add(g, OP_input, NULL, 0, NULL, NULL, RT_F32, "m.lua:5"),
	      "m.lua:5: input: is a leaf; use its constructor");
	STARTS(g, op2(g, OP_neg, a, a, NULL, "m.lua:6"), "m.lua:6: neg: takes 1 inputs, got 2");
	ir_shape big = { 7, { 1, 1, 1, 1, 1, 1 } };
	EXACT(g, op1(g, OP_reshape, a, NULL, &big, "m.lua:7"), "m.lua:7: reshape: rank 7 is not in 0..6");
	/* a NULL where still gives a parseable message */
	STARTS(g, op2(g, OP_add, a, 9, NULL, NULL), "?: add: ");

	ir_shape z = SH(2, 0), ok = SH(2);
	EXACT(g, ir_input(g, "z", RT_F32, &z, "m.lua:8"), "m.lua:8: input: dimension 1 of (2, 0) is not positive");
	EXACT(g, ir_param(g, "p", RT_F64, &ok, (ir_init){ .kind = INIT_ZEROS }, 1, "m.lua:9"),
	      "m.lua:9: param: dtype F64 is not one of f32, f16, bf16, i32");
	EXACT(g, ir_fill(g, 1, RT_F32, &big, "m.lua:10"), "m.lua:10: fill: rank 7 is not in 0..6");
	double vals[2] = { 1, 2 };
	ir_shape neg = SH(-2);
	STARTS(g, ir_constant(g, vals, RT_F32, &neg, "m.lua:11"), "m.lua:11: constant: dimension 0");
	assert_int_equal(g->nparams, 0);
	ir_free(g);
}

static void test_grads_scatter_random(void **state)
{
	ir_graph *g = ir_new();
	(void)state;
	int go = leaf(g, "g", RT_F32, SH(1, 4, 3, 3)), w = leaf(g, "w", RT_F32, SH(4, 2, 3, 3));
	int x = leaf(g, "x", RT_F32, SH(1, 2, 5, 5));
	ir_attrs a = { .conv = { { 2, 2 }, { 1, 1, 1, 1 } } };
	ir_shape xs = SH(1, 2, 5, 5), wrongx = SH(1, 3, 5, 5), ws = SH(4, 2, 3, 3), wrongw = SH(4, 2, 5, 5);
	int gw[2] = { go, w }, xg[2] = { x, go };
	tu_ok(g, ir_add(g, OP_conv2d_grad_input, gw, 2, &a, &xs, RT_F32, "m.lua:3"));
	tu_ok(g, ir_add(g, OP_conv2d_grad_weight, xg, 2, &a, &ws, RT_F32, "m.lua:4"));
	EXACT(g, ir_add(g, OP_conv2d_grad_input, gw, 2, &a, &wrongx, RT_F32, "m.lua:5"),
	      "m.lua:5: conv2d_grad_input: gradient (1, 4, 3, 3) and weight (4, 2, 3, 3) do not "
	      "come from an input (1, 3, 5, 5)");
	EXACT(g, ir_add(g, OP_conv2d_grad_weight, xg, 2, &a, &wrongw, RT_F32, "m.lua:6"),
	      "m.lua:6: conv2d_grad_weight: input (1, 2, 5, 5) and gradient (1, 4, 3, 3) do not "
	      "come from a weight (4, 2, 5, 5)");
	EXACT(g, ir_add(g, OP_conv2d_grad_input, gw, 2, &a, NULL, RT_F32, "m.lua:7"),
	      "m.lua:7: conv2d_grad_input: needs a target shape");

	int src = leaf(g, "src", RT_F32, SH(2, 3, 2)), ix = leaf(g, "ix", RT_I32, SH(2, 3));
	int fx = leaf(g, "fx", RT_F32, SH(2, 3));
	ir_shape to = SH(4, 2), bad = SH(4, 3);
	int si[2] = { src, ix }, sf[2] = { src, fx };
	tu_ok(g, ir_add(g, OP_scatter_add, si, 2, NULL, &to, RT_F32, "m.lua:8"));
	EXACT(g, ir_add(g, OP_scatter_add, si, 2, NULL, &bad, RT_F32, "m.lua:9"),
	      "m.lua:9: scatter_add: cannot scatter (2, 3, 2) by I32 (2, 3) into (4, 3)");
	EXACT(g, ir_add(g, OP_scatter_add, sf, 2, NULL, &to, RT_F32, "m.lua:10"),
	      "m.lua:10: scatter_add: cannot scatter (2, 3, 2) by F32 (2, 3) into (4, 2)");

	ir_shape s0 = SH0, v = SH(2), out = SH(3, 4);
	int seed = tu_ok(g, ir_input(g, "seed", RT_I32, &s0, "m.lua:1"));
	int fseed = tu_ok(g, ir_input(g, "fseed", RT_F32, &s0, "m.lua:1"));
	int vstep = tu_ok(g, ir_input(g, "vstep", RT_I32, &v, "m.lua:1"));
	int ok[3] = { seed, seed, seed }, f1[3] = { fseed, seed, seed }, v1[3] = { seed, vstep, seed };
	int fs[3] = { seed, seed, fseed };
	tu_ok(g, ir_add(g, OP_rng_normal, ok, 3, NULL, &out, RT_F16, "m.lua:11"));
	EXACT(g, ir_add(g, OP_rng_uniform, f1, 3, NULL, &out, RT_F32, "m.lua:12"),
	      "m.lua:12: rng_uniform: seed, step and shard must be i32 scalars, got F32 ()");
	EXACT(g, ir_add(g, OP_rng_uniform, v1, 3, NULL, &out, RT_F32, "m.lua:13"),
	      "m.lua:13: rng_uniform: seed, step and shard must be i32 scalars, got I32 (2)");
	EXACT(g, ir_add(g, OP_rng_uniform, fs, 3, NULL, &out, RT_F32, "m.lua:16"),
	      "m.lua:16: rng_uniform: seed, step and shard must be i32 scalars, got F32 ()");
	EXACT(g, ir_add(g, OP_rng_normal, ok, 3, NULL, &out, RT_I32, "m.lua:14"),
	      "m.lua:14: rng_normal: draws floating-point values, not I32");
	EXACT(g, ir_add(g, OP_rng_normal, ok, 3, NULL, NULL, RT_F32, "m.lua:15"),
	      "m.lua:15: rng_normal: needs a target shape");
	ir_free(g);
}

/* The conv2d gradients accept only the geometry conv2d itself accepts: a
 * 3x3 kernel does not fit a 2x2 input without padding, even though
 * (2 - 3) / 2 + 1 rounds to the 1x1 gradient given; padding is never
 * negative. */
static void test_grads_match_conv2d(void **state)
{
	ir_graph *g = ir_new();
	(void)state;
	int go = leaf(g, "g", RT_F32, SH(1, 1, 1, 1)), w = leaf(g, "w", RT_F32, SH(1, 1, 3, 3));
	int x = leaf(g, "x", RT_F32, SH(1, 1, 2, 2));
	ir_attrs a = { .conv = { { 2, 2 }, { 0, 0, 0, 0 } } };
	ir_attrs neg = { .conv = { { 1, 1 }, { -1, 0, 0, 0 } } };
	int xw[2] = { x, w }, gw[2] = { go, w }, xg[2] = { x, go };
	ir_shape xs = SH(1, 1, 2, 2), ws = SH(1, 1, 3, 3), xs4 = SH(1, 1, 4, 3);
	STARTS(g, ir_add(g, OP_conv2d, xw, 2, &a, NULL, RT_F32, "m.lua:3"), "m.lua:3: conv2d: kernel");
	STARTS(g, ir_add(g, OP_conv2d_grad_input, gw, 2, &a, &xs, RT_F32, "m.lua:4"),
	       "m.lua:4: conv2d_grad_input: ");
	STARTS(g, ir_add(g, OP_conv2d_grad_weight, xg, 2, &a, &ws, RT_F32, "m.lua:5"),
	       "m.lua:5: conv2d_grad_weight: ");
	/* (4 - 1 - 3) / 1 + 1 = 1 rows, 3 - 3 + 1 = 1 col: fits only with pad -1 */
	STARTS(g, ir_add(g, OP_conv2d_grad_input, gw, 2, &neg, &xs4, RT_F32, "m.lua:6"),
	       "m.lua:6: conv2d_grad_input: ");
	ir_free(g);
}

/* --- from Lua --------------------------------------------------------- */

/* fe_load of tests/scripts/NAME fails with one line starting
 * "<path of AT>:LINE: op: " (AT is NAME or a module beside it) and
 * mentioning each extra substring, and none of it names the library. */
static void lua_error_at(const char *name, const char *at, int line, const char *op, ...)
{
	char path[1024], atpath[1024], prefix[1200], err[1024] = "";
	tu_script(name, path, sizeof path);
	tu_script(at, atpath, sizeof atpath);
	ir_graph *g = fe_load(path, NULL, 0, err, sizeof err);
	if (g) {
		ir_free(g);
		fail_msg("%s loaded, but should fail at line %d", name, line);
	}
	snprintf(prefix, sizeof prefix, "%s:%d: %s: ", atpath, line, op);
	if (!tu_starts(err, prefix))
		fail_msg("expected a message starting \"%s\", got \"%s\"", prefix, err);
	assert_null(strstr(err, "lua/ddpm/"));
	assert_null(strchr(err, '\n'));
	va_list ap;
	va_start(ap, op);
	for (const char *sub; (sub = va_arg(ap, const char *)) != NULL;)
		if (!strstr(err, sub)) {
			va_end(ap);
			fail_msg("expected \"%s\" in \"%s\"", sub, err);
		}
	va_end(ap);
}
#define LUA_ERROR(name, line, ...) \
	lua_error_at((name), (name), (line), __VA_ARGS__, (const char *)NULL)

static void test_lua_builder_errors(void **state)
{
	(void)state;
	LUA_ERROR("err_conv_channels.lua", 5, "conv2d", "3 channels", "expects 2",
	          "(2, 3, 9, 7)", "(4, 2, 3, 3)");
	LUA_ERROR("err_reshape.lua", 4, "reshape", "(2, 3, 5)", "(6, 4)");
	LUA_ERROR("err_broadcast.lua", 6, "add", "(2, 3)", "(4)", "do not broadcast");
	LUA_ERROR("err_matmul.lua", 5, "matmul", "(2, 3)", "(4, 5)");
	LUA_ERROR("err_dup_input.lua", 4, "input", "'x' exists already");
	LUA_ERROR("err_numel.lua", 4, "input", "(1099511627776, 1099511627776)", "more than 2^53 elements");
	LUA_ERROR("err_axis.lua", 5, "reduce_sum", "axis 40 is not a dimension (0..5)");
}

/* Raised inside lua/ddpm/ (by core.fail or by a builder the library
 * called), reported at the script line that called the library. */
static void test_lua_library_errors(void **state)
{
	(void)state;
	LUA_ERROR("err_reshape_infer.lua", 5, "reshape", "-1", "30 elements");
	LUA_ERROR("err_linear.lua", 7, "linear", "5 features", "(3, 4)");
	LUA_ERROR("err_linear_bias.lua", 8, "add", "(2, 3)", "(4)");
	LUA_ERROR("err_group_norm.lua", 6, "group_norm", "6 channels", "4 groups");
	LUA_ERROR("err_group_norm_weight.lua", 6, "reshape", "(5)", "(1, 6, 1, 1)");
	LUA_ERROR("err_pow.lua", 4, "pow", "got 3");
	LUA_ERROR("err_dim.lua", 4, "tensor", "dim 2", "rank 2");
}

/* The innermost frame outside the library is a module beside the script. */
static void test_lua_error_in_module(void **state)
{
	(void)state;
	lua_error_at("err_in_module.lua", "mod_widen.lua", 7, "matmul", "(2, 3)", "(4, 4)",
	             (const char *)NULL);
}

/* Entry errors are user errors too and carry the script's file:line. */
static void test_lua_entry_errors(void **state)
{
	char path[1024], err[1024] = "";
	(void)state;
	tu_script("err_update.lua", path, sizeof path);
	assert_null(fe_load(path, NULL, 0, err, sizeof err));
	assert_true(tu_starts(err, path));
	CONTAINS(err, "entry: update of 'w' F32 (3) with a F32 (4) value");
	const char *at = err + strlen(path);
	if (!tu_starts(at, ":5: ") && !tu_starts(at, ":6: "))
		fail_msg("expected line 5 or 6 of %s in \"%s\"", path, err);
	LUA_ERROR("err_dup_entry.lua", 5, "entry", "'forward' exists already");
}

/* A script whose path merely begins with the library's path (lua_models/
 * beside lua/) is the user's, not the library's. */
static void test_lua_library_prefix(void **state)
{
	char dir[256], lib[512], path[512], err[1024] = "", cmd[1024];
	(void)state;
	tu_tmpdir(dir, sizeof dir);
	snprintf(cmd, sizeof cmd, "ln -s '%s' '%s/lua' && mkdir '%s/lua_models'", fe_lua_dir(), dir,
	         dir);
	assert_int_equal(system(cmd), 0);
	snprintf(lib, sizeof lib, "%s/lua", dir);
	tu_write(dir, "lua_models/m.lua",
	         "local ddpm = require 'ddpm'\n"
	         "local x = ddpm.input('x', { 2, 3 })\n"
	         "local y = x + ddpm.input('b', { 4 })\n", -1, path, sizeof path);
	setenv("DDPMC_LUA_DIR", lib, 1);
	ir_graph *g = fe_load(path, NULL, 0, err, sizeof err);
	unsetenv("DDPMC_LUA_DIR");
	tu_rmtree(dir);
	ir_free(g);
	assert_null(g);
	char want[600];
	snprintf(want, sizeof want, "%s:3: add: ", path);
	if (!tu_starts(err, want))
		fail_msg("expected a message starting \"%s\", got \"%s\"", want, err);
}

/* The driver prints the message as one line on stderr and exits with 1. */
static void test_driver_one_line(void **state)
{
	static const char *const scripts[] = {
		"err_conv_channels.lua", "err_linear.lua", "err_group_norm_weight.lua",
		"err_in_module.lua", "err_reshape_infer.lua",
	};
	(void)state;
	for (int i = 0; i < TU_LEN(scripts); i++) {
		char path[1024], cmd[2048], out[4096];
		tu_script(scripts[i], path, sizeof path);
		snprintf(cmd, sizeof cmd, "'%s' graph '%s'", DDPMC_BIN, path);
		int rc = tu_stderr_of(cmd, out, sizeof out);
		if (rc != 1)
			fail_msg("%s: exit status %d, expected 1; stderr: %s", scripts[i], rc, out);
		if (tu_lines(out) != 1 || out[strlen(out) - 1] != '\n')
			fail_msg("%s: expected one line on stderr, got: [%s]", scripts[i], out);
		if (!tu_starts(out, DDPMC_SOURCE_DIR "/tests/scripts/"))
			fail_msg("%s: the line does not name a script: %s", scripts[i], out);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_elemwise),
		cmocka_unit_test(test_reduce_reshape_permute),
		cmocka_unit_test(test_nonpositive_targets),
		cmocka_unit_test(test_element_count_overflow),
		cmocka_unit_test(test_broadcast_slice),
		cmocka_unit_test(test_concat_pad_upsample),
		cmocka_unit_test(test_matmul_conv_gather),
		cmocka_unit_test(test_structural),
		cmocka_unit_test(test_grads_scatter_random),
		cmocka_unit_test(test_grads_match_conv2d),
		cmocka_unit_test(test_lua_builder_errors),
		cmocka_unit_test(test_lua_library_errors),
		cmocka_unit_test(test_lua_error_in_module),
		cmocka_unit_test(test_lua_entry_errors),
		cmocka_unit_test(test_lua_library_prefix),
		cmocka_unit_test(test_driver_one_line),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
