/* test_ops: every op of ops.h run by the reference interpreter on tiny
 * graphs, compared with values worked out by hand and written here as
 * literals (never recomputed with the formula under test). Shapes are
 * awkward on purpose: odd sizes, size-1 dims, rank mismatches.
 *
 * Each test builds its graph with the C API, feeds inputs through an
 * rt_tensorset and checks the one output of a fresh entry. */
#include "testutil.h"

#include <sys/wait.h>

#include "philox.h"

/* f32 results of double math rounded once: 1e-6 relative is ~8 f32 ulps,
 * far tighter than any wrong formula. */
#define RT 1e-6

typedef struct {
	ir_graph *g;
	rt_tensorset in, out;
} fixture;

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof *f);
	assert_non_null(f);
	f->g = ir_new();
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	ir_free(f->g);
	rt_set_free(&f->in);
	rt_set_free(&f->out);
	free(f);
	return 0;
}

/* Runs `node` as the only output of a new entry (clearing earlier outputs). */
static const rt_tensor *run(fixture *f, int node)
{
	rt_set_free(&f->out);
	return tu_run(f->g, node, &f->in, &f->out);
}

/* x (2, 3) = {-1.5, -0.5, 0, 0.5, 1, 2} through one unary op. */
static const rt_tensor *unary_on(fixture *f, ir_opcode op, const double *x)
{
	char name[32];
	snprintf(name, sizeof name, "x%d", f->g->n);
	int a = tu_input(f->g, &f->in, name, RT_F32, SH(2, 3), x);
	return run(f, tu_unary(f->g, op, a));
}

static void test_checker_notices_differences(void **state)
{
	fixture *f = *state;
	static const double x[] = { 1, 2, 3 };
	int a = tu_input(f->g, &f->in, "x", RT_F32, SH(3), x);
	const rt_tensor *y = run(f, tu_unary(f->g, OP_neg, a));
	static const double off[] = { -1, -2, -3.0001 }, nan[] = { -1, NAN, -3 };
	ir_shape s = SH(3), wrong = SH(1, 3);
	assert_int_equal(tu_diff("self-check (this difference is expected)", y, &s, off, RT, 0), 1);
	assert_int_equal(tu_diff("self-check (this difference is expected)", y, &s, nan, RT, 0), 1);
	assert_int_equal(tu_diff("self-check (this difference is expected)", y, &wrong, off, RT, 0), 1);
}

static void test_unary(void **state)
{
	fixture *f = *state;
	static const double x[] = { -1.5, -0.5, 0, 0.5, 1, 2 };
	static const double pos[] = { 0.25, 0.5, 1, 2, 4, 9 };
	static const double neg[] = { 1.5, 0.5, 0, -0.5, -1, -2 };
	static const double ex[] = { 0.22313016, 0.60653066, 1, 1.64872127, 2.71828183, 7.3890561 };
	static const double sn[] = { -0.997494987, -0.479425539, 0, 0.479425539, 0.841470985,
	                             0.909297427 };
	static const double cs[] = { 0.0707372017, 0.877582562, 1, 0.877582562, 0.540302306,
	                             -0.416146837 };
	static const double th[] = { -0.905148254, -0.462117157, 0, 0.462117157, 0.761594156,
	                             0.96402758 };
	static const double sg[] = { 0.182425524, 0.377540669, 0.5, 0.622459331, 0.731058579,
	                             0.880797078 };
	static const double ab[] = { 1.5, 0.5, 0, 0.5, 1, 2 };
	static const double lg[] = { -1.38629436, -0.693147181, 0, 0.693147181, 1.38629436,
	                             2.19722458 };
	static const double sq[] = { 0.5, 0.707106781, 1, 1.41421356, 2, 3 };
	static const double rs[] = { 2, 1.41421356, 1, 0.707106781, 0.5, 0.333333333 };
	CHECK_VALUES(unary_on(f, OP_neg, x), SH(2, 3), neg, 0, 0);
	CHECK_VALUES(unary_on(f, OP_exp, x), SH(2, 3), ex, RT, 0);
	CHECK_VALUES(unary_on(f, OP_sin, x), SH(2, 3), sn, RT, 1e-9);
	CHECK_VALUES(unary_on(f, OP_cos, x), SH(2, 3), cs, RT, 1e-9);
	CHECK_VALUES(unary_on(f, OP_tanh, x), SH(2, 3), th, RT, 1e-9);
	CHECK_VALUES(unary_on(f, OP_sigmoid, x), SH(2, 3), sg, RT, 0);
	CHECK_VALUES(unary_on(f, OP_abs, x), SH(2, 3), ab, 0, 0);
	CHECK_VALUES(unary_on(f, OP_log, pos), SH(2, 3), lg, RT, 1e-9);
	CHECK_VALUES(unary_on(f, OP_sqrt, pos), SH(2, 3), sq, RT, 0);
	CHECK_VALUES(unary_on(f, OP_rsqrt, pos), SH(2, 3), rs, RT, 0);
}

static void test_unary_edges(void **state)
{
	fixture *f = *state;
	static const double x[] = { 0, -1, -0.0, INFINITY, -INFINITY, 1 };
	static const double lg[] = { -INFINITY, NAN, -INFINITY, INFINITY, NAN, 0 };
	static const double rs[] = { INFINITY, NAN, -INFINITY, 0, NAN, 1 };
	static const double sg[] = { 0.5, 0.268941421, 0.5, 1, 0, 0.731058579 };
	CHECK_VALUES(unary_on(f, OP_log, x), SH(2, 3), lg, 0, 0);
	CHECK_VALUES(unary_on(f, OP_rsqrt, x), SH(2, 3), rs, 0, 0);
	CHECK_VALUES(unary_on(f, OP_sigmoid, x), SH(2, 3), sg, RT, 0);
}

static const rt_tensor *cast_of(fixture *f, const double *x, int n, rt_dtype from, rt_dtype to)
{
	char name[32];
	snprintf(name, sizeof name, "x%d", f->g->n);
	int a = tu_input(f->g, &f->in, name, from, SH(n), x);
	return run(f, tu_add(f->g, OP_cast, &a, 1, NULL, NULL, to));
}

