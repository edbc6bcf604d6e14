/* llvm_backend: target machines, modules of kernels, the O3 pipeline, the
 * JIT and object files. The loop nest of one kernel is llvm_kernel.c.
 *
 * The target's facts (llvm_target) are found here from the features of
 * the CPU chosen: 16 f32 lanes and 32 vector registers with AVX-512, 8
 * lanes with AVX/AVX2, 4 otherwise (SSE, NEON); 16 registers on x86
 * without AVX-512, 32 on AArch64. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <llvm-c/Analysis.h>
#include <llvm-c/Core.h>
#include <llvm-c/Error.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Orc.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>
#include <llvm-c/Transforms/PassBuilder.h>

#include "llvm_backend.h"
#include "llvm_internal.h"

struct llvm_jit {
	LLVMOrcLLJITRef jit;
};

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void init_llvm(void)
{
	LLVMInitializeNativeTarget();
	LLVMInitializeNativeAsmPrinter();
	LLVMInitializeNativeAsmParser();
}

/* Whether a CPU has AVX-512 (AVX-512F): from its feature string (host),
 * else from its name. */
static int has_avx512(const char *cpu, const char *features)
{
	static const char *avx512[] = { "x86-64-v4", "skylake-avx512", "cascadelake", "cooperlake",
	                                "cannonlake", "icelake", "tigerlake", "rocketlake",
	                                "sapphirerapids", "emeraldrapids", "graniterapids",
	                                "znver4", "znver5", "knl", "knm", NULL };
	if (features && *features)
		return strstr(features, "+avx512f") != NULL;
	for (int i = 0; avx512[i]; i++)
		if (!strncmp(cpu, avx512[i], strlen(avx512[i])))
			return 1;
	return 0;
}

/* f32 lanes for a CPU without AVX-512: 8 with AVX, 4 with SSE only. */
static int lanes_below_avx512(const char *cpu, const char *features)
{
	static const char *sse[] = { "x86-64", "x86-64-v2", "generic", "core2", "nehalem",
	                             "westmere", "penryn", NULL };
	if (features && *features)
		return strstr(features, "+avx,") || strstr(features, "+avx2") ? 8 : 4;
	for (int i = 0; sse[i]; i++)
		if (!strcmp(cpu, sse[i]))
			return 4;
	return 8;
}

/* The facts of a CPU on a triple. Vector registers: x86 has 16 (xmm/ymm
 * 0-15) and AVX-512 doubles them (zmm 0-31, also for 256-bit code);
 * AArch64 has 32. */
static llvm_target target_of(const char *triple, const char *cpu, const char *features)
{
	int x86 = !strncmp(triple, "x86_64", 6) || !strncmp(triple, "i386", 4) || !strncmp(triple, "i686", 4);
	int arm64 = !strncmp(triple, "aarch64", 7) || !strncmp(triple, "arm64", 5);
	int avx512 = x86 && has_avx512(cpu, features);
	llvm_target t = { avx512 ? 16 : x86 ? lanes_below_avx512(cpu, features) : 4, avx512 || arm64 ? 32 : 16 };
	const char *force = getenv("DDPMC_LLVM_LANES");     /* tuning experiments only */
	if (force && atoi(force) >= 1 && atoi(force) <= 64)
		t.lanes = atoi(force);
	return t;
}

static void set_err(char *err, size_t len, const char *what, const char *msg)
{
	snprintf(err, len, "llvm: %s%s%s", what, msg ? ": " : "", msg ? msg : "");
}

static int take_error(LLVMErrorRef e, char *err, size_t len, const char *what)
{
	if (!e)
		return 0;
	char *msg = LLVMGetErrorMessage(e);
	set_err(err, len, what, msg);
	LLVMDisposeErrorMessage(msg);
	return -1;
}

