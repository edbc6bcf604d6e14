/* cl_render: the OpenCL C renderer of the kernel IR (compiler/kir/kir.h),
 * the GPU counterpart of codegen/llvm. It reads the same kernels and
 * decides the GPU-specific things itself: work-items and work-groups,
 * work-group cooperation for long reductions, local-memory tiles for
 * contractions, the index type (int or long, per kernel).
 *
 * THE CONTRACT (runtime/program.h, "cl"): each kernel becomes one
 * OpenCL C 1.2 kernel per variant (cl_launch), inside
 * `#ifdef DDPMC_PART_<p>` for the part p its launch names (the runtime builds one program per part, all at once; a
 * part holds consecutive kernels, about part_bytes of source), over a
 * 1-D NDRange of `global` work-items in groups of `local`; argument 0 is
 * the entry's arena (`__global uchar *`, temps at their plan offsets),
 * then the buffers `args` names, in order: a temp as its offset (`long`),
 * any other as a pointer. Kernels whose launches render the same (they
 * differ only in their buffers: a layer shape again, the forward pass in
 * every entry) share one OpenCL kernel, written once, named after the
 * first of them.
 * Numbers follow the interpreter's contract as the LLVM backend does: f32
 * math (contraction to FMA allowed), storage rounding as rt_store, the
 * Philox stream of runtime/philox.h (Box-Muller in double where the device
 * has cl_khr_fp64). No half arithmetic: f16 storage is native `half`
 * where the device has cl_khr_fp16, else vload_half / vstore_half_rte, so
 * the source builds on every OpenCL 1.2 device. */
#ifndef DDPMC_CL_RENDER_H
#define DDPMC_CL_RENDER_H

#include "json.h"
#include "kir.h"

/* One way to launch a kernel: the OpenCL kernel that computes it and its
 * NDRange. */
typedef struct {
	char name[80];          /* the OpenCL kernel's name, unique in the source */
	int part;               /* the program part it is built in */
	int64_t global, local;
	int64_t scratch;        /* bytes of the device's scratch it takes last (program.h); 0: none */
} cl_variant;

enum { CL_MAX_VARIANTS = 13 };

/* A kernel's launch: v[0] the renderer's choice, in the parts every open
 * builds; v[1..nv) the alternatives `tune` times on the device (a tiled
 * contraction staged without prefetch, read as vectors, in other
 * micro-tiles: in parts after all of v[0]'s, so that only tuning builds
 * them; a reduction's other work-groups; a long elementwise kernel's
 * other work-group sizes, the same OpenCL kernel). Every variant computes
 * the same numbers, in the same order but for reductions in work-groups
 * (whose order follows their size and count). */
typedef struct {
	cl_variant v[CL_MAX_VARIANTS];
	int nv;
	int *args;              /* buffer indices after the arena (kir_set_args's order) */
	int nargs;
} cl_launch;

/* What the renderer assumes of the GPU the source is for (it is built
 * ahead of time, without the device): how many work-groups fill it. A
 * contraction is tiled when it has a 16 x 16 tile per compute unit, and
 * its tiles shrink until it has groups_per_unit per unit; a weight
 * gradient's partial sums (the lowering splits its reduction into image
 * blocks) count every block's tiles. A program part closes once it has
 * part_bytes of source: the parts build in parallel on the host's cores
 * (an OpenCL compiler takes minutes over a whole train step). */
typedef struct {
	int compute_units;      /* streaming multiprocessors, compute units */
	int groups_per_unit;    /* work-groups wanted per unit */
	int64_t local_bytes;    /* local memory per work-group (CL_DEVICE_LOCAL_MEM_SIZE) */
	int max_group;          /* work-items per work-group (CL_DEVICE_MAX_WORK_GROUP_SIZE) */
	int64_t part_bytes;     /* source bytes per program part, at least */
} cl_target;

extern const cl_target cl_target_default;      /* NVIDIA H200 */

/* The kernel IR's description of GPU t (kir.h), what the lowering's
 * schedule decides for when the program is lowered for OpenCL alone. */
void cl_kir_target(const cl_target *t, kir_target *kt);

/* Appends the OpenCL C of every kernel of progs[0..n) to src (one prelude
 * first) for target t (NULL: cl_target_default) and returns launches[e][k]
 * for kernel k of entry e (free with cl_launches_free), or NULL when out
 * of memory. */
cl_launch **cl_render(kir_program **progs, int n, const cl_target *t, rt_strbuf *src);
void cl_launches_free(cl_launch **l, kir_program **progs, int n);

/* The "cl" member of a kernel's descriptor entry (runtime/program.h):
 * v[0] and, as "alts", the others. */
void cl_launch_json(rt_strbuf *b, const cl_launch *l);

#endif
