/* pool: a persistent pool of threads that runs one kernel at a time over
 * its rows, split into contiguous chunks.
 *
 * A train step launches about a thousand kernels, many of them tiny, so a
 * launch costs little: the workers spin for a while (about a millisecond)
 * after each kernel, since the next one usually follows at once, then sleep
 * on a condition variable until the next launch. The calling thread is one
 * of the pool's threads. A launch is cut into min(rows, nthreads) chunks
 * that the caller and the workers claim one at a time, so a worker that is
 * slow to wake leaves its share to the others. A kernel of one row, or a
 * pool of one thread, runs inline on the caller without touching the
 * workers.
 *
 * One caller at a time: rt_pool_run is not reentrant and must not be
 * called from inside a kernel. */
#ifndef DDPMC_RUNTIME_POOL_H
#define DDPMC_RUNTIME_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "program.h"

typedef struct rt_pool rt_pool;

/* The number of online CPUs (at least 1). */
int rt_cpu_count(void);

/* A pool of nthreads threads counting the caller (nthreads <= 0: one per
 * online CPU). Returns NULL with a message in err when threads cannot be
 * started. */
rt_pool *rt_pool_new(int nthreads, char *err, size_t errlen);
int rt_pool_threads(const rt_pool *p);

/* Runs fn(bufs, begin, end) over [0, rows) split into n = min(rows,
 * rt_pool_threads) contiguous chunks, chunk i = [rows*i/n, rows*(i+1)/n),
 * each run once by some thread; returns when every chunk is done (and its
 * writes are visible to the caller). p may be NULL: the caller runs it all. */
void rt_pool_run(rt_pool *p, rt_kernel_fn fn, void **bufs, int64_t rows);

/* Stops and joins the workers. NULL is fine. */
void rt_pool_free(rt_pool *p);

#endif
