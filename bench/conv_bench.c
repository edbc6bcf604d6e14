/* conv_bench: the generated kernels of one convolution, forward and
 * both gradients, timed one by one on one thread. A benchmark for tuning
 * the LLVM backend's tiles, not a test: it checks nothing.
 *
 *   conv_bench [--cpu NAME] [--winograd 2x2|4x4] [N C O H [K]]
 *                             batch N, C -> O channels, H x H images,
 *                             K x K filter, padding K/2 (default 64 128
 *                             128 14 3); code for CPU NAME (an LLVM CPU
 *                             name this host can run, such as x86-64-v3
 *                             for AVX2 or x86-64-v4 for AVX-512; default
 *                             this host's); --winograd: a 3x3
 *                             convolution and its input gradient by
 *                             Winograd F(2x2, 3x3) or F(4x4, 3x3)
 *                             (compile --winograd), their kernels timed
 *                             as the direct ones
 *
 * It builds the graph from a Lua script (the library under DDPMC_LUA_DIR,
 * default ./lua: run it from the repository root), lowers the entry as
 * `ddpmc compile` does, JIT-compiles its kernels and prints,
 * for each kernel, the best of five runs over all its rows: milliseconds,
 * GFLOP/s where it does arithmetic (the kernel's FLOPs as --report counts
 * them), and its register tile (copies of domain vars, vector registers
 * it keeps live) when it has one. Kernels run in program order: the
 * forward convolution's (with --winograd, its transforms, products and
 * the kernel reading T back) come first, up to the kernel storing y;
 * then the gradients'. Before the sum of all kernels it prints each
 * part's: the kernels after the previous output's store up to the one
 * storing y (the forward convolution), gx (the input gradient) and gw
 * (the weight gradient), in the order the program stores them. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "frontend.h"
#include "interp.h"
#include "kir.h"
#include "llvm_backend.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static ir_graph *conv_graph(const long *d)
{
	char script[1024], err[1024];
	snprintf(script, sizeof script,
	         "local ddpm = require 'ddpm'\n"
	         "local x = ddpm.param('x', { %ld, %ld, %ld, %ld }, { init = 'normal', a = 0, b = 1 })\n"
	         "local w = ddpm.param('w', { %ld, %ld, %ld, %ld }, { init = 'normal', a = 0, b = 0.1 })\n"
	         "local g = ddpm.input('g', { %ld, %ld, %ld, %ld })\n"
	         "local y = ddpm.conv2d(x, w, { padding = %ld })\n"
	         "local grads = ddpm.grad((y * g):sum(), { x, w })\n"
	         "ddpm.entry('main', { y = y, gx = grads[1], gw = grads[2] })\n",
	         d[0], d[1], d[3], d[3], d[2], d[1], d[4], d[4], d[0], d[2], d[3], d[3], d[4] / 2);
	const char *path = "/tmp/ddpmc-conv-bench.lua";
	FILE *f = fopen(path, "w");
	if (!f || fputs(script, f) < 0 || fclose(f) != 0) {
		fprintf(stderr, "conv_bench: cannot write %s\n", path);
		exit(1);
	}
	ir_graph *g = fe_load(path, NULL, 0, err, sizeof err);
	remove(path);
	if (!g) {
		fprintf(stderr, "conv_bench: %s\n", err);
		exit(1);
	}
	return g;
}

/* Every input filled with a constant: the timing does not depend on it. */
static void fill_inputs(const ir_graph *g, rt_tensorset *in)
{
	for (int id = 0; id < g->n; id++) {
		const ir_node *n = &g->nodes[id];
		if (n->op != OP_input)
			continue;
		rt_tensor *t = rt_set_add(in, n->name, n->dtype, n->shape.rank, n->shape.d);
		for (int64_t i = 0; i < rt_numel(t->rank, t->shape); i++)
			rt_store(t->dtype, t->data, i, 0.5);
	}
}

/* Whether kernel k stores the entry output `name`. */
static int stores_output(const kir_program *p, const kir_kernel *k, const char *name)
{
	for (int s = 0; s < k->nst; s++) {
		const kir_buffer *b = &p->buf[k->st[s].buf];
		if (b->kind == KB_OUTPUT && !strcmp(b->name, name))
			return 1;
	}
	return 0;
}

/* The entry's outputs: the forward convolution, the input gradient, the
 * weight gradient. */
static const char *const outputs[] = { "y", "gx", "gw" };

