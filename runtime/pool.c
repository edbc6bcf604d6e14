/* pool.c: spin-then-sleep worker threads that claim chunks of a launch.
 *
 * A launch g splits the rows into nchunks = min(rows, nthreads) contiguous
 * chunks. One atomic word `claim` = g << 32 | nchunks << 16 | next names the
 * current launch and its next unclaimed chunk; the caller and the workers
 * claim chunks by compare-and-swap until none is left, so a worker that is
 * slow to wake (asleep, or descheduled on a busy machine) leaves its share
 * to the others instead of holding up the launch. The caller returns when
 * `done` (chunks finished, release/acquire) reaches nchunks.
 *
 * The job (fn, bufs, rows) lives in slot g & 1 and is written before the
 * claim word is published. A claim for launch g can only succeed while the
 * word still says g, and launch g + 1 cannot be published before every
 * chunk of g is done, so the slot a successful claimer reads is stable.
 *
 * Sleeping: a worker that has spun SPIN_WORKER times registers in
 * `sleepers` and waits on the condition variable under the mutex, after
 * re-checking the word; the caller publishes the word and then reads
 * `sleepers` (both sequentially consistent, so one of them sees the other)
 * and broadcasts under the mutex only when someone sleeps. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pool.h"

/* Spin iterations before a worker sleeps (about 1 ms), and before the
 * waiting caller starts yielding its CPU. */
enum { SPIN_WORKER = 1 << 14, SPIN_CALLER = 1 << 10 };

typedef struct {
	rt_pool *pool;
	pthread_t thread;
} worker;

typedef struct {
	rt_kernel_fn fn;
	void **bufs;
	int64_t rows;
} job;

struct rt_pool {
	int nthreads;
	worker *workers;
	int nstarted;
	job jobs[2];            /* launch g uses jobs[g & 1] */
	uint32_t launches;      /* the caller's count: the current g */
	_Atomic uint64_t claim; /* g << 32 | nchunks << 16 | next chunk */
	atomic_int done;        /* chunks of the current launch finished */
	atomic_int sleepers;
	atomic_int stop;
	pthread_mutex_t mu;
	pthread_cond_t wake;
};

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

static inline uint32_t gen_of(uint64_t c)
{
	return (uint32_t)(c >> 32);
}

int rt_cpu_count(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n < 1 ? 1 : n > 4096 ? 4096 : (int)n;
}

/* Claims and runs chunks of launch g until none is left. */
static void work(rt_pool *p, uint32_t g)
{
	uint64_t c = atomic_load_explicit(&p->claim, memory_order_acquire);
	for (;;) {
		int next = (int)(c & 0xffff), n = (int)((c >> 16) & 0xffff);
		if (gen_of(c) != g || next >= n)
			return;
		if (!atomic_compare_exchange_weak_explicit(&p->claim, &c, c + 1, memory_order_acq_rel,
		                                           memory_order_acquire))
			continue;       /* c now holds the current word */
		const job *j = &p->jobs[g & 1];
		int64_t begin = (int64_t)((__int128)j->rows * next / n);
		int64_t end = (int64_t)((__int128)j->rows * (next + 1) / n);
		j->fn(j->bufs, begin, end);
		atomic_fetch_add_explicit(&p->done, 1, memory_order_release);
		c = atomic_load_explicit(&p->claim, memory_order_acquire);
	}
}

/* Waits for a launch other than `seen`; returns its generation. */
static uint32_t await_launch(rt_pool *p, uint32_t seen)
{
	uint32_t g;
	for (int spin = 0; spin < SPIN_WORKER; spin++) {
		if ((g = gen_of(atomic_load_explicit(&p->claim, memory_order_acquire))) != seen)
			return g;
		cpu_relax();
	}
	pthread_mutex_lock(&p->mu);
	atomic_fetch_add(&p->sleepers, 1);
	while ((g = gen_of(atomic_load(&p->claim))) == seen)
		pthread_cond_wait(&p->wake, &p->mu);
	atomic_fetch_sub(&p->sleepers, 1);
	pthread_mutex_unlock(&p->mu);
	return g;
}

static void *worker_main(void *arg)
{
	rt_pool *p = ((worker *)arg)->pool;
	uint32_t seen = 0;      /* no launch happens before rt_pool_new returns */
	for (;;) {
		seen = await_launch(p, seen);
		if (atomic_load_explicit(&p->stop, memory_order_acquire))
			return NULL;
		work(p, seen);
	}
}

/* Publishes launch number ++launches with nchunks chunks. */
static uint32_t publish(rt_pool *p, int nchunks)
{
	uint32_t g = ++p->launches;
	atomic_store_explicit(&p->done, 0, memory_order_relaxed);
	atomic_store(&p->claim, (uint64_t)g << 32 | (uint64_t)nchunks << 16);
	if (atomic_load(&p->sleepers) > 0) {
		pthread_mutex_lock(&p->mu);
		pthread_cond_broadcast(&p->wake);
		pthread_mutex_unlock(&p->mu);
	}
	return g;
}

void rt_pool_run(rt_pool *p, rt_kernel_fn fn, void **bufs, int64_t rows)
{
	if (rows <= 0)
		return;
	if (!p || p->nthreads == 1 || rows == 1) {
		fn(bufs, 0, rows);
		return;
	}
	int nchunks = rows < p->nthreads ? (int)rows : p->nthreads;
	job *j = &p->jobs[(p->launches + 1) & 1];
	j->fn = fn;
	j->bufs = bufs;
	j->rows = rows;
	work(p, publish(p, nchunks));
	for (int spin = 0; atomic_load_explicit(&p->done, memory_order_acquire) < nchunks; spin++) {
		if (spin < SPIN_CALLER)
			cpu_relax();
		else
			sched_yield();
	}
}

int rt_pool_threads(const rt_pool *p)
{
	return p ? p->nthreads : 1;
}

static void stop_workers(rt_pool *p)
{
	atomic_store_explicit(&p->stop, 1, memory_order_release);
	publish(p, 0);
	for (int i = 0; i < p->nstarted; i++)
		pthread_join(p->workers[i].thread, NULL);
}

void rt_pool_free(rt_pool *p)
{
	if (!p)
		return;
	stop_workers(p);
	pthread_cond_destroy(&p->wake);
	pthread_mutex_destroy(&p->mu);
	free(p->workers);
	free(p);
}

rt_pool *rt_pool_new(int nthreads, char *err, size_t errlen)
{
	rt_pool *p = calloc(1, sizeof *p);
	if (nthreads <= 0)
		nthreads = rt_cpu_count();
	if (nthreads > 4096)            /* nchunks must fit 16 bits of the claim word */
		nthreads = 4096;
	if (!p || !(p->workers = calloc((size_t)nthreads, sizeof *p->workers))) {
		snprintf(err, errlen, "thread pool: out of memory");
		free(p);
		return NULL;
	}
	p->nthreads = nthreads;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->wake, NULL);
	atomic_init(&p->claim, 0);
	atomic_init(&p->done, 0);
	atomic_init(&p->sleepers, 0);
	atomic_init(&p->stop, 0);
	for (int i = 0; i < nthreads - 1; i++) {
		worker *w = &p->workers[i];
		w->pool = p;
		int rc = pthread_create(&w->thread, NULL, worker_main, w);
		if (rc) {
			snprintf(err, errlen, "thread pool: cannot start thread %d of %d: %s", i + 2,
			         nthreads, strerror(rc));
			rt_pool_free(p);
			return NULL;
		}
		p->nstarted++;
	}
	return p;
}
