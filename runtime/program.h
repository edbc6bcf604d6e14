/* program: the description of a compiled model that every generated
 * executable embeds, parsed into the structures the executor runs.
 *
 * THE CONTRACT with the compiler (the generated object defines):
 *   void (*const ddpmc_kernels[])(void **args, int64_t row_begin, int64_t row_end);
 *   const char ddpmc_program_json[];          const int64_t ddpmc_program_json_len;
 *   const unsigned char ddpmc_program_data[]; const int64_t ddpmc_program_data_len;
 * A kernel processes rows [row_begin, row_end) of its domain and is a pure
 * function of that range: rows may run on different threads in any split.
 * A kernel's function gets its own buffers: args[j] is the data of the
 * entry's buffer "args"[j] (kernels that differ only in their buffers
 * share one function, compiler/kir/share.c).
 * It also defines (empty, length 0, when compiled for the CPU only):
 *   const char ddpmc_opencl_source[];         const int64_t ddpmc_opencl_source_len;
 * the OpenCL C of every kernel (compiler/codegen/opencl). Compiled for
 * OpenCL only, ddpmc_kernels is empty and every kernel's "fn" is -1.
 * Compiled for both, each target's kernels are lowered for it (the GPU's
 * tiles and layouts are not the CPU's): the program above is the CPU's,
 * without "cl", and the OpenCL device runs a second one, the same
 * entries in the same order with every "fn" -1 and their "cl" launches
 * (rt_program.opencl; empty, length 0, otherwise):
 *   const char ddpmc_opencl_json[];           const int64_t ddpmc_opencl_json_len;
 *   const unsigned char ddpmc_opencl_data[];  const int64_t ddpmc_opencl_data_len;
 *
 * The JSON:
 *   {"model": "models/unet.lua",
 *    "meta": {"image": [C, H, W], "batch": B, "timesteps": T, ...},
 *    "params": [{"name", "dtype", "shape", "trainable", "init", "a", "b",
 *                "from" (a param name or null), "index"}, ...]   graph order
 *    "entries": [{"name", "arena_bytes",
 *       "buffers": [{"kind": "param"|"input"|"output"|"temp"|"const",
 *                    "name", "dtype", "shape", "offset"}, ...],
 *       "kernels": [{"fn", "args": [i, ...], "rows", "name", "flops",
 *                    "cl": {"name", "part", "args": [i, ...], "global": G, "local": L,
 *                           "alts": [{"name", "part", "global": G, "local": L}, ...]}},
 *                   ...]}, ...]}
 * temp offsets are bytes into the entry's arena, const offsets bytes into
 * the program data. Keys other than these are ignored (kept in .json).
 *
 * "cl" (present when the program has OpenCL code) launches OpenCL kernel
 * "name" of ddpmc_opencl_source built with -D DDPMC_PART_<part> (one
 * program per part, 0 <= part < RT_CL_MAX_PARTS; the parts a program's
 * launches name are built at once, each on a core of its own), over a
 * 1-D NDRange of G work-items in work-groups of L (G a multiple of L).
 * Its arguments: first the entry's arena (__global uchar *, at least 64
 * bytes even when arena_bytes is 0; temps live at their offsets inside
 * it), then the buffers "args" names by index, in order: a temp as its
 * offset (long, bytes into the arena), any other as a __global pointer
 * to its dtype's storage (f32 float, i32 int, f16 half, bf16 ushort);
 * a launch with "scratch": S (bytes, optional) takes one more, last: a
 * `__global uint *` to S bytes of the device's own memory, zero when the
 * device opens and left zero by every launch that used it (a reduction
 * split over work-groups keeps its partial sums and a counter there).
 * Kernels that differ only in their buffers are one OpenCL kernel,
 * launched with different arguments. "alts" (optional) are other
 * launches that compute the same with the same arguments (another kernel
 * of the source, or the same one in other work-groups): `tune` times them
 * on the device and the runtime launches the one it chose (runtime/cl.c). */
#ifndef DDPMC_RUNTIME_PROGRAM_H
#define DDPMC_RUNTIME_PROGRAM_H

#include <stddef.h>
#include <stdint.h>

#include "json.h"
#include "state.h"
#include "tensor.h"

