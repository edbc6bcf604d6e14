/* test_autodiff: reverse-mode gradients (compiler/passes/autodiff.c)
 * checked against central finite differences, op by op and through a tiny
 * U-Net, with the reference interpreter as the only evaluator.
 *
 * The fixtures (tests/scripts/grad_*.lua, built with grad_lib.lua) declare
 * entry pairs: "case.NAME" computes a scalar f32 "loss" from params, and
 * "grad.NAME" outputs "g.<param>" = ddpm.grad(loss, params). For every
 * element checked, the harness sets the param in the interpreter's state to
 * x + h and x - h, reruns case.NAME and compares
 *     fd = (loss(x + h) - loss(x - h)) / (2h)
 * (2h as actually stored in f32) with the gradient from grad.NAME. A param
 * named *.zero must moreover get an exactly zero gradient. */
#include <time.h>

#include "testutil.h"

/* The state is f32 and the interpreter rounds every node to f32, so fd
 * carries noise of about 2^-24 * |loss terms| / h besides the O(h^2)
 * truncation error. With h = 1e-2 * max(1, |x|), a check passes when
 *     |fd - ad| <= RTOL * |ad| + ATOL.
 * Measured on these fixtures, the worst element uses about 35% of that
 * (a 3x3 convolution, whose loss sums 240 f32-accumulated outputs: noise
 * ~4e-5); a gradient 3% off, or right values at wrong elements, fails
 * (test_harness_rejects_wrong_gradients). */
#define H_REL 1e-2
#define RTOL 2e-3
#define ATOL 1e-4

/* Cases whose loss is linear in each param element but rounded to f16/bf16
 * on the way: a small step would measure the rounding, so the step is large
 * (0.5; linear, so no truncation error). Each rounding is off by at most
 * 2^-11 (f16) or 2^-9 (bf16) relative, so fd is off by at most that times
 * (|x| + h) / h relative to ad: under 1% (f16) and 2% (bf16) for |x| < 4.
 * Autocast also rounds the products and the gradient itself to f16 (worst
 * seen: half of 2% + 2e-3). */
static const struct {
	const char *name;
	double h, rtol, atol;
} special[] = {
	{ "cast_f16", 0.5, 1e-2, ATOL },
	{ "cast_bf16", 0.5, 2e-2, ATOL },
	{ "cast_f16_math", 0.5, 1e-2, ATOL },
	{ "autocast_matmul_f16", 0.5, 2e-2, 2e-3 },
	{ "autocast_conv2d_f16", 0.5, 2e-2, 2e-3 },
};

typedef struct {
	double h_rel, rtol, atol;
	int sample;             /* elements checked per param; 0: all */
} fd_opts;

static const fd_opts DEFAULT = { H_REL, RTOL, ATOL, 0 };

typedef struct {
	const ir_graph *g;
	const char *name;       /* the case, for messages */
	const ir_entry *loss;   /* case.NAME */
	rt_tensorset *state;
	fd_opts o;
	int checked, bad;
	double worst;           /* max |fd - ad| / tolerance seen */
	int quiet;              /* self-checks: count failures, print nothing */
} fd_check;

static ir_graph *load(const char *script)
{
	char path[1024], err[1024];
	ir_graph *g = fe_load(tu_script(script, path, sizeof path), NULL, 0, err, sizeof err);
	if (!g)
		fail_msg("%s", err);
	if (ir_verify(g) < 0)
		fail_msg("ir_verify: %s", g->err);
	return g;
}

static void init_state(const ir_graph *g, rt_tensorset *state)
{
	char err[512];
	if (interp_init_state(g, 1234, NULL, NULL, state, err, sizeof err) < 0)
		fail_msg("interp_init_state: %s", err);
}

static const ir_entry *entry(const ir_graph *g, const char *name)
{
	const ir_entry *e = ir_entry_find(g, name);
	if (!e)
		fail_msg("the fixture has no entry %s", name);
	return e;
}

static void run(const ir_graph *g, const ir_entry *e, rt_tensorset *state, rt_tensorset *out)
{
	char err[512];
	if (interp_run(g, e, state, NULL, out, err, sizeof err) < 0)
		fail_msg("%s: interp_run: %s", e->name, err);
}

static double loss_of(fd_check *c)
{
	rt_tensorset out = { 0 };
	run(c->g, c->loss, c->state, &out);
	const rt_tensor *t = rt_set_find(&out, "loss");
	if (!t || t->dtype != RT_F32 || rt_numel(t->rank, t->shape) != 1)
		fail_msg("%s: the output \"loss\" must be an f32 scalar", c->loss->name);
	double v = rt_load(RT_F32, t->data, 0);
	rt_set_free(&out);
	return v;
}

/* "[i,j,k]" of flat element i of a row-major tensor. */
static const char *index_str(const rt_tensor *t, int64_t i, char *buf, size_t len)
{
	int64_t idx[RT_MAXDIM];
	for (int d = t->rank - 1; d >= 0; d--) {
		idx[d] = i % t->shape[d];
		i /= t->shape[d];
	}
	size_t n = (size_t)snprintf(buf, len, "[");
	for (int d = 0; d < t->rank && n < len; d++)
		n += (size_t)snprintf(buf + n, len - n, d ? ",%lld" : "%lld", (long long)idx[d]);
	if (n < len)
		snprintf(buf + n, len - n, "]");
	return buf;
}