/* bf16 keeps 8 significant bits, f16 11; ties go to the even neighbour. */
static void test_cast(void **state)
{
	fixture *f = *state;
	static const double x_bf[] = { 1.00390625, 1.01171875, 3.14159274, -2.5, 1e30 };
	static const double y_bf[] = { 1.0, 1.015625, 3.140625, -2.5, 1.0002555517425873e+30 };
	const rt_tensor *t = cast_of(f, x_bf, 5, RT_F32, RT_BF16);
	assert_int_equal(t->dtype, RT_BF16);
	CHECK_VALUES(t, SH(5), y_bf, 0, 0);

	static const double x_h[] = { 1.00048828125, 1.00146484375, 0.1, 65504, 65520, 1e-7 };
	static const double y_h[] = { 1.0, 1.001953125, 0.0999755859375, 65504, INFINITY,
	                              1.1920928955078125e-07 };
	t = cast_of(f, x_h, 6, RT_F32, RT_F16);
	assert_int_equal(t->dtype, RT_F16);
	CHECK_VALUES(t, SH(6), y_h, 0, 0);

	/* toward zero, saturating, NaN to 0 (torch's .to(torch.int32)) */
	static const double x_i[] = { -2.7, -0.5, 0.5, 2.9, 3e9, -3e9, NAN };
	static const double y_i[] = { -2, 0, 0, 2, 2147483647, -2147483648.0, 0 };
	t = cast_of(f, x_i, 7, RT_F32, RT_I32);
	assert_int_equal(t->dtype, RT_I32);
	CHECK_VALUES(t, SH(7), y_i, 0, 0);

	static const double x_if[] = { 7, -3, 16777217 };
	static const double y_if[] = { 7, -3, 16777216 };
	t = cast_of(f, x_if, 3, RT_I32, RT_F32);
	CHECK_VALUES(t, SH(3), y_if, 0, 0);

	static const double x_hb[] = { 1.001953125, 0.0999755859375 };
	static const double y_hb[] = { 1.0, 0.10009765625 };
	t = cast_of(f, x_hb, 2, RT_F16, RT_BF16);
	CHECK_VALUES(t, SH(2), y_hb, 0, 0);
}

/* A node of dtype bf16 or f16 stores every element rounded to it. */
static void test_low_precision_storage(void **state)
{
	fixture *f = *state;
	static const double a_bf[] = { 1, 256 }, b_bf[] = { 0.00390625, 1 };
	static const double s_bf[] = { 1, 256 };     /* 1 + 2^-8 and 257 are ties */
	int a = tu_input(f->g, &f->in, "a", RT_BF16, SH(2), a_bf);
	int b = tu_input(f->g, &f->in, "b", RT_BF16, SH(2), b_bf);
	const rt_tensor *t = run(f, tu_binary(f->g, OP_add, a, b));
	assert_int_equal(t->dtype, RT_BF16);
	CHECK_VALUES(t, SH(2), s_bf, 0, 0);

	static const double a_h[] = { 2048, 65504, 3 }, b_h[] = { 1, 32, 0.1 };
	/* 2049 ties to 2048; 65536 overflows; 3 * f16(0.1) = 0.2999267578125 ties
	 * between 0.2998046875 and 0.30004882812 and goes to the even one */
	static const double p_h[] = { 2048, INFINITY, 0.2998046875 };
	a = tu_input(f->g, &f->in, "ah", RT_F16, SH(3), a_h);
	b = tu_input(f->g, &f->in, "bh", RT_F16, SH(3), b_h);
	int s = tu_binary(f->g, OP_add, a, b);
	int m = tu_binary(f->g, OP_mul, a, b);
	static const double s_h[] = { 2048, INFINITY, 3.099609375 };
	CHECK_VALUES(run(f, s), SH(3), s_h, 0, 0);
	t = run(f, m);
	assert_int_equal(t->dtype, RT_F16);
	assert_true(rt_load(t->dtype, t->data, 0) == 2048);
	assert_true(isinf(rt_load(t->dtype, t->data, 1)));
	assert_true(rt_load(t->dtype, t->data, 2) == p_h[2]);
}

/* exp(0.0072975159) = 1.00732420763 lies just below the f16 midpoint
 * 1.00732421875 between 1.0068359375 and 1.0078125. Rounded once (as the
 * interpreter's contract says) it is 1.0068359375; rounding to f32 first
 * lands exactly on the midpoint, which then goes to even: 1.0078125. */
static void test_f16_rounds_once(void **state)
{
	fixture *f = *state;
	static const double x[] = { 0.007297515869140625, 0.0226898193359375 };
	static const double y[] = { 1.0068359375, 1.0224609375 };
	int a = tu_input(f->g, &f->in, "x", RT_F16, SH(2), x);
	const rt_tensor *t = run(f, tu_unary(f->g, OP_exp, a));
	assert_int_equal(t->dtype, RT_F16);
	CHECK_VALUES(t, SH(2), y, 0, 0);
}

/* a (2, 3), row (3), col (2, 1). */
static const double A23[] = { 1, 2, 3, 4, 5, 6 };
static const double ROW[] = { 10, 20, 30 };
static const double COL[] = { 100, 200 };

static void test_binary_broadcast(void **state)
{
	fixture *f = *state;
	ir_graph *g = f->g;
	int a = tu_input(g, &f->in, "a", RT_F32, SH(2, 3), A23);
	int r = tu_input(g, &f->in, "r", RT_F32, SH(3), ROW);
	int c = tu_input(g, &f->in, "c", RT_F32, SH(2, 1), COL);
	static const double add_ar[] = { 11, 22, 33, 14, 25, 36 };
	static const double add_ac[] = { 101, 102, 103, 204, 205, 206 };
	static const double add_cr[] = { 110, 120, 130, 210, 220, 230 };
	static const double sub_ar[] = { -9, -18, -27, -6, -15, -24 };
	static const double sub_ra[] = { 9, 18, 27, 6, 15, 24 };
	static const double mul_ac[] = { 100, 200, 300, 800, 1000, 1200 };
	static const double div_ar[] = { 0.1, 0.1, 0.1, 0.4, 0.25, 0.2 };
	static const double div_ca[] = { 100, 50, 33.3333333, 50, 40, 33.3333333 };
	CHECK_VALUES(run(f, tu_binary(g, OP_add, a, r)), SH(2, 3), add_ar, 0, 0);
	CHECK_VALUES(run(f, tu_binary(g, OP_add, a, c)), SH(2, 3), add_ac, 0, 0);
	CHECK_VALUES(run(f, tu_binary(g, OP_add, c, r)), SH(2, 3), add_cr, 0, 0);
	CHECK_VALUES(run(f, tu_binary(g, OP_sub, a, r)), SH(2, 3), sub_ar, 0, 0);
	CHECK_VALUES(run(f, tu_binary(g, OP_sub, r, a)), SH(2, 3), sub_ra, 0, 0);
	CHECK_VALUES(run(f, tu_binary(g, OP_mul, c, a)), SH(2, 3), mul_ac, 0, 0);
	CHECK_VALUES(run(f, tu_binary(g, OP_div, a, r)), SH(2, 3), div_ar, RT, 0);
	CHECK_VALUES(run(f, tu_binary(g, OP_div, c, a)), SH(2, 3), div_ca, RT, 0);
}

