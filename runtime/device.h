/* device: where the kernels of an entry run — the CPU (the generated
 * functions of ddpmc_kernels on the thread pool, exec.c) or an OpenCL
 * device (the generated OpenCL C of ddpmc_opencl_source, cl.c). The
 * commands (train, sample) run entries only through this interface.
 *
 * Device specs (the --device flag):
 *   "cpu", "cpu:0"      the CPU; threads as given (0: one per core)
 *   "opencl"            the first GPU of any platform, else the first device
 *   "opencl:N"          the N-th (counting from 0, modulo their number) of
 *                       the devices "opencl" chooses from: the GPUs of every
 *                       platform, else every device (MPI rank r takes
 *                       "opencl:r")
 *   "opencl:P.D"        device D of platform P (as `--device list` numbers them)
 *
 * State coherence. An OpenCL device keeps its own copy of every state
 * tensor an entry binds as a param, keyed by the host tensor's data
 * pointer: uploaded the first time it is seen (or after
 * rt_device_invalidate), updated in place on the device by every run, and
 * copied back into the host tensor only by rt_device_sync. So: call
 * rt_device_sync before reading or saving state on the host; call
 * rt_device_invalidate after writing state on the host (loading weights).
 * Inputs are uploaded and outputs downloaded on every run. On the CPU the
 * host tensors are the state: sync and invalidate do nothing.
 *
 * Queued runs. rt_device_submit queues a run and returns: on OpenCL its
 * kernels are enqueued behind the runs before it and nothing waits for
 * them (the inputs are copied, so the host may change them at once);
 * `outputs` receives the run's values by the next rt_device_wait and must
 * stay untouched until then (a queue of runs takes one outputs set each).
 * The CPU runs it at once. rt_device_sync waits for every queued run. */
#ifndef DDPMC_RUNTIME_DEVICE_H
#define DDPMC_RUNTIME_DEVICE_H

#include <stddef.h>
#include <stdio.h>

#include "pool.h"
#include "program.h"
#include "tensor.h"

typedef struct rt_device rt_device;

/* Opens the device `spec` for program p (threads: the CPU pool's size,
 * 0 = one per core). An OpenCL device runs p->opencl where p has one (the
 * same entries lowered for a GPU): the entries given to rt_device_run and
 * rt_device_submit are still p's. OpenCL: picks the device, builds the program once
 * (from the on-disk cache when the same source was built for the same
 * device and driver before), creates the kernels of every entry (an
 * entry's buffers are made on its first run). NULL
 * with a one-line message in err: unknown spec, no OpenCL platform or
 * device ("no OpenCL platform found (is an ICD installed? see
 * /etc/OpenCL/vendors)"), a program without OpenCL code ("compiled for
 * the CPU only: recompile with --target all"), or a build failure (the
 * message names the device; the build log goes to stderr). */
rt_device *rt_device_open(const rt_program *p, const char *spec, int threads, char *err,
                          size_t errlen);
void rt_device_free(rt_device *d);

/* Runs entry e as rt_entry_run does (exec.h: binding rules, errors):
 * rt_device_submit, then rt_device_wait. */
int rt_device_run(rt_device *d, const rt_entry *e, rt_tensorset *state, const rt_tensorset *inputs,
                  rt_tensorset *outputs, char *err, size_t errlen);
/* Queues a run of entry e (above: "Queued runs"); an error here or at the
 * wait may belong to any queued run. */
int rt_device_submit(rt_device *d, const rt_entry *e, rt_tensorset *state,
                     const rt_tensorset *inputs, rt_tensorset *outputs, char *err, size_t errlen);
/* Waits until every queued run is done and its outputs are in place. */
int rt_device_wait(rt_device *d, char *err, size_t errlen);
/* 1 when submitted runs may still be running after rt_device_submit
 * returns (OpenCL), 0 when it completes them (the CPU). */
int rt_device_queues(const rt_device *d);

/* Copies the device's state tensors that belong to `state` back into it. */
int rt_device_sync(rt_device *d, rt_tensorset *state, char *err, size_t errlen);
/* The host changed `state`: the next run uploads its tensors again. */
void rt_device_invalidate(rt_device *d, rt_tensorset *state);

/* Tuning (OpenCL): runs each entry that has kernels with variants
 * (program.h, "alts") once from `state` and zero inputs, times every
 * variant of those kernels on the device, launches the fastest from then
 * on and keeps the choice in the cache folder beside the program binaries
 * (a file per source, device, driver and platform, read at every open).
 * Kernels the file has already are not timed again; none is started
 * after `seconds` (< 0: no limit), and those left are timed by the next
 * tune. A line per entry goes to log. The CPU has none: RT_ERR with a
 * message (its kernels are tuned by ddpmc compile --tune). */
int rt_device_tune(rt_device *d, rt_tensorset *state, double seconds, FILE *log, char *err, size_t errlen);

/* "cpu (8 threads)" or "OpenCL 0.1: NVIDIA H200 (NVIDIA CUDA)" (the
 * device's name, then its platform's). */
const char *rt_device_name(const rt_device *d);
/* The CPU pool (NULL on OpenCL). Kernel times (exec.h's profile) are
 * kept on both devices: wall time per kernel on the CPU, the device's
 * event times on OpenCL. */
rt_pool *rt_device_pool(rt_device *d);
/* Entry e of the program d was opened for as d runs it: the entry in its
 * place of p->opencl on an OpenCL device where p has one, else e. Its
 * kernels are the ones d launches, and exec.h's profile is kept on it. */
const rt_entry *rt_device_entry(const rt_device *d, const rt_entry *e);

/* `--device list`: every OpenCL platform and device, numbered P.D, and
 * the CPU; RT_OK even when there is no OpenCL platform (it says so). */
int rt_device_list(FILE *f);

#endif