/* Element i of param p: fd from case.NAME against ad. */
static void check_element(fd_check *c, const char *param, rt_tensor *p, int64_t i, double ad)
{
	double x = rt_load(RT_F32, p->data, i);
	double h = c->o.h_rel * fmax(1, fabs(x));
	rt_store(RT_F32, p->data, i, x + h);
	double xp = rt_load(RT_F32, p->data, i), lp = loss_of(c);
	rt_store(RT_F32, p->data, i, x - h);
	double xm = rt_load(RT_F32, p->data, i), lm = loss_of(c);
	rt_store(RT_F32, p->data, i, x);
	double fd = (lp - lm) / (xp - xm), tol = c->o.rtol * fabs(ad) + c->o.atol;
	double err = fabs(fd - ad);
	c->checked++;
	if (err / tol > c->worst || isnan(err))
		c->worst = isnan(err) ? INFINITY : err / tol;
	if (err <= tol)
		return;
	char at[128];
	if (c->bad++ < 10 && !c->quiet)
		print_error("case %s: param %s%s: fd %.6g vs ad %.6g (off by %.3g, tolerance %.3g)\n",
		            c->name, param, index_str(p, i, at, sizeof at), fd, ad, fd - ad, tol);
}

/* The elements of a param that are checked: all, or `sample` of them: the
 * one with the largest |ad| (so every tensor gets one check well above the
 * noise) and the others spread evenly from an offset hashed from the name. */
static int64_t nth_element(const fd_opts *o, const char *param, const rt_tensor *ad, int k)
{
	int64_t n = rt_numel(ad->rank, ad->shape), best = 0;
	if (!o->sample || n <= o->sample)
		return k;
	if (k == 0) {
		for (int64_t i = 1; i < n; i++)
			if (fabs(rt_load(RT_F32, ad->data, i)) > fabs(rt_load(RT_F32, ad->data, best)))
				best = i;
		return best;
	}
	uint64_t hash = 1469598103934665603u;
	for (const char *s = param; *s; s++)
		hash = (hash ^ (unsigned char)*s) * 1099511628211u;
	return (int64_t)((hash % (uint64_t)n + (uint64_t)(k * n / o->sample)) % (uint64_t)n);
}

static int ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* One output "g.<param>" of grad.NAME against finite differences. */
static void check_param(fd_check *c, const rt_tensor *ad)
{
	const char *param = ad->name + 2;
	rt_tensor *p = rt_set_find(c->state, param);
	if (strncmp(ad->name, "g.", 2) != 0 || !p)
		fail_msg("case %s: output %s names no param", c->name, ad->name);
	if (p->dtype != RT_F32 || ad->dtype != RT_F32 || ad->rank != p->rank ||
	    memcmp(ad->shape, p->shape, (size_t)p->rank * sizeof p->shape[0]) != 0)
		fail_msg("case %s: gradient of %s differs from the param in dtype or shape",
		         c->name, param);
	int64_t n = rt_numel(p->rank, p->shape);
	char at[128];
	for (int64_t i = 0; ends_with(param, ".zero") && i < n; i++)
		if (rt_load(RT_F32, ad->data, i) != 0 && c->bad++ < 10 && !c->quiet)
			print_error("case %s: param %s%s: gradient %.6g, expected exactly 0\n", c->name,
			            param, index_str(p, i, at, sizeof at), rt_load(RT_F32, ad->data, i));
	int64_t count = c->o.sample && n > c->o.sample ? c->o.sample : n;
	for (int k = 0; k < count; k++) {
		int64_t i = nth_element(&c->o, param, ad, k);
		check_element(c, param, p, i, rt_load(RT_F32, ad->data, i));
	}
}

/* Checks every param output of grad entry `grad` against the loss of entry
 * `loss`; c.bad counts the elements that failed. */
static fd_check check_pair(const ir_graph *g, rt_tensorset *state, const char *name,
                           const char *loss, const char *grad, fd_opts o, int quiet)
{
	fd_check c = { g, name, entry(g, loss), state, o, 0, 0, 0, quiet };
	rt_tensorset ads = { 0 };
	run(g, entry(g, grad), state, &ads);
	if (ads.n == 0)
		fail_msg("case %s: %s has no outputs", name, grad);
	for (int i = 0; i < ads.n; i++)
		check_param(&c, &ads.t[i]);
	rt_set_free(&ads);
	if (c.bad > 10 && !c.quiet)
		print_error("case %s: %d of %d elements differ\n", name, c.bad, c.checked);
	return c;
}

static fd_opts opts_for(const char *name, fd_opts o)
{
	for (int i = 0; i < TU_LEN(special); i++)
		if (strcmp(special[i].name, name) == 0) {
			o.h_rel = special[i].h;
			o.rtol = special[i].rtol;
			o.atol = special[i].atol;
		}
	return o;
}