/* (3, 1) with (2, 1, 2) -> (2, 3, 2); rank 0 with anything. */
static void test_broadcast_ranks(void **state)
{
	fixture *f = *state;
	ir_graph *g = f->g;
	static const double p[] = { 1, 2, 3 }, q[] = { 10, 20, 30, 40 };
	int a = tu_input(g, &f->in, "p", RT_F32, SH(3, 1), p);
	int b = tu_input(g, &f->in, "q", RT_F32, SH(2, 1, 2), q);
	static const double pq[] = { 11, 21, 12, 22, 13, 23, 31, 41, 32, 42, 33, 43 };
	CHECK_VALUES(run(f, tu_binary(g, OP_add, a, b)), SH(2, 3, 2), pq, 0, 0);
	ir_shape s0 = SH0;
	int k = tu_ok(g, ir_fill(g, 0.5, RT_F32, &s0, "test.lua:3"));
	static const double pk[] = { 0.5, 1, 1.5 };
	CHECK_VALUES(run(f, tu_binary(g, OP_mul, k, a)), SH(3, 1), pk, 0, 0);
}

static void test_max_min_compare(void **state)
{
	fixture *f = *state;
	ir_graph *g = f->g;
	static const double r2[] = { 2, 2, 7 };
	int a = tu_input(g, &f->in, "a", RT_F32, SH(2, 3), A23);
	int r = tu_input(g, &f->in, "r", RT_F32, SH(3), r2);
	static const double mx[] = { 2, 2, 7, 4, 5, 7 }, mn[] = { 1, 2, 3, 2, 2, 6 };
	static const double lt[] = { 1, 0, 1, 0, 0, 1 }, le[] = { 1, 1, 1, 0, 0, 1 };
	static const double eq[] = { 0, 1, 0, 0, 0, 0 }, gt[] = { 0, 0, 0, 1, 1, 0 };
	CHECK_VALUES(run(f, tu_binary(g, OP_max, a, r)), SH(2, 3), mx, 0, 0);
	CHECK_VALUES(run(f, tu_binary(g, OP_min, r, a)), SH(2, 3), mn, 0, 0);
	CHECK_VALUES(run(f, tu_binary(g, OP_lt, a, r)), SH(2, 3), lt, 0, 0);
	CHECK_VALUES(run(f, tu_binary(g, OP_le, a, r)), SH(2, 3), le, 0, 0);
	CHECK_VALUES(run(f, tu_binary(g, OP_eq, r, a)), SH(2, 3), eq, 0, 0);
	CHECK_VALUES(run(f, tu_binary(g, OP_lt, r, a)), SH(2, 3), gt, 0, 0);

	/* NaN propagates through max and min as in torch.maximum */
	static const double n1[] = { NAN, 1, -0.5 }, n2[] = { 0, NAN, -1 };
	int p = tu_input(g, &f->in, "n1", RT_F32, SH(3), n1);
	int q = tu_input(g, &f->in, "n2", RT_F32, SH(3), n2);
	static const double nmx[] = { NAN, NAN, -0.5 }, nmn[] = { NAN, NAN, -1 };
	static const double nlt[] = { 0, 0, 0 }, neq[] = { 0, 1, 1 };
	CHECK_VALUES(run(f, tu_binary(g, OP_max, p, q)), SH(3), nmx, 0, 0);
	CHECK_VALUES(run(f, tu_binary(g, OP_min, p, q)), SH(3), nmn, 0, 0);
	CHECK_VALUES(run(f, tu_binary(g, OP_lt, p, q)), SH(3), nlt, 0, 0);
	CHECK_VALUES(run(f, tu_binary(g, OP_eq, p, p)), SH(3), neq, 0, 0);

	/* i32 inputs give i32 results */
	static const double i1[] = { 3, -4, 5 }, i2[] = { -7, -4, 9 };
	int u = tu_input(g, &f->in, "i1", RT_I32, SH(3), i1);
	int v = tu_input(g, &f->in, "i2", RT_I32, SH(3), i2);
	static const double imx[] = { 3, -4, 9 }, isub[] = { 10, 0, -4 };
	const rt_tensor *t = run(f, tu_binary(g, OP_max, u, v));
	assert_int_equal(t->dtype, RT_I32);
	CHECK_VALUES(t, SH(3), imx, 0, 0);
	CHECK_VALUES(run(f, tu_binary(g, OP_sub, u, v)), SH(3), isub, 0, 0);
}

/* select(c, a, b): c (2, 1) picks a's row 0 and b (3) for row 1. */
static void test_select(void **state)
{
	fixture *f = *state;
	ir_graph *g = f->g;
	static const double cond[] = { 1, 0 }, ci[] = { 0, -3, 0, 2, 1, 0 };
	int c = tu_input(g, &f->in, "c", RT_F32, SH(2, 1), cond);
	int a = tu_input(g, &f->in, "a", RT_F32, SH(2, 3), A23);
	int b = tu_input(g, &f->in, "b", RT_F32, SH(3), ROW);
	int k = tu_input(g, &f->in, "k", RT_I32, SH(2, 3), ci);
	int in[3] = { c, a, b };
	static const double rows[] = { 1, 2, 3, 10, 20, 30 };
	CHECK_VALUES(run(f, tu_add(g, OP_select, in, 3, NULL, NULL, RT_F32)), SH(2, 3), rows, 0, 0);
	int in2[3] = { k, b, a };               /* an i32 condition; any non-zero is true */
	static const double mixed[] = { 1, 20, 3, 10, 20, 6 };
	const rt_tensor *t = run(f, tu_add(g, OP_select, in2, 3, NULL, NULL, RT_F32));
	assert_int_equal(t->dtype, RT_F32);
	CHECK_VALUES(t, SH(2, 3), mixed, 0, 0);
}

