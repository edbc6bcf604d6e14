/* fma_peak: the machine's single-precision FMA peak, measured.
 *
 * Every thread runs N independent chains acc = acc * m + a on the widest
 * vectors the compiler targets (AVX-512, else AVX2+FMA, else plain C that
 * the compiler may or may not vectorise), for each chain count N that fits
 * the ISA's vector registers with the two operands (N + 2 <= 16 for AVX2,
 * 32 for AVX-512), and reports the best: enough chains to hide the FMA
 * latency on two FMA ports, none spilled to the stack. One vector FMA
 * counts 2 * lanes FLOPs. Threads are pinned one per allowed CPU when
 * possible and start together on a barrier; GFLOP/s = all threads' FLOPs /
 * the slowest thread's time. When AVX-512 is available the 256-bit rate is
 * measured as well, since a code generator may prefer 256-bit vectors.
 *
 *   cc -O3 -march=native -pthread -o fma_peak fma_peak.c       (this host)
 *   cc -O3 -march=x86-64-v3 -pthread -o fma_peak fma_peak.c    (AVX2 code)
 *   ./fma_peak [--threads N] [--seconds S]
 *
 * Thread counts measured: 1, 2, 4, ... below N, and N (default: the number
 * of CPUs this process may run on). Prints one JSON object on stdout:
 *   {"isa", "vector_bits", "vector_registers", "threads_max", "results":
 *    [{"threads", "gflops_by_chains": {N: GFLOP/s}, "gflops", "chains",
 *      "gflops_per_thread", "256"?: {"gflops_by_chains", "gflops",
 *      "chains"}}], "peak_gflops"}
 * gflops is the best over the chain counts, chains the count that gave it;
 * peak_gflops is the rate at threads_max (widest vectors);
 * peak_gflops_1thread_x_n is the one-thread rate times threads_max, the
 * peak if the threads scaled perfectly (they do not when two CPUs are
 * SMT siblings, share a throttled power budget, or other work is running). */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#if defined(__AVX512F__) || defined(__AVX2__) || defined(__FMA__)
#include <immintrin.h>
#endif

/* Chains to try: enough to hide the FMA latency (4 cycles) on two FMA
 * ports needs 8 on most CPUs; more only helps while they all stay in
 * registers. Each chain is one accumulator register, and the loop needs
 * two more for the operands m and a, so a count is tried only when
 * count + 2 <= VREGS, the vector registers of the ISA compiled for: 16
 * (xmm/ymm 0-15) with AVX2, 32 (zmm/ymm 0-31) with AVX-512. More chains
 * than that spill to the stack and measure loads and stores instead (the
 * old fixed 16 chains did, for AVX2 code). */
#if defined(__AVX512F__)
#define VREGS 32
#else
#define VREGS 16
#endif
#define INNER 1000  /* FMAs per chain between loop-condition checks */
#define CHAIN_COUNTS(X) X(6) X(8) X(10) X(12) X(14) X(20) X(24) X(30)

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Each kernel runs `reps` * INNER * N vector FMAs on N chains and returns
 * a value that depends on all of them (so nothing is optimised away).
 * KERNEL(name, vector type, lanes, set1, fmadd, N). */
#define KERNEL(NAME, VT, LANES, SET1, FMADD, N)                              \
	static float NAME##_##N(long reps)                                   \
	{                                                                    \
		VT acc[N];                                                   \
		const VT m = SET1(0.9999999f), a = SET1(1e-7f);              \
		for (int i = 0; i < N; i++)                                  \
			acc[i] = SET1((float)i);                             \
		for (long r = 0; r < reps; r++) {                            \
			for (int k = 0; k < INNER; k++) {                    \
				_Pragma("GCC unroll 32")                     \
				for (int i = 0; i < N; i++)                  \
					acc[i] = FMADD(acc[i], m, a);        \
			}                                                    \
			__asm__ volatile("" : : : "memory");                 \
		}                                                            \
		float v[LANES], s = 0;                                       \
		for (int i = 0; i < N; i++) {                                \
			memcpy(v, &acc[i], sizeof v);                        \
			for (int l = 0; l < LANES; l++)                      \
				s += v[l];                                   \
		}                                                            \
		return s;                                                    \
	}

#if defined(__AVX512F__)
#define K512(N) KERNEL(k512, __m512, 16, _mm512_set1_ps, _mm512_fmadd_ps, N)
CHAIN_COUNTS(K512)
#endif
#if defined(__AVX2__) && defined(__FMA__)
#define K256(N) KERNEL(k256, __m256, 8, _mm256_set1_ps, _mm256_fmadd_ps, N)
CHAIN_COUNTS(K256)
#endif

/* Portable fallback: 8-lane GCC/Clang vector extension. */
typedef float v8f __attribute__((vector_size(32)));
#define gen_set1(x) ((v8f){ (x), (x), (x), (x), (x), (x), (x), (x) })
#define gen_fmadd(x, m, a) ((x) * (m) + (a))
#define KGEN(N) KERNEL(kgen, v8f, 8, gen_set1, gen_fmadd, N)
CHAIN_COUNTS(KGEN)

typedef float (*kernel_fn)(long);

/* One vector width's kernels, by chain count (CHAIN_COUNTS order). */
typedef struct {
	const char *isa;
	int lanes;
	kernel_fn fn[16];
} width;

#define ENTRY(P) P##_6, P##_8, P##_10, P##_12, P##_14, P##_20, P##_24, P##_30
#define COUNT(N) N,
static const int chain_count[] = { CHAIN_COUNTS(COUNT) };
enum { NCOUNTS = sizeof chain_count / sizeof chain_count[0] };