/* Every case.NAME / grad.NAME pair of a fixture; asserts that all pass and
 * that the fixture has at least `min_cases` of them. */
static void check_script(const char *script, fd_opts o, int min_cases)
{
	clock_t start = clock();
	ir_graph *g = load(script);
	rt_tensorset state = { 0 };
	init_state(g, &state);
	int cases = 0, bad = 0, checked = 0;
	double worst = 0;
	const char *worst_case = "";
	for (int i = 0; i < g->nentries; i++) {
		const char *e = g->entries[i].name;
		if (!tu_starts(e, "case."))
			continue;
		char grad[256];
		snprintf(grad, sizeof grad, "grad.%s", e + 5);
		fd_check c = check_pair(g, &state, e + 5, e, grad, opts_for(e + 5, o), 0);
		bad += c.bad > 0;
		checked += c.checked;
		if (c.worst > worst)
			worst = c.worst, worst_case = e + 5;
		cases++;
	}
	if (getenv("DDPMC_TEST_VERBOSE"))
		print_message("%s: %d cases, %d elements, worst |fd - ad| / tolerance %.3f (%s), "
		              "%.2f s\n", script, cases, checked, worst, worst_case,
		              (double)(clock() - start) / CLOCKS_PER_SEC);
	rt_set_free(&state);
	ir_free(g);
	assert_true(cases >= min_cases);
	if (bad)
		fail_msg("%s: %d of %d cases have gradients that differ from finite differences",
		         script, bad, cases);
}

static void test_elementwise_reduce_move(void **state)
{
	(void)state;
	check_script("grad_ops.lua", DEFAULT, 60);
}

static void test_contractions_and_indexing(void **state)
{
	(void)state;
	check_script("grad_contract.lua", DEFAULT, 11);
}

static void test_composites(void **state)
{
	(void)state;
	check_script("grad_composite.lua", DEFAULT, 11);
}

/* i32 and compare paths, unreached params, params built after the loss. */
static void test_paths_without_gradient(void **state)
{
	(void)state;
	check_script("grad_paths.lua", DEFAULT, 5);
}

/* Every parameter tensor of the tiny U-Net, 3 elements each. Its params are
 * ~0.1 in size (torch's fan-in init), so the step is smaller: with 5e-3
 * the worst element uses about 1/6 of the tolerance (1e-2: 1/2). */
static void test_tiny_unet(void **state)
{
	(void)state;
	fd_opts o = DEFAULT;
	o.h_rel = 5e-3;
	o.sample = 3;
	check_script("grad_unet.lua", o, 1);
}

/* Ops without a gradient rule: compares (their outputs carry none), the
 * conv2d gradient ops (only autodiff builds them), leaves and random draws. */
static int has_no_rule(ir_opcode op)
{
	return op == OP_lt || op == OP_le || op == OP_eq || op == OP_conv2d_grad_input ||
	       op == OP_conv2d_grad_weight || ir_ops[op].flags & (LEAF | RANDOM);
}

/* Every op with a gradient rule appears in the loss of some case. */
static void test_every_rule_is_checked(void **state)
{
	(void)state;
	static const char *const scripts[] = { "grad_ops.lua", "grad_contract.lua",
	                                       "grad_composite.lua", "grad_paths.lua" };
	char seen[OP_COUNT] = { 0 };
	for (int s = 0; s < TU_LEN(scripts); s++) {
		ir_graph *g = load(scripts[s]);
		for (int i = 0; i < g->nentries; i++) {
			if (!tu_starts(g->entries[i].name, "case."))
				continue;
			char *live = ir_entry_live(g, &g->entries[i]);
			for (int id = 0; id < g->n; id++)
				seen[g->nodes[id].op] |= live[id];
			free(live);
		}
		ir_free(g);
	}
	int missing = 0;
	for (int op = 0; op < OP_COUNT; op++)
		if (!seen[op] && !has_no_rule((ir_opcode)op) && ++missing)
			print_error("no gradient case exercises %s\n", ir_ops[op].name);
	assert_int_equal(missing, 0);
}

/* The harness itself: every element of a gradient 3% too large, and of one
 * with its two rows swapped, must be rejected (x is (2, 3)). */
static void test_harness_rejects_wrong_gradients(void **state)
{
	(void)state;
	ir_graph *g = load("grad_paths.lua");
	rt_tensorset st = { 0 };
	init_state(g, &st);
	assert_int_equal(check_pair(g, &st, "selfcheck", "selfcheck.loss", "selfcheck.scaled",
	                            DEFAULT, 1).bad, 6);
	assert_int_equal(check_pair(g, &st, "selfcheck", "selfcheck.loss", "selfcheck.swapped",
	                            DEFAULT, 1).bad, 6);
	rt_set_free(&st);
	ir_free(g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_harness_rejects_wrong_gradients),
		cmocka_unit_test(test_every_rule_is_checked),
		cmocka_unit_test(test_elementwise_reduce_move),
		cmocka_unit_test(test_contractions_and_indexing),
		cmocka_unit_test(test_composites),
		cmocka_unit_test(test_paths_without_gradient),
		cmocka_unit_test(test_tiny_unet),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
