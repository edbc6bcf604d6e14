/* llvm_tune: the schedule choices made by measurement on this machine,
 * before code generation: which convolutions run by Winograd's algorithm
 * (before the lowering) and the register tiles of a program's
 * contractions (after it). Each comes from the tuning file's earlier
 * measurements, else from timing now (--tune, within its budget), else
 * from the cost model.
 *
 * The tuner JIT-compiles each candidate tile of a kernel
 * (llvm_tile_candidates: the cost model's best few, all within the
 * vector registers) as one program, runs each over all the kernel's rows
 * on one thread on zeroed buffers (the time of a contraction does not
 * depend on its values), and keeps the fastest of the best of three
 * runs. Kernels equal but for their buffers have one signature and are
 * timed once; kernels with nothing to tile are left to the backend. A
 * convolution or gradient Winograd applies to is lowered alone each way
 * (direct, F(2x2, 3x3), F(4x4, 3x3); its operands as inputs), each
 * program's tiles fixed as above, and its kernels timed together the
 * same way; equal convolutions are timed once (kir_conv_signature).
 *
 * requires: programs out of kir_lower for the CPU `cpu`; a graph and the
 *   target it is about to be lowered for.
 * establishes: every kernel with tile candidates has k->tile fixed
 *   (KIR_TILE_TUNED or KIR_TILE_MODEL), one of its candidates; the target
 *   reads the tuning file's algorithm choices; the same tuning file and
 *   programs give the same tiles and algorithms. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "llvm_internal.h"
#include "tensor.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int llvm_machine_key(const char *cpu, char *key, size_t len)
{
	char *name = LLVMGetHostCPUName(), *features = LLVMGetHostCPUFeatures();
	uint64_t h = rt_fnv1a(RT_FNV1A_START, features, strlen(features));
	int n = snprintf(key, len, "host %s/%08" PRIx64 " code %s", name, h & 0xffffffffu,
	                 cpu && strcmp(cpu, "native") ? cpu : "native");
	LLVMDisposeMessage(name);
	LLVMDisposeMessage(features);
	return n > 0 && (size_t)n < len ? 0 : -1;
}

static kir_tile as_kir_tile(const llvm_tile *t, kir_tile_source source, double gflops)
{
	return (kir_tile){ source, { t->var[0], t->var[1] }, { t->copies[0], t->copies[1] }, gflops };
}

static int same_tile(const kir_tile *a, const llvm_tile *b)
{
	return a->var[0] == b->var[0] && a->var[1] == b->var[1] && a->copies[0] == b->copies[0] &&
	       a->copies[1] == b->copies[1];
}

static void free_buffers(const kir_program *p, void **bufs)
{
	for (int i = 0; bufs && i < p->nbuf; i++)
		free(bufs[i]);
	free(bufs);
}

/* A table of p's buffers with a zeroed one for every argument of
 * kernels[0..n): NULL when there is not enough memory. */
static void **scratch_buffers(const kir_program *p, const kir_kernel *kernels, int n)
{
	void **bufs = calloc((size_t)p->nbuf + 1, sizeof *bufs);
	for (int i = 0; bufs && i < n; i++)
		for (int j = 0; j < kernels[i].narg; j++) {
			int id = kernels[i].arg[j];
			const kir_buffer *b = &p->buf[id];
			if (!bufs[id] && !(bufs[id] = calloc((size_t)b->numel + 1, rt_dtype_size(b->dtype)))) {
				free_buffers(p, bufs);
				return NULL;
			}
		}
	return bufs;
}

/* Kernels k[0..n) run in order over every row, by their functions fn. */
static void run_kernels(const kir_kernel *k, const llvm_kernel_fn *fn, int n, void **bufs)
{
	for (int i = 0; i < n; i++)
		llvm_call(&k[i], fn[i], bufs, 0, kir_rows(&k[i]));
}

/* The best of three runs of kernels k[0..n), in seconds. */
static double best_time(const kir_kernel *k, const llvm_kernel_fn *fn, int n, void **bufs)
{
	double best = 1e30;
	run_kernels(k, fn, n, bufs);    /* caches and pages warm */
	for (int rep = 0; rep < 3; rep++) {
		double t0 = now();
		run_kernels(k, fn, n, bufs);
		double t = now() - t0;
		best = t < best ? t : best;
	}
	return best;
}

