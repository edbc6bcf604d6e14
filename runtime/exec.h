/* exec: runs one entry of a compiled program on host tensors.
 *
 * Binding (buffer i of the entry becomes bufs[i] for its kernels):
 *   param   the state tensor of that name, in place: the kernels update it.
 *           Its dtype and shape must be the param's.
 *   input   the input tensor of that name; its element count must match.
 *           When its dtype differs it is converted into a copy that the
 *           entry keeps between calls.
 *   output  the output tensor of that name: reused when `outputs` holds it
 *           already with the buffer's dtype and size, else added.
 *   temp    the entry's arena (arena_bytes, 64-byte aligned), allocated on
 *           the first call and reused; temps are written before they are
 *           read, so it is never cleared.
 *   const   the program data at the buffer's offset.
 * Then the kernels run in order, each over its rows on the pool.
 *
 * Each entry keeps its arena, its bufs array and where it found each
 * tensor last time (so a step costs no allocation and no name search when
 * the same sets are passed again). Hence one caller at a time per program. */
#ifndef DDPMC_RUNTIME_EXEC_H
#define DDPMC_RUNTIME_EXEC_H

#include <stddef.h>

#include "pool.h"
#include "program.h"
#include "tensor.h"

/* Returns RT_OK, or RT_ERR with a one-line message in err (naming the
 * entry and the tensor) when a tensor is missing or mismatched or memory
 * runs out; no kernel has run then. pool may be NULL (the caller runs
 * everything). */
int rt_entry_run(const rt_program *p, const rt_entry *e, rt_tensorset *state,
                 const rt_tensorset *inputs, rt_tensorset *outputs, rt_pool *pool,
                 char *err, size_t errlen);

/* Binds e's buffers by the rules above without running a kernel, for a
 * device that copies them (device.c): returns the host pointer of every
 * buffer (nbuf; temps NULL: no host arena is made), valid until the next
 * call for e; NULL with a message in err as rt_entry_run. Counts a call. */
void *const *rt_entry_bind(const rt_program *p, const rt_entry *e, rt_tensorset *state,
                           const rt_tensorset *inputs, rt_tensorset *outputs, char *err,
                           size_t errlen);

/* Per-kernel wall time, accumulated over every call of the entry when
 * enabled (off by default; the executable's DDPMC_PROFILE=1 turns it on). */
void rt_exec_profile(const rt_entry *e, int on);
/* Seconds spent in kernel k so far (0 when profiling is off). */
double rt_exec_kernel_seconds(const rt_entry *e, int k);
/* For other devices (cl.c): whether the entry is being profiled, and
 * seconds to add to kernel k's time. */
int rt_exec_profiling(const rt_entry *e);
void rt_exec_add_seconds(const rt_entry *e, int k, double seconds);
/* The number of calls since the entry was parsed. */
int64_t rt_exec_calls(const rt_entry *e);

/* A monotonic clock, in seconds: for timings. */
double rt_seconds(void);

/* For program.c: the context of an entry of nbuf buffers. */
struct rt_exec_ctx *rt_exec_ctx_new(int nbuf);
void rt_exec_ctx_free(struct rt_exec_ctx *c);

#endif
