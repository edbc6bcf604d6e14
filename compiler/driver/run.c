/* run: executes one entry of a model on named inputs and writes its named
 * outputs (DESIGN.md §7). Parameters come from --weights, or from their
 * initialisers keyed by --seed. Until a code generator exists only the
 * reference interpreter (--interp) can run an entry. */
#include <math.h>
#include <stdio.h>

#include "driver.h"
#include "interp.h"
#include "safetensors.h"

static int read_optional(const char *path, rt_tensorset *set)
{
	char err[512];
	if (!path)
		return 0;
	if (rt_st_read(path, set, err, sizeof err) == RT_OK)
		return 0;
	fprintf(stderr, "%s\n", err);
	return -1;
}

/* One line per output: what a person checks first (shape, scale, NaNs). */
static void print_summary(const rt_tensorset *outs)
{
	for (int i = 0; i < outs->n; i++) {
		const rt_tensor *t = &outs->t[i];
		int64_t n = rt_numel(t->rank, t->shape);
		double sum = 0, sq = 0, lo = INFINITY, hi = -INFINITY;
		for (int64_t k = 0; k < n; k++) {
			double v = rt_load(t->dtype, t->data, k);
			sum += v;
			sq += v * v;
			lo = v < lo ? v : lo;
			hi = v > hi ? v : hi;
		}
		double mean = n ? sum / (double)n : 0;
		printf("%s: %s (", t->name, rt_dtype_name(t->dtype));
		for (int k = 0; k < t->rank; k++)
			printf("%s%lld", k ? ", " : "", (long long)t->shape[k]);
		printf(") mean %.6g std %.6g min %.6g max %.6g\n", mean,
		       n ? sqrt(fmax(sq / (double)n - mean * mean, 0)) : 0, lo, hi);
	}
}

static int run_entry(const drv_args *a, const ir_graph *g, const ir_entry *e)
{
	char err[1024];
	rt_tensorset weights = { 0 }, inputs = { 0 }, state = { 0 }, outputs = { 0 };
	int rc = read_optional(a->weights, &weights);
	if (rc == 0)
		rc = read_optional(a->inputs, &inputs);
	if (rc == 0 && (interp_init_state(g, a->seed, a->weights ? &weights : NULL, a->weights,
	                                  &state, err, sizeof err) < 0 ||
	                interp_run(g, e, &state, &inputs, &outputs, err, sizeof err) < 0 ||
	                rt_st_write(a->output, &outputs, err, sizeof err) != RT_OK)) {
		fprintf(stderr, "%s\n", err);
		rc = -1;
	}
	if (rc == 0)
		print_summary(&outputs);
	rt_set_free(&weights);
	rt_set_free(&inputs);
	rt_set_free(&state);
	rt_set_free(&outputs);
	return rc;
}

int drv_run(const drv_args *a)
{
	if (!a->entry || !a->output) {
		fputs("ddpmc run: --entry NAME and -o OUT.safetensors are required\n", stderr);
		return -1;
	}
	if (!a->interp) {
		fputs("ddpmc run: no code generator is built yet; pass --interp\n", stderr);
		return -1;
	}
	ir_graph *g = drv_load(a);
	if (!g)
		return -1;
	const ir_entry *e = ir_entry_find(g, a->entry);
	int rc = -1;
	if (!e)
		fprintf(stderr, "ddpmc: %s has no entry '%s'\n", a->model, a->entry);
	else
		rc = run_entry(a, g, e);
	ir_free(g);
	return rc;
}
