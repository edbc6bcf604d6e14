/* run: executes one entry of a model on named inputs and writes its named
 * outputs (docs/semantics.md §7). Parameters come from --weights, or from their
 * initialisers keyed by --seed. The entry runs compiled for this host (JIT
 * through the LLVM backend), in the reference interpreter (--interp), or in
 * the kernel IR's evaluator (--kernels, to tell lowering bugs from code
 * generation bugs). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "driver.h"
#include "interp.h"
#include "kir.h"
#include "llvm_backend.h"
#include "safetensors.h"
#include "weights.h"

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

/* Runs every kernel of p over all its rows, natively. */
static int run_native(kir_program *p, void **bufs, char *err, size_t errlen)
{
	llvm_kernel_fn *fns = calloc((size_t)p->nk + 1, sizeof *fns);
	llvm_jit *jit = fns ? llvm_jit_compile(p, NULL, fns, err, errlen) : NULL;
	for (int i = 0; jit && i < p->nk; i++)
		llvm_call(&p->k[i], fns[i], bufs, 0, kir_rows(&p->k[i]));
	llvm_jit_free(jit);
	free(fns);
	return jit ? 0 : -1;
}

/* Lowers the entry and runs its kernels: compiled for this host, or in the
 * kernel IR's evaluator (--kernels). */
static int run_kernels(ir_graph *g, const ir_entry *e, int native, rt_tensorset *state,
                       const rt_tensorset *inputs, rt_tensorset *outs, char *err, size_t errlen)
{
	kir_target t;
	if (llvm_kir_target(NULL, &t, err, errlen) < 0)
		return -1;
	kir_program *p = kir_lower(g, e, &t);
	rt_tensorset in = { 0 };
	char *arena = NULL;
	void **bufs = NULL;
	int rc = kir_verify(p, err, errlen);
	if (getenv("DDPMC_DUMP_KIR"))
		kir_dump(p, stderr);
	if (rc == 0)
		rc = kir_convert_inputs(g, inputs, &in, err, errlen);
	if (rc == 0 && !(bufs = kir_bind_host(p, state, &in, outs, &arena, err, errlen)))
		rc = -1;
	if (rc == 0 && native)
		rc = run_native(p, bufs, err, errlen);
	else if (rc == 0)
		kir_eval(p, bufs);
	free(bufs);
	free(arena);
	rt_set_free(&in);
	kir_program_free(p);
	return rc;
}

/* --weights W (runtime/weights.h: a diffusers folder or a safetensors
 * file), its config.json and scheduler_config.json checked against the
 * script's UNet2DModel config and schedule (its metadata, as a compiled
 * program's) when both exist; the file read into src. */
static int read_weights(const drv_args *a, const ir_graph *g, rt_weights_src *src,
                        rt_tensorset *set)
{
	char err[2048];
	rt_strbuf text = { 0 };
	rt_json meta = { 0 };
	int rc = 0;
	if (!a->weights)
		return 0;
	kir_describe_meta(&text, g);
	if (text.oom || rt_json_parse(text.p, text.len, &meta, err, sizeof err) != RT_OK) {
		fprintf(stderr, "ddpmc: internal error: meta: %s\n", text.oom ? "out of memory" : err);
		rc = -1;
	} else if (rt_weights_read(a->weights, &meta, src, set, err, sizeof err) != RT_OK) {
		fprintf(stderr, "%s\n", err);
		rc = -1;
	}
	rt_json_free(&meta);
	rt_sb_free(&text);
	return rc;
}

static int run_entry(const drv_args *a, const ir_graph *g, const ir_entry *e)
{
	char err[1024];
	rt_weights_src src = { .file = "" };
	rt_tensorset weights = { 0 }, inputs = { 0 }, state = { 0 }, outputs = { 0 };
	int rc = read_weights(a, g, &src, &weights);
	if (rc == 0)
		rc = read_optional(a->inputs, &inputs);
	if (rc == 0 && (interp_init_state(g, a->seed, a->weights ? &weights : NULL, src.file,
	                                  &state, err, sizeof err) < 0 ||
	                (a->interp ? interp_run(g, e, &state, &inputs, &outputs, err, sizeof err)
	                           : run_kernels((ir_graph *)g, e, !a->kernels, &state, &inputs, &outputs,
	                                         err, sizeof err)) < 0 ||
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
	if (drv_check_output("run: -o", a->output) < 0)
		return -1;
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