/* x (2, 3, 4) = 0..23. */
static int iota(fixture *f, const char *name, ir_shape s)
{
	double v[720];
	for (int i = 0; i < ir_numel(&s); i++)
		v[i] = i;
	return tu_input(f->g, &f->in, name, RT_F32, s, v);
}

static int reduce(ir_graph *g, ir_opcode op, int x, unsigned axes)
{
	ir_attrs a = { .reduce = { axes } };
	return tu_add(g, op, &x, 1, &a, NULL, RT_F32);
}

static void test_reduce(void **state)
{
	fixture *f = *state;
	ir_graph *g = f->g;
	int x = iota(f, "x", SH(2, 3, 4));
	static const double s1[] = { 12, 15, 18, 21, 48, 51, 54, 57 };
	static const double s02[] = { 60, 92, 124 };
	static const double all[] = { 276 };
	CHECK_VALUES(run(f, reduce(g, OP_reduce_sum, x, 0x2)), SH(2, 1, 4), s1, 0, 0);
	CHECK_VALUES(run(f, reduce(g, OP_reduce_sum, x, 0x5)), SH(1, 3, 1), s02, 0, 0);
	CHECK_VALUES(run(f, reduce(g, OP_reduce_sum, x, 0x7)), SH(1, 1, 1), all, 0, 0);

	static const double v[] = { 3, -1, 7, -5, -2, -9 };
	int y = tu_input(g, &f->in, "y", RT_F32, SH(2, 3), v);
	static const double m1[] = { 7, -2 }, m0[] = { 3, -1, 7 }, mall[] = { 7 };
	CHECK_VALUES(run(f, reduce(g, OP_reduce_max, y, 0x2)), SH(2, 1), m1, 0, 0);
	CHECK_VALUES(run(f, reduce(g, OP_reduce_max, y, 0x1)), SH(1, 3), m0, 0, 0);
	CHECK_VALUES(run(f, reduce(g, OP_reduce_max, y, 0x3)), SH(1, 1), mall, 0, 0);

	/* all negative: the max is not 0 */
	static const double negs[] = { -4, -2.5, -3 }, nm[] = { -2.5 };
	int z = tu_input(g, &f->in, "z", RT_F32, SH(3, 1), negs);
	CHECK_VALUES(run(f, reduce(g, OP_reduce_max, z, 0x1)), SH(1, 1), nm, 0, 0);
	/* a size-1 dim reduces to itself; no axes is the identity */
	CHECK_VALUES(run(f, reduce(g, OP_reduce_sum, z, 0x2)), SH(3, 1), negs, 0, 0);
	CHECK_VALUES(run(f, reduce(g, OP_reduce_sum, z, 0)), SH(3, 1), negs, 0, 0);
}

static void test_reshape_permute(void **state)
{
	fixture *f = *state;
	ir_graph *g = f->g;
	int x = iota(f, "x", SH(2, 3, 4));
	ir_shape to = SH(4, 1, 6);
	static const double same[] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
	                               16, 17, 18, 19, 20, 21, 22, 23 };
	CHECK_VALUES(run(f, tu_add(g, OP_reshape, &x, 1, NULL, &to, RT_F32)), SH(4, 1, 6), same,
	             0, 0);
	ir_attrs p = { .permute = { { 2, 0, 1 } } };    /* out[i, j, k] = x[j, k, i] */
	static const double perm[] = { 0, 4, 8, 12, 16, 20, 1, 5, 9, 13, 17, 21,
	                               2, 6, 10, 14, 18, 22, 3, 7, 11, 15, 19, 23 };
	CHECK_VALUES(run(f, tu_add(g, OP_permute, &x, 1, &p, NULL, RT_F32)), SH(4, 2, 3), perm,
	             0, 0);
	ir_attrs p2 = { .permute = { { 1, 0, 2 } } };
	static const double swap[] = { 0, 1, 2, 3, 12, 13, 14, 15, 4, 5, 6, 7,
	                               16, 17, 18, 19, 8, 9, 10, 11, 20, 21, 22, 23 };
	CHECK_VALUES(run(f, tu_add(g, OP_permute, &x, 1, &p2, NULL, RT_F32)), SH(3, 2, 4), swap,
	             0, 0);
}

static void test_broadcast(void **state)
{
	fixture *f = *state;
	ir_graph *g = f->g;
	static const double v[] = { 1, 2, 3 };
	int x = tu_input(g, &f->in, "x", RT_F32, SH(3, 1), v);
	ir_shape to = SH(2, 3, 2);
	static const double want[] = { 1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3 };
	CHECK_VALUES(run(f, tu_add(g, OP_broadcast, &x, 1, NULL, &to, RT_F32)), to, want, 0, 0);
	static const double one[] = { -7 };
	int y = tu_input(g, &f->in, "y", RT_F32, SH(1), one);
	ir_shape to2 = SH(2, 2);
	static const double want2[] = { -7, -7, -7, -7 };
	CHECK_VALUES(run(f, tu_add(g, OP_broadcast, &y, 1, NULL, &to2, RT_F32)), to2, want2, 0, 0);
}

/* x (3, 7): row r holds 7r .. 7r+6. */
static void test_slice(void **state)
{
	fixture *f = *state;
	ir_graph *g = f->g;
	int x = iota(f, "x", SH(3, 7));
	ir_attrs a = { .slice = { { 1, 1 }, { 1, 3 } } };   /* rows 1..2, cols 1, 4 */
	ir_shape n = SH(2, 2);
	static const double w1[] = { 8, 11, 15, 18 };
	CHECK_VALUES(run(f, tu_add(g, OP_slice, &x, 1, &a, &n, RT_F32)), n, w1, 0, 0);
	ir_attrs b = { .slice = { { 0, 2 }, { 2, 2 } } };   /* rows 0, 2, cols 2, 4, 6 */
	ir_shape m = SH(2, 3);
	static const double w2[] = { 2, 4, 6, 16, 18, 20 };
	CHECK_VALUES(run(f, tu_add(g, OP_slice, &x, 1, &b, &m, RT_F32)), m, w2, 0, 0);
	ir_attrs c = { .slice = { { 2, 6 }, { 5, 9 } } };   /* one element: x[2, 6] */
	ir_shape o = SH(1, 1);
	static const double w3[] = { 20 };
	CHECK_VALUES(run(f, tu_add(g, OP_slice, &x, 1, &c, &o, RT_F32)), o, w3, 0, 0);
}

