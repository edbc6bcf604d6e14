/* llvm_tune: the register tiles of a program's contractions, fixed before
 * code generation: by measurement on this machine (the tuner), by the
 * tuning file's earlier measurements, or by the cost model.
 *
 * The tuner JIT-compiles each candidate tile of a kernel
 * (llvm_tile_candidates: the cost model's best few, all within the
 * vector registers) as one program, runs each over all the kernel's rows
 * on one thread on zeroed buffers (the time of a contraction does not
 * depend on its values), and keeps the fastest of the best of three
 * runs. Kernels equal but for their buffers have one signature and are
 * timed once; kernels with nothing to tile are left to the backend.
 *
 * requires: programs out of kir_lower for the CPU `cpu`.
 * establishes: every kernel with tile candidates has k->tile fixed
 *   (KIR_TILE_TUNED or KIR_TILE_MODEL), one of its candidates; the same
 *   tuning file and programs give the same tiles. */
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

/* Zeroed buffers for k's arguments in a table of p's buffers. */
static void **scratch_buffers(const kir_program *p, const kir_kernel *k)
{
	void **bufs = calloc((size_t)p->nbuf + 1, sizeof *bufs);
	for (int j = 0; bufs && j < k->narg; j++) {
		const kir_buffer *b = &p->buf[k->arg[j]];
		bufs[k->arg[j]] = calloc((size_t)b->numel + 1, rt_dtype_size(b->dtype));
		if (!bufs[k->arg[j]])
			return bufs;    /* the caller sees the hole */
	}
	return bufs;
}

static void free_buffers(const kir_program *p, void **bufs)
{
	for (int i = 0; bufs && i < p->nbuf; i++)
		free(bufs[i]);
	free(bufs);
}

/* The best of three runs of fn over every row of k, in seconds. */
static double best_time(const kir_kernel *k, llvm_kernel_fn fn, void **bufs)
{
	double best = 1e30;
	llvm_call(k, fn, bufs, 0, kir_rows(k));         /* caches and pages warm */
	for (int rep = 0; rep < 3; rep++) {
		double t0 = now();
		llvm_call(k, fn, bufs, 0, kir_rows(k));
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
	void **bufs = j ? scratch_buffers(p, &copies[0]) : NULL;
	int ok = j && bufs;
	for (int a = 0; ok && a < copies[0].narg; a++)
		ok = bufs[copies[0].arg[a]] != NULL;
	if (j && !ok)
		snprintf(err, errlen, "not enough memory for the buffers of %s", k->name);
	double best = 1e30;
	for (int i = 0; ok && i < n; i++) {
		double t = best_time(&copies[i], fns[i], bufs), gflops = k->flops / (t > 0 ? t : 1e-9) * 1e-9;
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
                    const llvm_tune_opts *o, double deadline, char *err, size_t errlen)
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
	if (!o->tune || n < 2 || now() > deadline)
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

int llvm_fix_tiles(kir_program **progs, int n, const llvm_tune_opts *o, char *err, size_t errlen)
{
	llvm_target t;
	if (llvm_target_for(o->cpu, &t, err, errlen) < 0)
		return -1;
	double deadline = now() + o->seconds;
	for (int i = 0; i < n; i++)
		for (int j = 0; j < progs[i]->nk; j++)
			if (fix_tile(progs[i], &progs[i]->k[j], &t, o, deadline, err, errlen) < 0)
				return -1;
	return 0;
}
