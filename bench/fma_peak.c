/* fma_peak: the machine's single-precision FMA peak, measured.
 *
 * Every thread runs NACC independent chains acc = acc * m + a on the widest
 * vectors the compiler targets (AVX-512, else AVX2+FMA, else plain C that
 * the compiler may or may not vectorise), enough chains to hide the FMA
 * latency on two FMA ports. One vector FMA counts 2 * lanes FLOPs.
 * Threads are pinned one per allowed CPU when possible and start together
 * on a barrier; GFLOP/s = all threads' FLOPs / the slowest thread's time.
 * When AVX-512 is available the 256-bit (AVX2) rate is measured as well,
 * since a code generator may prefer 256-bit vectors.
 *
 *   cc -O3 -march=native -pthread -o fma_peak fma_peak.c
 *   ./fma_peak [--threads N] [--seconds S]
 *
 * Thread counts measured: 1, 2, 4, ... below N, and N (default: the number
 * of CPUs this process may run on). Prints one JSON object on stdout:
 *   {"isa", "vector_bits", "threads_max", "results": [{"threads",
 *    "gflops", "gflops_per_thread", "gflops_256"?}], "peak_gflops"}
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

#define NACC 16     /* independent chains per thread */
#define INNER 1000  /* FMAs per chain between loop-condition checks */

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Each kernel runs `reps` * INNER * NACC vector FMAs and returns a value
 * that depends on all of them (so nothing is optimised away). */
#if defined(__AVX512F__)
static float kernel512(long reps)
{
	__m512 acc[NACC];
	const __m512 m = _mm512_set1_ps(0.9999999f), a = _mm512_set1_ps(1e-7f);
	for (int i = 0; i < NACC; i++)
		acc[i] = _mm512_set1_ps((float)i);
	for (long r = 0; r < reps; r++) {
		for (int k = 0; k < INNER; k++) {
#pragma GCC unroll 16
			for (int i = 0; i < NACC; i++)
				acc[i] = _mm512_fmadd_ps(acc[i], m, a);
		}
		__asm__ volatile("" : : : "memory");
	}
	__m512 s = acc[0];
	for (int i = 1; i < NACC; i++)
		s = _mm512_add_ps(s, acc[i]);
	return _mm512_reduce_add_ps(s);
}
#endif

#if defined(__AVX2__) && defined(__FMA__)
static float kernel256(long reps)
{
	__m256 acc[NACC];
	const __m256 m = _mm256_set1_ps(0.9999999f), a = _mm256_set1_ps(1e-7f);
	for (int i = 0; i < NACC; i++)
		acc[i] = _mm256_set1_ps((float)i);
	for (long r = 0; r < reps; r++) {
		for (int k = 0; k < INNER; k++) {
#pragma GCC unroll 16
			for (int i = 0; i < NACC; i++)
				acc[i] = _mm256_fmadd_ps(acc[i], m, a);
		}
		__asm__ volatile("" : : : "memory");
	}
	__m256 s = acc[0];
	for (int i = 1; i < NACC; i++)
		s = _mm256_add_ps(s, acc[i]);
	float v[8];
	_mm256_storeu_ps(v, s);
	return v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6] + v[7];
}
#endif

/* Portable fallback: 8-lane GCC/Clang vector extension. */
typedef float v8f __attribute__((vector_size(32)));
static float kernel_generic(long reps)
{
	v8f acc[NACC];
	const v8f m = { 0.9999999f, 0.9999999f, 0.9999999f, 0.9999999f,
		        0.9999999f, 0.9999999f, 0.9999999f, 0.9999999f };
	const v8f a = { 1e-7f, 1e-7f, 1e-7f, 1e-7f, 1e-7f, 1e-7f, 1e-7f, 1e-7f };
	for (int i = 0; i < NACC; i++)
		acc[i] = m * (float)i;
	for (long r = 0; r < reps; r++) {
		for (int k = 0; k < INNER; k++)
			for (int i = 0; i < NACC; i++)
				acc[i] = acc[i] * m + a;
		__asm__ volatile("" : : : "memory");
	}
	float s = 0;
	for (int i = 0; i < NACC; i++)
		for (int l = 0; l < 8; l++)
			s += acc[i][l];
	return s;
}

typedef float (*kernel_fn)(long);

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

/* GFLOP/s of `threads` threads each running fn(reps). */
static double run(kernel_fn fn, int lanes, int threads, long reps)
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
	double flops = 2.0 * lanes * NACC * (double)INNER * (double)reps * threads;
	return flops / worst / 1e9;
}

/* reps so that one thread runs about `seconds`; best of 5 runs. */
static double measure(kernel_fn fn, int lanes, int threads, double seconds)
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
		double g = run(fn, lanes, threads, reps);
		if (g > best)
			best = g;
	}
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

	kernel_fn wide = kernel_generic, k256 = NULL;
	int lanes = 8, bits = 256;
	const char *isa = "generic";
#if defined(__AVX2__) && defined(__FMA__)
	wide = kernel256;
	isa = "avx2";
#endif
#if defined(__AVX512F__)
	k256 = wide == kernel256 ? kernel256 : NULL;
	wide = kernel512;
	lanes = 16;
	bits = 512;
	isa = "avx512";
#endif

	int counts[64], n = 0;
	for (int t = 1; t < nthreads && n < 62; t *= 2)
		counts[n++] = t;
	counts[n++] = nthreads;

	printf("{\"isa\": \"%s\", \"vector_bits\": %d, \"threads_max\": %d, \"results\": [", isa, bits,
	       nthreads);
	double peak = 0, one = 0;
	for (int i = 0; i < n; i++) {
		double g = measure(wide, lanes, counts[i], seconds);
		printf("%s\n  {\"threads\": %d, \"gflops\": %.1f, \"gflops_per_thread\": %.1f", i ? "," : "",
		       counts[i], g, g / counts[i]);
		if (k256)
			printf(", \"gflops_256\": %.1f", measure(k256, 8, counts[i], seconds));
		printf("}");
		fflush(stdout);
		peak = g;
		if (i == 0)
			one = g;
	}
	printf("],\n \"peak_gflops\": %.1f, \"peak_gflops_1thread_x_n\": %.1f}\n", peak, one * nthreads);
	return 0;
}