static void test_concat(void **state)
{
	fixture *f = *state;
	ir_graph *g = f->g;
	static const double va[] = { 1, 2, 3, 4 };
	static const double vb[] = { 10, 11, 12, 13, 14, 15, 16, 17 };
	static const double vc[] = { 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31 };
	int in[3] = { tu_input(g, &f->in, "a", RT_F32, SH(2, 1, 2), va),
	              tu_input(g, &f->in, "b", RT_F32, SH(2, 2, 2), vb),
	              tu_input(g, &f->in, "c", RT_F32, SH(2, 3, 2), vc) };
	ir_attrs ax = { .concat = { 1 } };
	static const double want[] = { 1, 2, 10, 11, 12, 13, 20, 21, 22, 23, 24, 25,
	                               3, 4, 14, 15, 16, 17, 26, 27, 28, 29, 30, 31 };
	CHECK_VALUES(run(f, tu_add(g, OP_concat, in, 3, &ax, NULL, RT_F32)), SH(2, 6, 2), want,
	             0, 0);
	ir_attrs last = { .concat = { 2 } };
	int two[2] = { in[0], in[0] };
	static const double w2[] = { 1, 2, 1, 2, 3, 4, 3, 4 };
	CHECK_VALUES(run(f, tu_add(g, OP_concat, two, 2, &last, NULL, RT_F32)), SH(2, 1, 4), w2,
	             0, 0);
}

static void test_pad(void **state)
{
	fixture *f = *state;
	ir_graph *g = f->g;
	int x = tu_input(g, &f->in, "x", RT_F32, SH(2, 3), A23);
	ir_attrs a = { .pad = { { 1, 0 }, { 0, 2 }, -1 } };
	static const double w1[] = { -1, -1, -1, -1, -1, 1, 2, 3, -1, -1, 4, 5, 6, -1, -1 };
	CHECK_VALUES(run(f, tu_add(g, OP_pad, &x, 1, &a, NULL, RT_F32)), SH(3, 5), w1, 0, 0);
	ir_attrs b = { .pad = { { 0, 2 }, { 1, 0 }, 9 } };
	static const double w2[] = { 9, 9, 1, 2, 3, 9, 9, 4, 5, 6, 9, 9, 9, 9, 9 };
	CHECK_VALUES(run(f, tu_add(g, OP_pad, &x, 1, &b, NULL, RT_F32)), SH(3, 5), w2, 0, 0);
}

static void test_upsample2d(void **state)
{
	fixture *f = *state;
	ir_graph *g = f->g;
	int x = iota(f, "x", SH(1, 2, 2, 3));
	ir_attrs a = { .upsample = { 2 } };
	static const double w[] = { 0, 0, 1, 1, 2, 2, 0, 0, 1, 1, 2, 2,
	                            3, 3, 4, 4, 5, 5, 3, 3, 4, 4, 5, 5,
	                            6, 6, 7, 7, 8, 8, 6, 6, 7, 7, 8, 8,
	                            9, 9, 10, 10, 11, 11, 9, 9, 10, 10, 11, 11 };
	CHECK_VALUES(run(f, tu_add(g, OP_upsample2d, &x, 1, &a, NULL, RT_F32)), SH(1, 2, 4, 6), w,
	             0, 0);
	static const double v[] = { 1, 2 };
	int y = tu_input(g, &f->in, "y", RT_F32, SH(1, 1, 2, 1), v);
	ir_attrs b = { .upsample = { 3 } };
	static const double w3[] = { 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2 };
	CHECK_VALUES(run(f, tu_add(g, OP_upsample2d, &y, 1, &b, NULL, RT_F32)), SH(1, 1, 6, 3),
	             w3, 0, 0);
}

static void test_matmul(void **state)
{
	fixture *f = *state;
	ir_graph *g = f->g;
	static const double va[] = { 1, 2, 3, 4, 5, 6, -1, 0, 2, 3, -2, 1 };
	static const double vb[] = { 1, 0, 0, 1, 1, 1, 2, 1, 1, 3, 0, -1 };
	int a = tu_input(g, &f->in, "a", RT_F32, SH(2, 2, 3), va);
	int b = tu_input(g, &f->in, "b", RT_F32, SH(2, 3, 2), vb);
	static const double want[] = { 4, 5, 10, 11, -2, -3, 4, -4 };
	CHECK_VALUES(run(f, tu_binary(g, OP_matmul, a, b)), SH(2, 2, 2), want, 0, 0);
	/* (1, 3) x (3, 1) and (3, 1) x (1, 3) */
	static const double r[] = { 1, 2, 3 }, c[] = { 4, -5, 6 };
	int x = tu_input(g, &f->in, "r", RT_F32, SH(1, 3), r);
	int y = tu_input(g, &f->in, "c", RT_F32, SH(3, 1), c);
	static const double dot[] = { 12 };
	static const double outer[] = { 4, 8, 12, -5, -10, -15, 6, 12, 18 };
	CHECK_VALUES(run(f, tu_binary(g, OP_matmul, x, y)), SH(1, 1), dot, 0, 0);
	CHECK_VALUES(run(f, tu_binary(g, OP_matmul, y, x)), SH(3, 3), outer, 0, 0);
}

/* x (1, 2, 5, 6): channel 0 is 1..30 (x[y][x] = 6y + x + 1), channel 1 all
 * ones. w (2, 2, 3, 3): output 0 box-sums channel 0; output 1 takes
 * +x[0][0] - x[2][2] of channel 0 and box-sums channel 1 (so counts the
 * taps inside the image). Stride 2, padding top 1, bottom 0, left 0,
 * right 1 -> (1, 2, 2, 3). */