/* Times the n candidates of kernel k: *out := the fastest, with its
 * GFLOP/s; *model_gflops := the first's (the cost model's pick). 0, or -1
 * with a message in err. */
static int time_candidates(const kir_program *p, const kir_kernel *k, const llvm_tile *cand, int n,
                           const char *cpu, kir_tile *out, double *model_gflops, char *err,
                           size_t errlen)
{
	kir_kernel *copies = calloc((size_t)n, sizeof *copies);
	llvm_kernel_fn *fns = calloc((size_t)n, sizeof *fns);
	kir_program one = *p;
	one.k = copies, one.nk = one.kcap = n;
	for (int i = 0; i < n; i++) {
		copies[i] = *k;
		copies[i].arg = NULL;
		copies[i].tile = as_kir_tile(&cand[i], KIR_TILE_TUNED, 0);
	}
	llvm_jit *j = llvm_jit_compile(&one, cpu, fns, err, errlen);
	void **bufs = j ? scratch_buffers(p, copies, 1) : NULL;
	int ok = j && bufs;
	if (j && !ok)
		snprintf(err, errlen, "not enough memory for the buffers of %s", k->name);
	double best = 1e30;
	for (int i = 0; ok && i < n; i++) {
		double t = best_time(&copies[i], &fns[i], 1, bufs), gflops = k->flops / (t > 0 ? t : 1e-9) * 1e-9;
		if (i == 0)
			*model_gflops = gflops;
		if (t < best) {
			best = t;
			*out = as_kir_tile(&cand[i], KIR_TILE_TUNED, gflops);
		}
	}
	free_buffers(p, bufs);
	llvm_jit_free(j);
	for (int i = 0; i < n; i++)
		free(copies[i].arg);
	free(copies);
	free(fns);
	return ok ? 0 : -1;
}

/* Kernel k's tile: the tuning file's when it is one of the candidates,
 * else measured now when the budget allows, else the cost model's. */
static int fix_tile(const kir_program *p, kir_kernel *k, const llvm_target *t,
                    const llvm_tune_opts *o, char *err, size_t errlen)
{
	llvm_tile cand[LLVM_TILE_CANDIDATES];
	int n = llvm_tile_candidates(p, k, t, cand);
	if (n == 0)
		return 0;
	uint64_t sig = kir_kernel_signature(p, k);
	kir_tile known;
	if (kir_tuning_find(o->db, sig, &known)) {
		for (int i = 0; i < n; i++)
			if (same_tile(&known, &cand[i])) {
				k->tile = known;
				return 0;
			}
		if (o->log)
			fprintf(o->log, "tuning: %s: the tuning file's tile is not one this kernel can "
			        "run; ignored\n", k->name);
	}
	k->tile = as_kir_tile(&cand[0], KIR_TILE_MODEL, 0);
	if (!o->tune || n < 2 || now() > o->deadline)
		return 0;
	double model;
	if (time_candidates(p, k, cand, n, o->cpu, &known, &model, err, errlen) < 0)
		return -1;
	kir_tuning_put(o->db, sig, &known);
	k->tile = known;
	if (o->log)
		fprintf(o->log, "tuning: %-30s tile %d x %d of vars %d, %d: %.1f GFLOP/s (%d candidates; "
		        "the cost model's %.1f)\n", k->name, known.copies[0], known.copies[1],
		        known.var[0], known.var[1], known.gflops, n, model);
	return 0;
}

double llvm_tune_deadline(double seconds)
{
	return now() + seconds;
}

int llvm_fix_tiles(kir_program **progs, int n, const llvm_tune_opts *o, char *err, size_t errlen)
{
	llvm_target t;
	if (llvm_target_for(o->cpu, &t, err, errlen) < 0)
		return -1;
	for (int i = 0; i < n; i++)
		for (int j = 0; j < progs[i]->nk; j++)
			if (fix_tile(progs[i], &progs[i]->k[j], &t, o, err, errlen) < 0)
				return -1;
	return 0;
}

/* --- algorithms: a convolution alone, lowered each way and timed ----- */

/* The time of all of p's kernels run in order on one thread, the best of
 * three runs: seconds, or -1 with a message in err. */
