/* kernel_check: running an entry on a backend and on the reference
 * interpreter, and comparing them: what kernel_cases.h's cases and
 * test_random_graphs.c's generated scripts share. A test program that
 * includes this must define
 *
 *   static void backend_run(ir_graph *g, kir_program *p, rt_tensorset *state,
 *                           const rt_tensorset *inputs, rt_tensorset *outputs);
 *
 * which runs lowered program p of g on its backend (inputs as the caller
 * gives them, converted as `ddpmc run` does; state updated in place;
 * outputs added). */
#ifndef DDPMC_KERNEL_CHECK_H
#define DDPMC_KERNEL_CHECK_H

#include "testutil.h"

#include "kir.h"

static void backend_run(ir_graph *g, kir_program *p, rt_tensorset *state, const rt_tensorset *inputs,
                        rt_tensorset *outputs);

static ir_graph *load_script(const char *text, const fe_option *opts, int nopts)
{
	char dir[256], path[512], err[1024];
	tu_tmpdir(dir, sizeof dir);
	tu_write(dir, "case.lua", text, -1, path, sizeof path);
	ir_graph *g = fe_load(path, opts, nopts, err, sizeof err);
	tu_rmtree(dir);
	if (!g)
		fail_msg("%s", err);
	return g;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static double urand(void)
{
	rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
	return (double)(rng_state >> 11) * 0x1p-53;
}

/* A tensor for every input node of g not already in `set`: uniform in
 * [lo, hi) for floats, integers in [0, ihi) for i32. */
static void random_inputs(const ir_graph *g, rt_tensorset *set, double lo, double hi, int ihi)
{
	for (int id = 0; id < g->n; id++) {
		const ir_node *n = &g->nodes[id];
		if (n->op != OP_input || rt_set_find(set, n->name))
			continue;
		rt_tensor *t = rt_set_add(set, n->name, n->dtype, n->shape.rank, n->shape.d);
		for (int64_t i = 0; i < ir_numel(&n->shape); i++)
			rt_store(n->dtype, t->data, i,
			         n->dtype == RT_I32 ? (double)(int)(urand() * ihi) : lo + (hi - lo) * urand());
	}
}

/* Elements of `got` off `want` by more than tol * max(1, |want|), tol
 * at least one ulp of want's dtype where it is bf16 or f16 (a value
 * rounded otherwise in f32 may round to the next one when stored): an
 * ulp is at most 2^-7 of the value in bf16 (7 bits stored), 2^-10 in f16. */
static int compare(const char *what, const rt_tensor *want, const rt_tensor *got, double tol, double *worst)
{
	int64_t n = rt_numel(want->rank, want->shape);
	if (want->dtype == RT_BF16 || want->dtype == RT_F16)
		tol = fmax(tol, want->dtype == RT_BF16 ? 0x1p-7 : 0x1p-10);
	if (!got || rt_numel(got->rank, got->shape) != n) {
		print_error("%s: missing or wrong size\n", what);
		return 1;
	}
	int bad = 0;
	for (int64_t i = 0; i < n; i++) {
		double w = rt_load(want->dtype, want->data, i), g = rt_load(got->dtype, got->data, i);
		double d = fabs(g - w), lim = tol * fmax(1, fabs(w));
		if ((isnan(w) && isnan(g)) || g == w)
			continue;
		if (isfinite(d) && d / fmax(1, fabs(w)) > *worst)
			*worst = d / fmax(1, fabs(w));
		if (d <= lim)
			continue;
		if (bad++ < 6)
			print_error("%s[%lld]: interp %.9g, backend %.9g (off by %.3g, limit %.3g)\n", what,
			            (long long)i, w, g, g - w, lim);
	}
	if (bad > 6)
		print_error("%s: %d of %lld elements differ\n", what, bad, (long long)n);
	return bad;
}

/* Lowers `entry` for target t, runs it on the backend and the
 * interpreter on the same inputs and seed-made state (weights, when given,
 * override it), compares every output and every param. Returns the worst
 * relative difference. */
static double check_entry_for(const kir_target *t, ir_graph *g, const char *entry,
                              const rt_tensorset *inputs, const rt_tensorset *weights, double tol)
{
	char err[1024];
	const ir_entry *e = ir_entry_find(g, entry);
	assert_non_null(e);
	rt_tensorset sref = { 0 }, sgot = { 0 }, oref = { 0 }, ogot = { 0 };
	if (interp_init_state(g, 7, weights, "weights", &sref, err, sizeof err) < 0 ||
	    interp_init_state(g, 7, weights, "weights", &sgot, err, sizeof err) < 0 ||
	    interp_run(g, e, &sref, inputs, &oref, err, sizeof err) < 0)
		fail_msg("%s: interp: %s", entry, err);
	kir_program *p = kir_lower(g, e, t);
	if (!p || kir_verify(p, err, sizeof err) < 0)
		fail_msg("%s: lowering: %s", entry, p ? err : g->err);
	backend_run(g, p, &sgot, inputs, &ogot);
	int bad = 0;
	double worst = 0;
	char what[256];
	for (int i = 0; i < oref.n; i++) {
		snprintf(what, sizeof what, "%s: output %s", entry, oref.t[i].name);
		bad += compare(what, &oref.t[i], rt_set_find(&ogot, oref.t[i].name), tol, &worst);
	}
	for (int i = 0; i < sref.n; i++) {
		snprintf(what, sizeof what, "%s: param %s", entry, sref.t[i].name);
		bad += compare(what, &sref.t[i], rt_set_find(&sgot, sref.t[i].name), tol, &worst);
	}
	if (bad) {
		if (getenv("DDPMC_TEST_DUMP"))
			kir_dump(p, stderr);
		fail_msg("%s: %d elements differ from the interpreter beyond %g", entry, bad, tol);
	}
	kir_program_free(p);
	rt_set_free(&sref);
	rt_set_free(&sgot);
	rt_set_free(&oref);
	rt_set_free(&ogot);
	return worst;
}

/* The first kernel of p that takes more than max_args buffers (0: no
 * limit), or -1. */
static inline int kernel_over_limit(const kir_program *p, int max_args)
{
	for (int k = 0; max_args && k < p->nk; k++)
		if (kir_buffer_count(&p->k[k], p->nbuf) > max_args)
			return k;
	return -1;
}

/* Fails where a kernel of p takes more than max_args buffers (0: any). */
static inline void check_within_limit(const kir_program *p, int max_args)
{
	int k = kernel_over_limit(p, max_args);
	if (k < 0)
		return;
	if (getenv("DDPMC_TEST_DUMP"))
		kir_dump(p, stderr);
	fail_msg("%s takes %d buffers, over the limit of %d", p->k[k].name, kir_buffer_count(&p->k[k], p->nbuf),
	         max_args);
}

/* Lowered program p of g run by kir_eval, the kernel IR's evaluator, as
 * a backend_run does; under a limit of buffers a kernel (max_args > 0)
 * every kernel checked within it first. */
static inline void run_kir_eval(ir_graph *g, kir_program *p, rt_tensorset *state, const rt_tensorset *inputs,
                                rt_tensorset *outputs, int max_args)
{
	char err[1024], *arena;
	rt_tensorset in = { 0 };
	if (kir_convert_inputs(g, inputs, &in, err, sizeof err) < 0)
		fail_msg("%s", err);
	void **bufs = kir_bind_host(p, state, &in, outputs, &arena, err, sizeof err);
	if (!bufs)
		fail_msg("%s", err);
	check_within_limit(p, max_args);
	kir_eval(p, bufs);
	free(bufs);
	free(arena);
	rt_set_free(&in);
}

#endif