static void test_conv2d(void **state)
{
	fixture *f = *state;
	ir_graph *g = f->g;
	double xv[60], wv[36] = { 0 };
	for (int i = 0; i < 30; i++)
		xv[i] = i + 1, xv[30 + i] = 1;
	for (int i = 0; i < 9; i++)
		wv[i] = 1, wv[27 + i] = 1;
	wv[18] = 1, wv[26] = -1;
	int x = tu_input(g, &f->in, "x", RT_F32, SH(1, 2, 5, 6), xv);
	int w = tu_input(g, &f->in, "w", RT_F32, SH(2, 2, 3, 3), wv);
	ir_attrs a = { .conv = { { 2, 2 }, { 1, 0, 0, 1 } } };
	int in[2] = { x, w };
	static const double want[] = { 30, 42, 34, 126, 144, 105, -3, -5, 4, -5, -5, 17 };
	CHECK_VALUES(run(f, tu_add(g, OP_conv2d, in, 2, &a, NULL, RT_F32)), SH(1, 2, 2, 3), want,
	             0, 0);

	/* batch 2, 1x1 kernel, 3 outputs, stride (1, 2) */
	static const double bx[] = { 1, 2, 3, 4, 5, 6 }, bw[] = { 1, -1, 2 };
	int x2 = tu_input(g, &f->in, "bx", RT_F32, SH(2, 1, 1, 3), bx);
	int w2 = tu_input(g, &f->in, "bw", RT_F32, SH(3, 1, 1, 1), bw);
	ir_attrs s = { .conv = { { 1, 2 }, { 0, 0, 0, 0 } } };
	int in2[2] = { x2, w2 };
	static const double want2[] = { 1, 3, -1, -3, 2, 6, 4, 6, -4, -6, 8, 12 };
	CHECK_VALUES(run(f, tu_add(g, OP_conv2d, in2, 2, &s, NULL, RT_F32)), SH(2, 3, 1, 2), want2,
	             0, 0);
}

static void test_gather(void **state)
{
	fixture *f = *state;
	ir_graph *g = f->g;
	static const double tv[] = { 0, 1, 10, 11, 20, 21, 30, 31 };
	static const double iv[] = { 3, 0, 2, 2, 2, 1 };
	int t = tu_input(g, &f->in, "t", RT_F32, SH(4, 2), tv);
	int i = tu_input(g, &f->in, "i", RT_I32, SH(2, 3), iv);
	static const double want[] = { 30, 31, 0, 1, 20, 21, 20, 21, 20, 21, 10, 11 };
	CHECK_VALUES(run(f, tu_binary(g, OP_gather, t, i)), SH(2, 3, 2), want, 0, 0);
	/* rank-1 table: one value per index */
	static const double t1[] = { 0.5, -1, 2 }, i1[] = { 2, 2, 0, 1 };
	int a = tu_input(g, &f->in, "t1", RT_F32, SH(3), t1);
	int b = tu_input(g, &f->in, "i1", RT_I32, SH(4), i1);
	static const double w1[] = { 2, 2, 0.5, -1 };
	CHECK_VALUES(run(f, tu_binary(g, OP_gather, a, b)), SH(4), w1, 0, 0);
}

/* An index outside the table is an error naming the node's script line. */
static void test_gather_out_of_range(void **state)
{
	fixture *f = *state;
	ir_graph *g = f->g;
	static const double tv[] = { 1, 2, 3 }, iv[] = { 0, 3 };
	int t = tu_input(g, &f->in, "t", RT_F32, SH(3), tv);
	int i = tu_input(g, &f->in, "i", RT_I32, SH(2), iv);
	int in[2] = { t, i };
	int y = tu_ok(g, ir_add(g, OP_gather, in, 2, NULL, NULL, RT_F32, "emb.lua:9"));
	ir_binding b = { "y", y };
	tu_ok(g, ir_entry_add(g, "fwd", &b, 1, NULL, 0, "test.lua:1"));
	char err[256] = "";
	assert_int_equal(interp_run(g, ir_entry_find(g, "fwd"), NULL, &f->in, &f->out, err,
	                            sizeof err), -1);
	CONTAINS(err, "emb.lua:9: gather:", "index 3", "0..2");
}

/* fill, constant (rounded to its dtype once), and an input converted to
 * its node's dtype. */
static void test_leaves(void **state)
{
	fixture *f = *state;
	ir_graph *g = f->g;
	ir_shape s = SH(2, 2);
	static const double fv[] = { 2.5, 2.5, 2.5, 2.5 };
	CHECK_VALUES(run(f, tu_ok(g, ir_fill(g, 2.5, RT_F32, &s, "t.lua:1"))), s, fv, 0, 0);
	static const double cv[] = { 0.1, -3, 1e10, 7 };
	static const double cbf[] = { 0.10009765625, -3, 9999220736, 7 };
	const rt_tensor *t = run(f, tu_ok(g, ir_constant(g, cv, RT_BF16, &s, "t.lua:2")));
	assert_int_equal(t->dtype, RT_BF16);
	CHECK_VALUES(t, s, cbf, 0, 0);
	static const double ci[] = { 1, -2, 3, 40000 };
	CHECK_VALUES(run(f, tu_ok(g, ir_constant(g, ci, RT_I32, &s, "t.lua:3"))), s, ci, 0, 0);

	/* an f32 tensor fed to an i32 input truncates like cast */
	ir_shape s3 = SH(3);
	int in = tu_ok(g, ir_input(g, "k", RT_I32, &s3, "t.lua:4"));
	rt_tensor *k = rt_set_add(&f->in, "k", RT_F32, 1, s3.d);
	float *kv = k->data;
	kv[0] = 2.7f, kv[1] = -1.5f, kv[2] = 9;
	static const double kw[] = { 2, -1, 9 };
	CHECK_VALUES(run(f, in), s3, kw, 0, 0);
}

/* A param lives in the state set; an entry's update replaces it after the
 * entry ran (outputs see the old value). */