LLVMTargetMachineRef llvm_make_tm(const char *cpu, llvm_target *facts, char *err, size_t errlen)
{
	pthread_once(&init_once, init_llvm);
	int host = !cpu || !strcmp(cpu, "native");
	char *triple = LLVMGetDefaultTargetTriple(), *msg = NULL;
	LLVMTargetRef T;
	LLVMTargetMachineRef tm = NULL;
	if (LLVMGetTargetFromTriple(triple, &T, &msg)) {
		set_err(err, errlen, "no target for this host", msg);
		LLVMDisposeMessage(msg);
		LLVMDisposeMessage(triple);
		return NULL;
	}
	char *hcpu = host ? LLVMGetHostCPUName() : NULL, *hfeat = host ? LLVMGetHostCPUFeatures() : NULL;
	tm = LLVMCreateTargetMachine(T, triple, host ? hcpu : cpu, host ? hfeat : "",
	                             LLVMCodeGenLevelAggressive, LLVMRelocPIC, LLVMCodeModelDefault);
	if (!tm)
		set_err(err, errlen, "cannot make a target machine for CPU", host ? hcpu : cpu);
	*facts = target_of(triple, host ? hcpu : cpu, hfeat);
	if (hcpu)
		LLVMDisposeMessage(hcpu);
	if (hfeat)
		LLVMDisposeMessage(hfeat);
	LLVMDisposeMessage(triple);
	return tm;
}

int llvm_target_for(const char *cpu, llvm_target *t, char *err, size_t errlen)
{
	LLVMTargetMachineRef tm = llvm_make_tm(cpu, t, err, errlen);
	if (!tm)
		return -1;
	LLVMDisposeTargetMachine(tm);
	return 0;
}

/* The lowering's thresholds on a CPU (kir_target, schedule.c). A 3x3
 * convolution runs channels-last from two vectors of output channels, in
 * whole vectors: 32 by 16 on AVX-512, measured with bench/conv_bench and
 * whole train steps of models/unet.lua on an AVX-512 Xeon (on the train
 * step this beat vectors over the image width everywhere and channel
 * vectors for 7-wide images only, though one 14x14 convolution alone is
 * faster with its width in the vectors); 16 by 8 on AVX2, measured with
 * conv_bench's AVX2 code (docs/performance.md, "Channels-last by the
 * target's vectors"); SSE and AArch64 follow the same rule unmeasured.
 * A weight gradient's partial sums take up to 32 MiB (one image a block
 * for 64 -> 64 channels at batch 128). Where no tuning file says, a 3x3
 * convolution runs by Winograd from 64 input and output channels: so
 * `compile --tune` chose on AVX2 and AVX-512 code alike for every 3x3
 * convolution and input gradient of models/unet.lua (64 to 256 channels:
 * Winograd 1.05-2.1x faster; 1 channel: direct 2.5-4.5x faster) and of
 * C -> C at 28x28, batch 64 (8 and 16: direct; 32: either within 15 %)
 * (docs/performance.md, "Winograd or direct"). */
static void cpu_thresholds(kir_target *kt)
{
	kt->channels_last_min = 2 * kt->lanes;
	kt->channels_last_step = kt->lanes;
	kt->partials_max_bytes = 32 << 20;
	kt->winograd_min_channels = 64;
}

static int64_t host_fact(int name)
{
	long v = sysconf(name);
	return v > 0 ? v : 0;
}

int llvm_kir_target(const char *cpu, kir_target *kt, char *err, size_t errlen)
{
	llvm_target t;
	if (llvm_target_for(cpu, &t, err, errlen) < 0)
		return -1;
	int host = !cpu || !strcmp(cpu, "native");
	*kt = (kir_target){ .lanes = t.lanes, .vector_registers = t.vector_registers };
	snprintf(kt->name, sizeof kt->name, "cpu %s", host ? "native" : cpu);
	if (host) {
		kt->cores = (int)host_fact(_SC_NPROCESSORS_ONLN);
		kt->l1_bytes = host_fact(_SC_LEVEL1_DCACHE_SIZE);
		kt->l2_bytes = host_fact(_SC_LEVEL2_CACHE_SIZE);
	}
	cpu_thresholds(kt);
	return 0;
}

static void prepare_module(LLVMModuleRef M, LLVMTargetMachineRef tm)
{
	char *triple = LLVMGetTargetMachineTriple(tm);
	LLVMTargetDataRef dl = LLVMCreateTargetDataLayout(tm);
	LLVMSetTarget(M, triple);
	LLVMSetModuleDataLayout(M, dl);
	LLVMDisposeTargetData(dl);
	LLVMDisposeMessage(triple);
}

/* Verifies, then runs default<O3> for the target without LLVM's loop
 * unroller: a kernel's register tile is unrolled as it is emitted
 * (llvm_kernel.c), and unrolling its loops again made models/unet.lua
 * compile in 19.8 s instead of 17.3 s for no measurable speed. */