static double program_time(kir_program *p, const char *cpu, char *err, size_t errlen)
{
	llvm_kernel_fn *fns = calloc((size_t)p->nk + 1, sizeof *fns);
	llvm_jit *j = fns ? llvm_jit_compile(p, cpu, fns, err, errlen) : NULL;
	void **bufs = j ? scratch_buffers(p, p->k, p->nk) : NULL;
	double t = bufs ? best_time(p->k, fns, p->nk, bufs) : -1;
	if (j && !bufs)
		snprintf(err, errlen, "not enough memory for the buffers of a convolution");
	free_buffers(p, bufs);
	llvm_jit_free(j);
	free(fns);
	return t;
}

/* Convolution `one` (kir_conv_alone) lowered for t by algorithm w, its
 * tiles fixed as a program's are (tuned while the budget lasts): its time
 * in seconds, or -1 with a message in err. */
static double time_lowered(ir_graph *one, const kir_target *t, kir_winograd w,
                           const llvm_tune_opts *o, char *err, size_t errlen)
{
	kir_target way = *t;
	way.winograd = w;
	kir_program *p = kir_lower(one, &one->entries[0], &way);
	if (!p)
		snprintf(err, errlen, "lowering a convolution alone: %s", one->err);
	double secs = p && llvm_fix_tiles(&p, 1, o, err, errlen) == 0 ?
	              program_time(p, o->cpu, err, errlen) : -1;
	kir_program_free(p);
	return secs;
}

/* Times convolution n of g by every algorithm; records the fastest as
 * the result of signature sig. 0, or -1 with a message in err. */
static int choose_algorithm(const ir_graph *g, const ir_node *n, uint64_t sig, const kir_target *t,
                            const llvm_tune_opts *o, char *err, size_t errlen)
{
	static const kir_winograd ways[KIR_ALGOS] = { [KIR_ALGO_DIRECT] = KIR_WINOGRAD_NONE,
		                                      [KIR_ALGO_WINOGRAD2X2] = KIR_WINOGRAD_2X2,
		                                      [KIR_ALGO_WINOGRAD4X4] = KIR_WINOGRAD_4X4 };
	static const char *const names[KIR_ALGOS] = { "direct", "winograd 2x2", "winograd 4x4" };
	ir_graph *one = kir_conv_alone(g, n);
	if (!one) {
		snprintf(err, errlen, "cannot build the convolution of %s alone", n->where);
		return -1;
	}
	double secs[KIR_ALGOS];
	int best = 0;
	for (int a = 0; a < KIR_ALGOS; a++) {
		if ((secs[a] = time_lowered(one, t, ways[a], o, err, errlen)) < 0) {
			ir_free(one);
			return -1;
		}
		best = secs[a] < secs[best] ? a : best;
	}
	ir_free(one);
	kir_tuning_put_algorithm(o->db, sig, (kir_algorithm)best, ir_node_flops(g, n) / secs[best] * 1e-9);
	char from[96], to[96];
	if (o->log)
		fprintf(o->log, "tuning: %s %s -> %s (%s): direct %.2f ms, winograd 2x2 %.2f ms, 4x4 %.2f ms: %s\n",
		        ir_ops[n->op].name, ir_shape_str(&g->nodes[n->in[0]].shape, from, sizeof from),
		        ir_shape_str(&n->shape, to, sizeof to), n->where, 1e3 * secs[KIR_ALGO_DIRECT],
		        1e3 * secs[KIR_ALGO_WINOGRAD2X2], 1e3 * secs[KIR_ALGO_WINOGRAD4X4], names[best]);
	return 0;
}

int llvm_choose_algorithms(const ir_graph *g, kir_target *t, const llvm_tune_opts *o, char *err,
                           size_t errlen)
{
	t->measured = o->db;
	for (int i = 0; o->tune && t->winograd == KIR_WINOGRAD_CHOSEN && i < g->n; i++) {
		const ir_node *n = &g->nodes[i];
		kir_algorithm known;
		if (!kir_winograd_candidate(g, n))
			continue;
		uint64_t sig = kir_conv_signature(g, n);
		if (kir_tuning_find_algorithm(o->db, sig, &known) || now() > o->deadline)
			continue;
		if (choose_algorithm(g, n, sig, t, o, err, errlen) < 0)
			return -1;
	}
	return 0;
}