static void time_kernels(const kir_program *p, llvm_kernel_fn *fns, void **bufs, const llvm_target *t)
{
	double total = 0, part_end[3] = { 0 };
	int order[3], parts = 0;
	for (int n = 0; n < p->nk; n++) {
		const kir_kernel *k = &p->k[n];
		double best = 1e30;
		for (int rep = 0; rep < 5; rep++) {
			double t0 = now();
			llvm_call(k, fns[n], bufs, 0, kir_rows(k));
			best = fmin(best, now() - t0);
		}
		total += best;
		for (int o = 0; o < 3; o++)
			if (part_end[o] == 0 && stores_output(p, k, outputs[o]))
				part_end[o] = total, order[parts++] = o;
		printf("  %-34s %9.3f ms", k->name, best * 1e3);
		if (k->flops <= 0) {
			printf("\n");
			continue;
		}
		printf(" %8.1f GFLOP/s", k->flops / best * 1e-9);
		llvm_tile tl = llvm_kernel_tile(p, k, t);
		for (int d = 0; d < 2 && tl.var[0] >= 0; d++)
			if (tl.var[d] >= 0)
				printf("%s%d of var %d", d ? " x " : "   tile ", tl.copies[d], tl.var[d]);
		printf(tl.var[0] >= 0 ? ", %d registers\n" : "\n", tl.registers);
	}
	double from = 0;
	for (int i = 0; i < parts; i++) {
		char what[64];
		snprintf(what, sizeof what, "part: kernels to %s", outputs[order[i]]);
		printf("  %-34s %9.3f ms\n", what, (part_end[order[i]] - from) * 1e3);
		from = part_end[order[i]];
	}
	printf("  %-34s %9.3f ms\n", "all kernels", total * 1e3);
}

int main(int argc, char **argv)
{
	long d[5] = { 64, 128, 128, 14, 3 };
	const char *cpu = NULL;
	kir_winograd winograd = KIR_WINOGRAD_NONE;
	if (argc >= 3 && !strcmp(argv[1], "--cpu"))
		cpu = argv[2], argc -= 2, argv += 2;
	if (argc >= 3 && !strcmp(argv[1], "--winograd")) {
		winograd = !strcmp(argv[2], "2x2") ? KIR_WINOGRAD_2X2 :
		           !strcmp(argv[2], "4x4") ? KIR_WINOGRAD_4X4 : KIR_WINOGRAD_CHOSEN;
		argc -= 2, argv += 2;
	}
	if ((argc != 1 && argc != 5 && argc != 6) || winograd == KIR_WINOGRAD_CHOSEN) {
		fprintf(stderr, "usage: conv_bench [--cpu NAME] [--winograd 2x2|4x4] [N C O H [K]]\n");
		return 2;
	}
	for (int i = 1; i < argc; i++)
		d[i - 1] = strtol(argv[i], NULL, 10);
	char err[1024];
	ir_graph *g = conv_graph(d);
	rt_tensorset in = { 0 }, cin = { 0 }, st = { 0 }, out = { 0 };
	fill_inputs(g, &in);
	kir_target kt;
	if (llvm_kir_target(cpu, &kt, err, sizeof err) < 0) {
		fprintf(stderr, "conv_bench: %s\n", err);
		return 1;
	}
	kt.winograd = winograd;
	kir_target_report(&kt, stdout);
	kir_program *p = kir_lower(g, ir_entry_find(g, "main"), &kt);
	llvm_kernel_fn *fns = calloc((size_t)p->nk + 1, sizeof *fns);
	char *arena = NULL;
	void **bufs = NULL;
	llvm_jit *j = NULL;
	llvm_target t;
	if (!p || llvm_target_for(cpu, &t, err, sizeof err) < 0 || interp_init_state(g, 1, NULL, NULL, &st, err, sizeof err) < 0 ||
	    kir_convert_inputs(g, &in, &cin, err, sizeof err) < 0 ||
	    !(bufs = kir_bind_host(p, &st, &cin, &out, &arena, err, sizeof err)) ||
	    !(j = llvm_jit_compile(p, cpu, fns, err, sizeof err))) {
		fprintf(stderr, "conv_bench: %s\n", p ? err : g->err);
		return 1;
	}
	printf("conv %ldx%ld, batch %ld, %ld -> %ld channels, %ldx%ld, one thread, best of 5, code for %s"
	       " (%d lanes, %d vector registers):\n", d[4], d[4], d[0], d[1], d[2], d[3], d[3], cpu ? cpu : "this host",
	       t.lanes, t.vector_registers);
	time_kernels(p, fns, bufs, &t);
	free(bufs);
	free(arena);
	free(fns);
	llvm_jit_free(j);
	kir_program_free(p);
	rt_set_free(&in);
	rt_set_free(&cin);
	rt_set_free(&st);
	rt_set_free(&out);
	ir_free(g);
	return 0;
}