static int optimize(LLVMModuleRef M, LLVMTargetMachineRef tm, char *err, size_t errlen)
{
	char *msg = NULL;
	if (LLVMVerifyModule(M, LLVMReturnStatusAction, &msg)) {
		set_err(err, errlen, "generated IR is invalid", msg);
		if (getenv("DDPMC_LLVM_DUMP"))
			LLVMDumpModule(M);
		LLVMDisposeMessage(msg);
		return -1;
	}
	LLVMDisposeMessage(msg);
	LLVMPassBuilderOptionsRef opts = LLVMCreatePassBuilderOptions();
	LLVMPassBuilderOptionsSetLoopUnrolling(opts, 0);
	int rc = take_error(LLVMRunPasses(M, "default<O3>", tm, opts), err, errlen, "optimization failed");
	LLVMDisposePassBuilderOptions(opts);
	if (getenv("DDPMC_LLVM_DUMP"))
		LLVMDumpModule(M);
	return rc;
}

/* The symbol of function fn, named after the first kernel that has it. */
static void function_symbol(char *buf, size_t len, const kir_kernel *k)
{
	snprintf(buf, len, "ddpmc_f%d_%s", k->fn, k->name ? k->name : "");
	for (char *c = buf; *c; c++)
		if (!(*c == '_' || (*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z')))
			*c = '_';
}

/* The kernel of each function: the first of progs[0..n) that has it. */
typedef struct {
	const kir_program *p;
	const kir_kernel *k;
} function_of;

static function_of *first_kernels(kir_program **progs, int n, int nfn)
{
	function_of *first = calloc((size_t)nfn + 1, sizeof *first);
	for (int i = 0; first && i < n; i++)
		for (int k = 0; k < progs[i]->nk; k++)
			if (!first[progs[i]->k[k].fn].k)
				first[progs[i]->k[k].fn] = (function_of){ progs[i], &progs[i]->k[k] };
	return first;
}

/* The number of distinct functions of progs[0..n) (kir_share done). */
static int count_functions(kir_program **progs, int n)
{
	int nfn = 0;
	for (int i = 0; i < n; i++)
		for (int k = 0; k < progs[i]->nk; k++)
			nfn = progs[i]->k[k].fn >= nfn ? progs[i]->k[k].fn + 1 : nfn;
	return nfn;
}

/* M: every distinct function of p for target t (kir_share sets the
 * kernels' functions), optimized. Returns the function of each; NULL with
 * a message in err on failure. */
static function_of *add_program(LLVMModuleRef M, kir_program *p, LLVMTargetMachineRef tm, const llvm_target *t,
                                char *err, size_t errlen)
{
	int rc = kir_verify(p, err, errlen), nfn = kir_share(&p, 1);
	function_of *first = first_kernels(&p, 1, nfn);
	prepare_module(M, tm);
	char name[160];
	for (int f = 0; rc == 0 && f < nfn; f++) {
		function_symbol(name, sizeof name, first[f].k);
		llvm_emit_kernel(M, p, first[f].k, name, t);
	}
	if (rc == 0)
		rc = optimize(M, tm, err, errlen);
	if (rc < 0) {
		free(first);
		return NULL;
	}
	return first;
}

llvm_jit *llvm_jit_compile(kir_program *p, const char *cpu, llvm_kernel_fn *fns, char *err, size_t errlen)
{
	llvm_target t;
	LLVMTargetMachineRef tm = llvm_make_tm(cpu, &t, err, errlen), jtm = NULL;
	if (!tm)
		return NULL;
	LLVMOrcThreadSafeContextRef tsc = LLVMOrcCreateNewThreadSafeContext();
	LLVMModuleRef M = LLVMModuleCreateWithNameInContext(p->entry ? p->entry : "ddpmc",
	                                                    LLVMOrcThreadSafeContextGetContext(tsc));
	function_of *first = add_program(M, p, tm, &t, err, errlen);
	llvm_jit *j = calloc(1, sizeof *j);
	char name[160];
	int rc = first ? 0 : -1;
	if (rc == 0 && !(jtm = llvm_make_tm(cpu, &t, err, errlen)))
		rc = -1;
	if (rc == 0) {
		LLVMOrcLLJITBuilderRef b = LLVMOrcCreateLLJITBuilder();
		LLVMOrcLLJITBuilderSetJITTargetMachineBuilder(b, LLVMOrcJITTargetMachineBuilderCreateFromTargetMachine(jtm));
		rc = take_error(LLVMOrcCreateLLJIT(&j->jit, b), err, errlen, "cannot create the JIT");
	}
	LLVMOrcJITDylibRef jd = rc == 0 ? LLVMOrcLLJITGetMainJITDylib(j->jit) : NULL;
	if (rc == 0) {
		LLVMOrcDefinitionGeneratorRef gen;
		rc = take_error(LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(&gen, LLVMOrcLLJITGetGlobalPrefix(j->jit), NULL, NULL),
		                err, errlen, "cannot search the process for symbols");
		if (rc == 0)
			LLVMOrcJITDylibAddGenerator(jd, gen);
	}
	if (rc == 0) {
		LLVMOrcThreadSafeModuleRef tsm = LLVMOrcCreateNewThreadSafeModule(M, tsc);
		M = NULL;
		rc = take_error(LLVMOrcLLJITAddLLVMIRModule(j->jit, jd, tsm), err, errlen, "cannot add the module");
	}
	for (int n = 0; rc == 0 && n < p->nk; n++) {
		LLVMOrcExecutorAddress addr = 0;
		function_symbol(name, sizeof name, first[p->k[n].fn].k);
		rc = take_error(LLVMOrcLLJITLookup(j->jit, &addr, name), err, errlen, "kernel lookup failed");
		fns[n] = (llvm_kernel_fn)(uintptr_t)addr;
	}
	if (M)
		LLVMDisposeModule(M);
	LLVMOrcDisposeThreadSafeContext(tsc);
	LLVMDisposeTargetMachine(tm);
	free(first);
	if (rc < 0) {
		llvm_jit_free(j);
		return NULL;
	}
	return j;
}

void llvm_call(const kir_kernel *k, llvm_kernel_fn fn, void **bufs, int64_t rb, int64_t re)
{
	void *args[k->narg + 1];
	for (int j = 0; j < k->narg; j++)
		args[j] = bufs[k->arg[j]];
	fn(args, rb, re);
}

void llvm_jit_free(llvm_jit *j)
{
	if (!j)
		return;
	if (j->jit)
		LLVMOrcDisposeLLJIT(j->jit);
	free(j);
}

char *llvm_assembly(kir_program *p, const char *cpu, char *err, size_t errlen)
{
	llvm_target t;
	LLVMTargetMachineRef tm = llvm_make_tm(cpu, &t, err, errlen);
	if (!tm)
		return NULL;
	LLVMSetTargetMachineAsmVerbosity(tm, 1);
	LLVMContextRef C = LLVMContextCreate();
	LLVMModuleRef M = LLVMModuleCreateWithNameInContext("ddpmc", C);
	function_of *first = add_program(M, p, tm, &t, err, errlen);
	LLVMMemoryBufferRef buf = NULL;
	char *msg = NULL, *text = NULL;
	if (first && LLVMTargetMachineEmitToMemoryBuffer(tm, M, LLVMAssemblyFile, &msg, &buf))
		set_err(err, errlen, "cannot write assembly", msg);
	if (buf && (text = malloc(LLVMGetBufferSize(buf) + 1))) {
		memcpy(text, LLVMGetBufferStart(buf), LLVMGetBufferSize(buf));
		text[LLVMGetBufferSize(buf)] = 0;
	}
	if (buf)
		LLVMDisposeMemoryBuffer(buf);
	if (msg)
		LLVMDisposeMessage(msg);
	free(first);
	LLVMDisposeModule(M);
	LLVMContextDispose(C);
	LLVMDisposeTargetMachine(tm);
	return text;
}

static LLVMValueRef add_global(LLVMModuleRef M, const char *name, LLVMValueRef init)
{
	LLVMValueRef g = LLVMAddGlobal(M, LLVMTypeOf(init), name);
	LLVMSetInitializer(g, init);
	LLVMSetGlobalConstant(g, 1);
	LLVMSetLinkage(g, LLVMExternalLinkage);
	return g;
}

/* ddpmc_kernels[] (and ddpmc_nkernels, their count), then the blobs. */
static void add_tables(LLVMModuleRef M, LLVMValueRef *fns, int total, const llvm_blob *blobs, int nblobs)
{
	LLVMContextRef C = LLVMGetModuleContext(M);
	LLVMTypeRef ptr = LLVMPointerTypeInContext(C, 0), i64 = LLVMInt64TypeInContext(C);
	char name[512];
	add_global(M, "ddpmc_kernels", LLVMConstArray2(ptr, fns, (uint64_t)total));
	add_global(M, "ddpmc_nkernels", LLVMConstInt(i64, (unsigned long long)total, 0));
	for (int b = 0; b < nblobs; b++) {
		LLVMValueRef g = add_global(M, blobs[b].name,
		                            LLVMConstStringInContext2(C, blobs[b].data ? blobs[b].data : "", blobs[b].len, 1));
		LLVMSetAlignment(g, 64);
		snprintf(name, sizeof name, "%s_len", blobs[b].name);
		add_global(M, name, LLVMConstInt(i64, (unsigned long long)blobs[b].len, 0));
	}
}

/* One object file's share of the work: the functions f with
 * part_of[f] == part; part 0 also holds the tables and the blobs and
 * declares every function it does not define. */
typedef struct {
	kir_program **progs;
	int n, part;
	const int *part_of;
	const llvm_blob *blobs;
	int nblobs;
	const char *cpu, *path;
	int rc;
	char err[512];
} object_job;

static LLVMValueRef declare_kernel(LLVMModuleRef M, const char *name)
{
	LLVMContextRef C = LLVMGetModuleContext(M);
	LLVMTypeRef ptr = LLVMPointerTypeInContext(C, 0), i64 = LLVMInt64TypeInContext(C);
	LLVMTypeRef params[3] = { ptr, i64, i64 };
	return LLVMAddFunction(M, name, LLVMFunctionType(LLVMVoidTypeInContext(C), params, 3, 0));
}

static int fill_module(object_job *j, LLVMModuleRef M, const llvm_target *t)
{
	char name[160];
	int rc = 0, nfn = count_functions(j->progs, j->n);
	for (int i = 0; rc == 0 && i < j->n; i++)
		rc = kir_verify(j->progs[i], j->err, sizeof j->err);
	function_of *first = first_kernels(j->progs, j->n, nfn);
	LLVMValueRef *fns = calloc((size_t)nfn + 1, sizeof *fns);
	for (int f = 0; rc == 0 && f < nfn; f++) {
		function_symbol(name, sizeof name, first[f].k);
		if (j->part_of[f] == j->part)
			fns[f] = llvm_emit_kernel(M, first[f].p, first[f].k, name, t);
		else if (j->part == 0)
			fns[f] = declare_kernel(M, name);
	}
	if (rc == 0 && j->part == 0)
		add_tables(M, fns, nfn, j->blobs, j->nblobs);
	free(fns);
	free(first);
	return rc;
}

static void *emit_part(void *arg)
{
	object_job *j = arg;
	llvm_target t;
	LLVMTargetMachineRef tm = llvm_make_tm(j->cpu, &t, j->err, sizeof j->err);
	if (!tm) {
		j->rc = -1;
		return NULL;
	}
	LLVMContextRef C = LLVMContextCreate();
	LLVMModuleRef M = LLVMModuleCreateWithNameInContext("ddpmc", C);
	prepare_module(M, tm);
	j->rc = fill_module(j, M, &t);
	if (j->rc == 0)
		j->rc = optimize(M, tm, j->err, sizeof j->err);
	char *msg = NULL;
	if (j->rc == 0 && LLVMTargetMachineEmitToFile(tm, M, (char *)j->path, LLVMObjectFile, &msg)) {
		set_err(j->err, sizeof j->err, "cannot write the object file", msg);
		j->rc = -1;
	}
	if (msg)
		LLVMDisposeMessage(msg);
	LLVMDisposeModule(M);
	LLVMContextDispose(C);
	LLVMDisposeTargetMachine(tm);
	return NULL;
}

/* What a function costs LLVM, roughly: its expressions and stores, once
 * per copy of its register tile; a random number (Philox's ten rounds and
 * a Box-Muller transform) as RANDOM_COST expressions. */
enum { RANDOM_COST = 64 };

static double function_cost(const kir_kernel *k)
{
	int copies = k->tile.source == KIR_TILE_OPEN ? 1 : k->tile.copies[0] * k->tile.copies[1];
	double size = k->nx + k->nst;
	for (int i = 0; i < k->nx; i++)
		size += k->x[i].kind == KX_RANDOM ? RANDOM_COST - 1 : 0;
	return size * (copies > 1 ? copies : 1);
}

/* Functions to parts, the costliest first, each to the part with the least
 * cost so far (ties: the lower part); load[part] is its total. With more
 * than one part, part 0 gets none: it holds the tables and the blobs (the
 * OpenCL source is megabytes) and is compiled first. */
static int *assign_parts(const function_of *first, int nfn, int parts, double *load)
{
	int lowest = parts > 1;
	int *part_of = malloc(((size_t)nfn + 1) * sizeof *part_of);
	double *cost = malloc(((size_t)nfn + 1) * sizeof *cost);       /* -1: assigned */
	for (int f = 0; cost && f < nfn; f++)
		cost[f] = function_cost(first[f].k);
	for (int n = 0; part_of && cost && n < nfn; n++) {
		int f = -1, least = lowest;
		for (int g = 0; g < nfn; g++)
			if (cost[g] >= 0 && (f < 0 || cost[g] > cost[f]))
				f = g;
		for (int q = lowest + 1; q < parts; q++)
			least = load[q] < load[least] ? q : least;
		part_of[f] = least;
		load[least] += cost[f];
		cost[f] = -1;
	}
	if (!cost) {
		free(part_of);
		part_of = NULL;
	}
	free(cost);
	return part_of;
}

/* The threads of llvm_emit_objects: each compiles the costliest part not
 * yet taken until none is left (order[]), so parts of unequal cost even
 * out. */
typedef struct {
	object_job *jobs;
	int *order;
	int parts, next;
	pthread_mutex_t lock;
} part_queue;

static void *emit_parts(void *arg)
{
	part_queue *q = arg;
	for (;;) {
		pthread_mutex_lock(&q->lock);
		int i = q->next < q->parts ? q->order[q->next++] : -1;
		pthread_mutex_unlock(&q->lock);
		if (i < 0)
			return NULL;
		emit_part(&q->jobs[i]);
	}
}

/* Part 0, then the others by decreasing load (ties: the lower first). */
static int *costliest_first(const double *load, int parts)
{
	int *order = malloc((size_t)parts * sizeof *order);
	for (int i = 0; order && i < parts; i++) {
		int j = i;
		for (; j > 1 && load[order[j - 1]] < load[i]; j--)
			order[j] = order[j - 1];
		order[j] = i;
	}
	return order;
}

static int run_parts(object_job *jobs, int parts, const double *load, int threads)
{
	part_queue q = { jobs, costliest_first(load, parts), parts, 0, PTHREAD_MUTEX_INITIALIZER };
	pthread_t *tid = calloc((size_t)threads, sizeof *tid);
	char *started = calloc((size_t)threads, 1);
	int rc = q.order && tid && started ? 0 : -1;
	for (int i = 1; rc == 0 && i < threads; i++)
		started[i] = pthread_create(&tid[i], NULL, emit_parts, &q) == 0;
	if (rc == 0)
		emit_parts(&q);      /* also every part if no thread started */
	for (int i = 1; rc == 0 && i < threads; i++)
		if (started[i])
			pthread_join(tid[i], NULL);
	free(q.order);
	free(tid);
	free(started);
	return rc;
}

int llvm_emit_objects(kir_program **progs, int n, const llvm_blob *blobs, int nblobs,
                      const char *cpu, int parts, int threads, char *const *paths, char *err, size_t errlen)
{
	pthread_once(&init_once, init_llvm);
	int nfn = count_functions(progs, n);
	function_of *first = first_kernels(progs, n, nfn);
	double *load = calloc((size_t)parts, sizeof *load);
	int *part_of = first && load ? assign_parts(first, nfn, parts, load) : NULL;
	object_job *jobs = calloc((size_t)parts, sizeof *jobs);
	int rc = part_of && jobs ? 0 : -1;
	snprintf(err, errlen, "out of memory");
	for (int i = 0; rc == 0 && i < parts; i++)
		jobs[i] = (object_job){ progs, n, i, part_of, blobs, nblobs, cpu, paths[i], 0, "" };
	if (rc == 0)
		rc = run_parts(jobs, parts, load, threads);
	for (int i = 0; rc == 0 && i < parts; i++)
		if (jobs[i].rc != 0) {
			snprintf(err, errlen, "%s", jobs[i].err);
			rc = -1;
		}
	free(jobs);
	free(part_of);
	free(load);
	free(first);
	return rc;
}

int llvm_emit_object(kir_program **progs, int n, const llvm_blob *blobs, int nblobs,
                     const char *cpu, const char *path, char *err, size_t errlen)
{
	char *paths[1] = { (char *)path };
	return llvm_emit_objects(progs, n, blobs, nblobs, cpu, 1, 1, paths, err, errlen);
}