static void test_param_update(void **state)
{
	fixture *f = *state;
	ir_graph *g = f->g;
	static const double xv[] = { 0.5, -2, 3 };
	int x = tu_input(g, &f->in, "x", RT_F32, SH(3), xv);
	ir_shape s = SH(3);
	int p = tu_ok(g, ir_param(g, "p", RT_F32, &s, (ir_init){ .kind = INIT_ONES }, 1, "t.lua:1"));
	int next = tu_binary(g, OP_add, p, x);
	ir_binding out = { "old", p }, upd = { "p", next };
	tu_ok(g, ir_entry_add(g, "step", &out, 1, &upd, 1, "test.lua:1"));
	rt_tensorset st = { 0 };
	char err[256];
	assert_int_equal(interp_init_state(g, 1, NULL, NULL, &st, err, sizeof err), 0);
	static const double ones[] = { 1, 1, 1 }, once[] = { 1.5, -1, 4 }, twice[] = { 2, -3, 7 };
	for (int k = 0; k < 2; k++) {
		rt_set_free(&f->out);
		assert_int_equal(interp_run(g, ir_entry_find(g, "step"), &st, &f->in, &f->out, err,
		                            sizeof err), 0);
		CHECK_PTR(rt_set_find(&f->out, "old"), s, k ? once : ones, 0, 0);
	}
	CHECK_VALUES(rt_set_find(&st, "p"), s, twice, 0, 0);
	rt_set_free(&st);
}

/* The adjoints of conv2d, on a case small enough to add up by hand:
 * stride 2, padding bottom 1 and right 1, g (1, 1, 2, 2) = {1, 10, 100,
 * 1000}, w (1, 1, 2, 2) = {1, 2, 3, 4}, x (1, 1, 3, 3) = 1..9. Output
 * position (y, x) reads input rows 2y..2y+1 and cols 2x..2x+1 (row or
 * col 3 is padding). */
static void test_conv2d_grads(void **state)
{
	fixture *f = *state;
	ir_graph *g = f->g;
	static const double gv[] = { 1, 10, 100, 1000 }, wv[] = { 1, 2, 3, 4 };
	static const double xv[] = { 1, 2, 3, 4, 5, 6, 7, 8, 9 };
	int go = tu_input(g, &f->in, "g", RT_F32, SH(1, 1, 2, 2), gv);
	int w = tu_input(g, &f->in, "w", RT_F32, SH(1, 1, 2, 2), wv);
	int x = tu_input(g, &f->in, "x", RT_F32, SH(1, 1, 3, 3), xv);
	ir_attrs a = { .conv = { { 2, 2 }, { 0, 1, 0, 1 } } };
	ir_shape xs = SH(1, 1, 3, 3), ws = SH(1, 1, 2, 2);
	int gw[2] = { go, w }, xg[2] = { x, go };
	static const double dx[] = { 1, 2, 10, 3, 4, 30, 100, 200, 1000 };
	/* dw[i][j] = sum over (y, x) of x[2y+i][2x+j] * g[y][x] */
	static const double dw[] = { 1 * 1 + 3 * 10 + 7 * 100 + 9 * 1000, 2 * 1 + 8 * 100,
	                             4 * 1 + 6 * 10, 5 * 1 };
	CHECK_VALUES(run(f, tu_add(g, OP_conv2d_grad_input, gw, 2, &a, &xs, RT_F32)), xs, dx, 0, 0);
	CHECK_VALUES(run(f, tu_add(g, OP_conv2d_grad_weight, xg, 2, &a, &ws, RT_F32)), ws, dw, 0, 0);
}

/* <conv2d(x, w), g> = <x, grad_input(g, w)> = <w, grad_weight(x, g)> on
 * an awkward case: batch 2, 2 -> 3 channels, 5x6 input, stride (2, 1),
 * padding top 1, bottom 0, left 2, right 1. */
static void test_conv2d_adjoint_identity(void **state)
{
	fixture *f = *state;
	ir_graph *g = f->g;
	double xv[120], wv[54], gv[84];
	ir_shape xs = SH(2, 2, 5, 6), ws = SH(3, 2, 3, 3), gs = SH(2, 3, 2, 7);
	for (int i = 0; i < 120; i++)
		xv[i] = (double)((i * 37) % 17 - 8) / 8;
	for (int i = 0; i < 54; i++)
		wv[i] = (double)((i * 11) % 13 - 6) / 4;
	for (int i = 0; i < 84; i++)
		gv[i] = (double)((i * 29) % 23 - 11) / 16;
	int x = tu_input(g, &f->in, "x", RT_F32, xs, xv);
	int w = tu_input(g, &f->in, "w", RT_F32, ws, wv);
	int go = tu_input(g, &f->in, "g", RT_F32, gs, gv);
	ir_attrs a = { .conv = { { 2, 1 }, { 1, 0, 2, 1 } } };
	int xw[2] = { x, w }, gw[2] = { go, w }, xg[2] = { x, go };
	int y = tu_add(g, OP_conv2d, xw, 2, &a, NULL, RT_F32);
	assert_true(ir_shape_eq(&g->nodes[y].shape, &gs));
	int dx = tu_add(g, OP_conv2d_grad_input, gw, 2, &a, &xs, RT_F32);
	int dw = tu_add(g, OP_conv2d_grad_weight, xg, 2, &a, &ws, RT_F32);
	double dots[3] = { 0 };
	const double *pairs[3] = { gv, xv, wv };
	int nodes[3] = { y, dx, dw };
	for (int k = 0; k < 3; k++) {
		const rt_tensor *t = run(f, nodes[k]);
		for (int64_t i = 0; i < rt_numel(t->rank, t->shape); i++)
			dots[k] += rt_load(t->dtype, t->data, i) * pairs[k][i];
	}
	if (fabs(dots[0] - dots[1]) > 1e-4 * fabs(dots[0]) ||
	    fabs(dots[0] - dots[2]) > 1e-4 * fabs(dots[0]))
		fail_msg("<conv(x, w), g> = %.9g, <x, dx> = %.9g, <w, dw> = %.9g", dots[0], dots[1],
		         dots[2]);
	assert_true(fabs(dots[0]) > 1);     /* not trivially zero */
}