typedef struct {
	kernel_fn fn;
	long reps;
	int cpu;  /* -1: do not pin */
	pthread_barrier_t *bar;
	double seconds;
	float sink;
} job;

static void *worker(void *p)
{
	job *j = p;
	if (j->cpu >= 0) {
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET(j->cpu, &set);
		pthread_setaffinity_np(pthread_self(), sizeof set, &set);
	}
	j->fn(1);  /* warm up (clock ramp, page faults) */
	pthread_barrier_wait(j->bar);
	double t0 = now();
	j->sink = j->fn(j->reps);
	j->seconds = now() - t0;
	return NULL;
}

static int cpus[1024], ncpus;

/* GFLOP/s of `threads` threads each running fn(reps) on `chains` chains. */
static double run(kernel_fn fn, int lanes, int chains, int threads, long reps)
{
	pthread_t tid[1024];
	job jobs[1024];
	pthread_barrier_t bar;
	pthread_barrier_init(&bar, NULL, (unsigned)threads);
	for (int i = 0; i < threads; i++) {
		jobs[i] = (job){ fn, reps, ncpus >= threads ? cpus[i] : -1, &bar, 0, 0 };
		pthread_create(&tid[i], NULL, worker, &jobs[i]);
	}
	double worst = 0;
	float sink = 0;
	for (int i = 0; i < threads; i++) {
		pthread_join(tid[i], NULL);
		if (jobs[i].seconds > worst)
			worst = jobs[i].seconds;
		sink += jobs[i].sink;
	}
	pthread_barrier_destroy(&bar);
	if (sink == 12345.678f)  /* keeps the results live */
		fprintf(stderr, "%g\n", sink);
	double flops = 2.0 * lanes * chains * (double)INNER * (double)reps * threads;
	return flops / worst / 1e9;
}

/* reps so that one thread runs about `seconds`; best of 5 runs. */
static double measure(kernel_fn fn, int lanes, int chains, int threads, double seconds)
{
	long reps = 16;
	double t;
	for (;;) {
		double t0 = now();
		fn(reps);
		t = now() - t0;
		if (t > 0.02)
			break;
		reps *= 4;
	}
	reps = (long)(reps * seconds / t) + 1;
	double best = 0;
	for (int k = 0; k < 5; k++) {
		double g = run(fn, lanes, chains, threads, reps);
		if (g > best)
			best = g;
	}
	return best;
}

/* The best rate of width w on `threads` threads over the chain counts
 * that fit the registers; prints each as "gflops_by_chains". */
static double best_over_chains(const width *w, int threads, double seconds, int *best_chains)
{
	double best = 0;
	printf("\"gflops_by_chains\": {");
	for (int c = 0, first = 1; c < NCOUNTS; c++) {
		if (chain_count[c] + 2 > VREGS)
			continue;
		double g = measure(w->fn[c], w->lanes, chain_count[c], threads, seconds);
		printf("%s\"%d\": %.1f", first ? "" : ", ", chain_count[c], g);
		first = 0;
		if (g > best)
			best = g, *best_chains = chain_count[c];
	}
	printf("}");
	return best;
}

int main(int argc, char **argv)
{
	int nthreads = 0;
	double seconds = 0.2;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--threads") && i + 1 < argc)
			nthreads = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
			seconds = atof(argv[++i]);
		else {
			fprintf(stderr, "usage: fma_peak [--threads N] [--seconds S]\n");
			return 2;
		}
	}
	cpu_set_t set;
	if (sched_getaffinity(0, sizeof set, &set) == 0)
		for (int c = 0; c < CPU_SETSIZE && ncpus < 1024; c++)
			if (CPU_ISSET(c, &set))
				cpus[ncpus++] = c;
	if (nthreads <= 0)
		nthreads = ncpus > 0 ? ncpus : (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (nthreads > 1024)
		nthreads = 1024;

	/* The widest vectors first; with AVX-512 also 256-bit ones (a code
	 * generator may prefer them), which then have 32 registers too. */
	width widths[3];
	int nw = 0;
#if defined(__AVX512F__)
	widths[nw++] = (width){ "avx512", 16, { ENTRY(k512) } };
#endif
#if defined(__AVX2__) && defined(__FMA__)
	widths[nw++] = (width){ "avx2", 8, { ENTRY(k256) } };
#endif
	if (nw == 0)
		widths[nw++] = (width){ "generic", 8, { ENTRY(kgen) } };

	int counts[64], n = 0;
	for (int t = 1; t < nthreads && n < 62; t *= 2)
		counts[n++] = t;
	counts[n++] = nthreads;

	printf("{\"isa\": \"%s\", \"vector_bits\": %d, \"vector_registers\": %d, \"threads_max\": %d, \"results\": [",
	       widths[0].isa, widths[0].lanes * 32, VREGS, nthreads);
	double peak = 0, one = 0;
	for (int i = 0; i < n; i++) {
		int chains = 0, chains256 = 0;
		printf("%s\n  {\"threads\": %d, ", i ? "," : "", counts[i]);
		double g = best_over_chains(&widths[0], counts[i], seconds, &chains);
		printf(", \"gflops\": %.1f, \"chains\": %d, \"gflops_per_thread\": %.1f", g, chains, g / counts[i]);
		if (nw > 1) {
			printf(", \"256\": {");
			double g256 = best_over_chains(&widths[1], counts[i], seconds, &chains256);
			printf(", \"gflops\": %.1f, \"chains\": %d}", g256, chains256);
		}
		printf("}");
		fflush(stdout);
		peak = g;
		if (i == 0)
			one = g;
	}
	printf("],\n \"peak_gflops\": %.1f, \"peak_gflops_1thread_x_n\": %.1f}\n", peak, one * nthreads);
	return 0;
}