typedef void (*rt_kernel_fn)(void **args, int64_t row_begin, int64_t row_end);

typedef enum { RT_BUF_PARAM, RT_BUF_INPUT, RT_BUF_OUTPUT, RT_BUF_TEMP, RT_BUF_CONST } rt_bufkind;

typedef struct {
	rt_bufkind kind;
	const char *name;       /* param, input, output: the tensor's name; else "" */
	rt_dtype dtype;
	int rank;
	int64_t shape[RT_MAXDIM];
	int64_t numel, bytes;
	int64_t offset;         /* temp: into the arena; const: into the data */
} rt_buffer;

enum { RT_CL_MAX_PARTS = 4096, RT_CL_MAX_VARIANTS = 16, RT_CL_MAX_SCRATCH = 1 << 24 };

typedef struct {
	const char *name;       /* the OpenCL kernel's name */
	int part;               /* the program part that defines it */
	int64_t global, local;
	int64_t scratch;        /* bytes of the device's scratch it takes last (0: none) */
} rt_cl_variant;

typedef struct {
	rt_cl_variant *v;       /* v[0]: the compiler's choice; v[1..nv): "alts"; NULL: no OpenCL code */
	int nv;
	int *args;              /* buffer indices after the arena, the same for every variant */
	int nargs;
} rt_cl_launch;

typedef struct {
	rt_kernel_fn fn;        /* NULL when compiled for OpenCL only */
	int64_t fn_index;       /* -1 when compiled for OpenCL only */
	int *args;              /* the buffers fn gets, in order */
	int nargs;
	int64_t rows;
	const char *name;
	double flops;
	rt_cl_launch cl;
} rt_kernel;

struct rt_exec_ctx;             /* exec.c: the entry's arena and bindings */

typedef struct {
	const char *name;
	int64_t arena_bytes;
	rt_buffer *buf;
	int nbuf;
	rt_kernel *k;
	int nk;
	double flops;           /* sum over kernels */
	struct rt_exec_ctx *ctx;        /* mutable through a const entry */
} rt_entry;

typedef struct {
	const char *name;
	rt_dtype dtype;
	int rank;
	int64_t shape[RT_MAXDIM];
	int64_t numel;
	int trainable;
	rt_init init;
	int from;               /* copy: index of the source in params; else -1 */
	int64_t index;          /* Philox stream of its initialiser */
} rt_param;

struct rt_program {
	rt_json json;           /* the parsed document; every string points into it */
	const char *model;
	const rt_json *meta;    /* the "meta" object (never NULL: empty object) */
	int64_t image[3];       /* meta.image C, H, W; 0 when absent */
	int64_t batch, timesteps;       /* meta.batch, meta.timesteps; 0 when absent */
	rt_param *params;
	int nparams;
	rt_entry *entries;
	int nentries;
	const unsigned char *data;
	int64_t data_len;
	const char *cl_source;  /* ddpmc_opencl_source; NULL or "" for the CPU only */
	int64_t cl_source_len;
	const rt_program *opencl;       /* the program an OpenCL device runs, lowered for a
	                                   GPU (ddpmc_opencl_json); NULL: this one */
};

/* Parses json[0..len) into *p. Kernel indices are resolved against
 * kernels[0..nkernels) (nkernels < 0: the table's length is unknown, only
 * NULL pointers are rejected); kernels may be NULL when no entry has a
 * kernel. Checks that every name, dtype, shape and offset is well formed:
 * temps inside the arena, consts inside data, copy sources earlier params
 * of the same dtype and shape. Returns RT_OK, or RT_ERR with a message
 * "program: entries[1].buffers[4]: ..." in err and *p cleared. */
int rt_program_parse(const char *json, size_t len, const unsigned char *data,
                     int64_t data_len, rt_kernel_fn const *kernels, int64_t nkernels,
                     rt_program *p, char *err, size_t errlen);
void rt_program_free(rt_program *p);

const rt_entry *rt_program_entry(const rt_program *p, const char *name);
const rt_param *rt_program_param(const rt_program *p, const char *name);
/* The buffer of kind `kind` named `name` in e, or NULL. */
const rt_buffer *rt_entry_buffer(const rt_entry *e, rt_bufkind kind, const char *name);
const char *rt_bufkind_name(rt_bufkind k);

#endif