/* gather's adjoint: rows of src are added into the rows idx names. */
static void test_scatter_add(void **state)
{
	fixture *f = *state;
	ir_graph *g = f->g;
	static const double sv[] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 };
	static const double iv[] = { 3, 0, 2, 2, 2, 1 };
	int s = tu_input(g, &f->in, "s", RT_F32, SH(2, 3, 2), sv);
	int i = tu_input(g, &f->in, "i", RT_I32, SH(2, 3), iv);
	int in[2] = { s, i };
	ir_shape to = SH(5, 2);
	/* row 0: {3, 4}; row 1: {11, 12}; row 2: {5+7+9, 6+8+10}; row 3: {1, 2}; row 4 untouched */
	static const double want[] = { 3, 4, 11, 12, 21, 24, 1, 2, 0, 0 };
	CHECK_VALUES(run(f, tu_add(g, OP_scatter_add, in, 2, NULL, &to, RT_F32)), to, want, 0, 0);

	static const double bad[] = { 0, 5, 1, 1, 1, 1 };
	int j = tu_input(g, &f->in, "j", RT_I32, SH(2, 3), bad);
	int in2[2] = { s, j };
	int y = tu_ok(g, ir_add(g, OP_scatter_add, in2, 2, NULL, &to, RT_F32, "emb.lua:4"));
	ir_binding b = { "y", y };
	tu_ok(g, ir_entry_add(g, "bad", &b, 1, NULL, 0, "test.lua:1"));
	char err[256] = "";
	rt_set_free(&f->out);
	assert_int_equal(interp_run(g, ir_entry_find(g, "bad"), NULL, &f->in, &f->out, err,
	                            sizeof err), -1);
	CONTAINS(err, "emb.lua:4: scatter_add:", "index 5", "0..4");
}

/* rng_uniform / rng_normal draw element shard * numel + e of Philox stream
 * (seed, step << 16 | stream): the runtime's generator is the reference.
 * Shard 0 here; shard 2 for the normals (elements 30 .. 44). */
static void test_random(void **state)
{
	fixture *f = *state;
	ir_graph *g = f->g;
	static const double seed[] = { 1234 }, step[] = { 3 }, zero[] = { 0 }, two[] = { 2 };
	int sd = tu_input(g, &f->in, "seed", RT_I32, SH0, seed);
	int st = tu_input(g, &f->in, "step", RT_I32, SH0, step);
	int in[3] = { sd, st, tu_input(g, &f->in, "shard0", RT_I32, SH0, zero) };
	int in2[3] = { sd, st, tu_input(g, &f->in, "shard2", RT_I32, SH0, two) };
	ir_attrs a = { .rng = { 5 } }, b = { .rng = { 6 } };
	ir_shape s = SH(3, 5);
	float ref[15], refn[15];
	rt_philox_uniform(1234, 3u << 16 | 5, 0, 15, ref);
	rt_philox_normal(1234, 3u << 16 | 6, 30, 15, refn);
	double want[15], wantn[15];
	for (int i = 0; i < 15; i++)
		want[i] = ref[i], wantn[i] = rt_bf16_to_f32(rt_f32_to_bf16(refn[i]));
	const rt_tensor *t = run(f, tu_add(g, OP_rng_uniform, in, 3, &a, &s, RT_F32));
	CHECK_VALUES(t, s, want, 0, 0);
	for (int i = 0; i < 15; i++)
		assert_true(want[i] > 0 && want[i] <= 1);
	t = run(f, tu_add(g, OP_rng_normal, in2, 3, &b, &s, RT_BF16));
	assert_int_equal(t->dtype, RT_BF16);
	CHECK_VALUES(t, s, wantn, 0, 0);
	/* another stream differs */
	t = run(f, tu_add(g, OP_rng_uniform, in, 3, &b, &s, RT_F32));
	int same = 0;
	for (int i = 0; i < 15; i++)
		same += rt_load(t->dtype, t->data, i) == want[i];
	assert_true(same < 3);
}

/* The flags of ops.h as the case lists of ir.h see them. */
static unsigned flags_by_cases(ir_opcode op)
{
	switch (op) {
	IR_CASES_LEAF: return LEAF;
	IR_CASES_TRANSC: return ELEMWISE | TRANSC;
	case OP_neg: case OP_abs: case OP_cast: case OP_add: case OP_sub: case OP_mul: case OP_div:
	case OP_max: case OP_min: case OP_lt: case OP_le: case OP_eq: case OP_select: return ELEMWISE;
	IR_CASES_REDUCE: return REDUCE;
	IR_CASES_MOVE: return MOVE;
	IR_CASES_CONTRACT: return CONTRACT;
	IR_CASES_INDEX: return INDEX;
	IR_CASES_RANDOM: return RANDOM;
	}
	return 0;
}

static void test_case_lists_match_the_op_table(void **state)
{
	(void)state;
	unsigned kinds = LEAF | ELEMWISE | TRANSC | REDUCE | MOVE | CONTRACT | INDEX | RANDOM;
	for (int op = 0; op < OP_COUNT; op++)
		if (flags_by_cases((ir_opcode)op) != (ir_ops[op].flags & kinds))
			fail_msg("%s: ops.h flags 0x%x, ir.h case lists 0x%x", ir_ops[op].name,
			         ir_ops[op].flags & kinds, flags_by_cases((ir_opcode)op));
}

/* ir_scalar of an op it has no case for (matmul) stops with an internal
 * error that names the op and the file:line of the missing case. */
static void test_missing_case_is_an_internal_error(void **state)
{
	char err[512];
	(void)state;
	tu_capture c = tu_capture_begin();
	pid_t pid = fork();
	if (pid == 0) {
		ir_scalar(OP_matmul, 1, 2, 3);
		_exit(0);
	}
	int status;
	waitpid(pid, &status, 0);
	tu_capture_end(&c, err, sizeof err);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
	CONTAINS(err, "ddpmc: internal error: ", "scalar.c:", ": no case for op matmul");
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_checker_notices_differences),
		cmocka_unit_test(test_case_lists_match_the_op_table),
		cmocka_unit_test(test_missing_case_is_an_internal_error),
		T(test_unary),
		T(test_unary_edges),
		T(test_cast),
		T(test_low_precision_storage),
		T(test_f16_rounds_once),
		T(test_binary_broadcast),
		T(test_broadcast_ranks),
		T(test_max_min_compare),
		T(test_select),
		T(test_reduce),
		T(test_reshape_permute),
		T(test_broadcast),
		T(test_slice),
		T(test_concat),
		T(test_pad),
		T(test_upsample2d),
		T(test_matmul),
		T(test_conv2d),
		T(test_gather),
		T(test_gather_out_of_range),
		T(test_conv2d_grads),
		T(test_conv2d_adjoint_identity),
		T(test_scatter_add),
		T(test_random),
		T(test_leaves),
		T(test_param_update),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
