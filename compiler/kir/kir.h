/* kir: the kernel IR, the one form every backend consumes.
 *
 * A kernel program is a list of kernels run in order over a set of
 * buffers. A kernel is a loop nest:
 *
 *   for each point P of the domain (rank vars, extents ext[0..rank-1];
 *                                    points are independent: parallel)
 *     for j = 0 .. nacc-1, in order      (accumulators: one loop each)
 *       acc[j] = identity(red_op[j])
 *       for each point R of the reduction domain (nred vars, inner)
 *         acc[j] = red_op[j](acc[j], red_value[j](P, R))
 *         for each store s with s.inner == j+1: buf[s.index(P, R)] = s.value(P, R)
 *     for each store s with s.inner == 0: buf[s.index(P)] = s.value(P)
 *
 * Values and indices are expressions in one DAG per kernel (operands
 * before users). Vars 0..rank-1 are the domain's, rank..rank+nred-1 the
 * reduction's. KX_ACC (field `acc`) reads accumulator j: after its loop
 * (in the stores with inner == 0) or, final by then, in the loops of the
 * accumulators after it (red_value[k] and stores with inner == k+1 may
 * read acc[j] for j < k only). So one kernel computes, say, a mean and
 * then the variance about it (two passes over R), or a sum and a max.
 * Every accumulator shares the one reduction domain; a backend may run
 * the loops of accumulators that read no other accumulator as one pass
 * (each accumulator still sums in R order). A kernel without
 * reduction has nred = nacc = 0 and no KX_ACC.
 *
 * Inner stores (inner > 0) write once per (P, R): their index is
 * injective over (P, R) and no expression of the kernel loads their
 * buffer, so any split of the rows still writes every element once. This
 * is what puts a loss (a sum) and its gradient (elementwise over the
 * summed elements) in one kernel.
 *
 * Types: KT_IDX (int64 index arithmetic), KT_F32, KT_I32. Loads convert the
 * buffer's storage dtype to the compute type (f16/bf16 -> f32); stores
 * round to the buffer's dtype. All float math is f32 (as the interpreter's
 * contract: results rounded to f32; backends may contract a*b+c to FMA).
 *
 * Index expressions are built from vars, constants, and KX_OP with add,
 * sub, mul, div (truncating), min, max, lt, le, eq, select (on KT_IDX),
 * plus KX_MOD. Loads out of a buffer's bounds never happen: lowering
 * guards padding with select over a clamped index.
 *
 * Nothing here is CPU- or GPU-specific. Backends decide vector widths,
 * tiling, thread or work-item mapping; `tile_hint` only says which domain
 * vars a contraction reuses operands across (a good register tile). The
 * layouts and loop orders the lowering chooses follow the kir_target a
 * backend describes (schedule.c). */
#ifndef DDPMC_KIR_H
#define DDPMC_KIR_H

#include <stdio.h>

#include "ir.h"
#include "json.h"

typedef enum { KT_IDX, KT_F32, KT_I32 } kir_type;

typedef enum {
	KX_CONST,       /* value */
	KX_VAR,         /* var */
	KX_LOAD,        /* buf[a] */
	KX_ACC,         /* accumulator acc (its loop's result) */
	KX_OP,          /* op (an ELEMWISE op of ops.h) over a, b, c */
	KX_MOD,         /* a % b on KT_IDX, both non-negative */
	KX_RANDOM,      /* rng op (rng_uniform / rng_normal): element a of stream
	                   (seed b, step c, stream) — see runtime/philox.h */
} kir_kind;

typedef struct {
	kir_kind kind;
	kir_type type;
	ir_opcode op;           /* KX_OP, KX_RANDOM */
	int a, b, c;            /* operand expression ids (-1: none) */
	double value;           /* KX_CONST */
	int var;                /* KX_VAR */
	int buf;                /* KX_LOAD */
	int stream;             /* KX_RANDOM */
	int acc;                /* KX_ACC: which accumulator, 0 .. nacc-1 */
	rt_dtype round;         /* KX_OP cast to KT_F32: round to this storage
	                           dtype (F16, BF16) as a store and load would;
	                           RT_F32: no rounding */
} kir_expr;

typedef struct {
	int buf;
	int index;              /* KT_IDX expression */
	int value;              /* expression of the buffer's compute type */
	int inner;              /* 0: once per domain point, after the reductions;
	                           j+1: once per (P, R) inside accumulator j's loop */
} kir_store;

enum { KIR_MAXVAR = 12, KIR_MAXACC = 4 };

/* Segments. A kernel with segments (nseg > 0) is one of two kinds, each
 * one kernel over the union of its segments' iteration spaces, and every
 * segment has its own vars (ids from 0, as a kernel's), extents and
 * stores, over the kernel's one expression DAG:
 *
 *   joint reduction (nacc > 0): one point (rank 0); accumulator j runs
 *     through segment 0's reduction domain adding seg[0].red_value[j],
 *     then segment 1's, and so on, in order; the kernel's own stores (all
 *     with inner == 0) run once after. The sum of squares of every
 *     gradient of a model, say: one reduction over many tensors.
 *   batch (nacc == 0): segments of any rank without reductions, each
 *     storing its own stores (st[st0 .. st0+nst)); no segment reads a
 *     buffer another writes. The rows of the kernel are segment 0's, then
 *     segment 1's, ...: every parameter's optimizer update in one kernel.
 *
 * The kernel's own rank/nred/ext describe segment 0 (batch) or the one
 * point and the total reduction length (joint). kir_segment_view gives a
 * segment as a plain kernel (no segments) over the same expressions, so
 * that a consumer can handle it as it handles any kernel. */
typedef struct {
	int rank, nred;
	int64_t ext[KIR_MAXVAR];
	int red_value[KIR_MAXACC];      /* joint: its term of each accumulator */
	int st0, nst;                   /* batch: its stores */
} kir_segment;

/* A kernel's register tile as the schedule fixed it: copies[d] of domain
 * var var[d] (var -1: none) run together. Fixed by the tuner's
 * measurement (KIR_TILE_TUNED, with its GFLOP/s) or by the backend's cost
 * model (KIR_TILE_MODEL); KIR_TILE_OPEN: the backend picks when it
 * generates the kernel, by its cost model. */
typedef enum { KIR_TILE_OPEN, KIR_TILE_MODEL, KIR_TILE_TUNED } kir_tile_source;

typedef struct {
	kir_tile_source source;
	int var[2], copies[2];
	double gflops;          /* KIR_TILE_TUNED: as measured */
} kir_tile;

typedef struct {
	const char *name;       /* for reports and symbols: "k12_conv2d_add_silu" */
	int rank, nred;
	int64_t ext[KIR_MAXVAR];        /* domain extents, then reduction extents */
	int nacc;                       /* accumulators: > 0 exactly when nred > 0 */
	ir_opcode red_op[KIR_MAXACC];   /* OP_add or OP_max */
	int red_value[KIR_MAXACC];      /* expression summed/maxed over R */
	kir_expr *x;
	int nx, xcap;
	struct kir_cse *cse;            /* the builders' index of x (kir.c); NULL: none yet */
	kir_store *st;
	int nst, stcap;
	int tile_hint[KIR_MAXVAR];      /* non-zero: a var operands are reused across */
	kir_tile tile;                  /* the register tile, once the schedule fixed it */
	double flops, bytes;            /* for --report */
	const char *ops;                /* graph ops fused into it, for --report */
	kir_segment *seg;               /* segments (see above), or NULL */
	int nseg;
	int *arg, narg;                 /* the buffers its function gets (kir_share) */
	int fn;                         /* its function among the distinct ones (kir_share) */
} kir_kernel;

/* Buffers. A buffer is a param (state, persistent and updated in place),
 * an entry input or output (provided by the host), or a temporary placed
 * in the arena by the memory plan. */
typedef enum { KB_PARAM, KB_INPUT, KB_OUTPUT, KB_TEMP, KB_CONST } kir_bufkind;

typedef struct {
	kir_bufkind kind;
	rt_dtype dtype;
	int64_t numel;
	const char *name;       /* params, inputs, outputs: the tensor name */
	int64_t offset;         /* KB_TEMP: byte offset in the arena */
	const void *data;       /* KB_CONST: numel values of dtype */
	ir_shape shape;
} kir_buffer;

typedef struct {
	const char *entry;
	kir_kernel *k;
	int nk, kcap;
	kir_buffer *buf;
	int nbuf, bufcap;
	int64_t arena_bytes;    /* peak of the memory plan */
	int64_t rebuilt;        /* graph nodes built again after fusion conflicts */
	ir_graph *g;            /* owns the memory (arena) of everything here */
} kir_program;

/* Expression builders (return the new expression's id). */
int kir_const(kir_kernel *k, kir_type t, double v);
int kir_var(kir_kernel *k, int var);
int kir_load(kir_kernel *k, const kir_program *p, int buf, int index);
int kir_op(kir_kernel *k, kir_type t, ir_opcode op, int a, int b, int c);
int kir_mod(kir_kernel *k, int a, int b);
int kir_cast(kir_kernel *k, kir_type t, int a, rt_dtype round);
int kir_acc(kir_kernel *k, kir_type t, int acc);
/* Appends an accumulator reducing `value` by op; returns its number. */
int kir_acc_add(kir_kernel *k, ir_opcode op, int value);
int kir_random(kir_kernel *k, ir_opcode op, int elem, int seed, int step, int stream);
/* Expression e of another kernel appended to `to`, its operands through
 * map (their ids in `to`), its vars and accumulators shifted. */
int kir_copy_expr(kir_kernel *to, const kir_program *p, const kir_expr *e, const int *map, int var_shift,
                  int acc_shift);
void kir_store_add(kir_kernel *k, int buf, int index, int value);
void kir_store_inner(kir_kernel *k, int acc, int buf, int index, int value);
/* Frees the builders' index of k's expressions (made again when needed):
 * a kernel that is complete, or a copy of one, need not keep it. */
void kir_drop_index(kir_kernel *k);
/* Frees what k owns: expressions, their index, stores, segments, args. */
void kir_kernel_free(kir_kernel *k);

kir_type kir_type_of(rt_dtype dt);

/* The algorithms a 3x3, stride-1 convolution or either of its gradients
 * can run by (lower_winograd.c): directly, or by Winograd's F(2x2, 3x3)
 * or F(4x4, 3x3). */
typedef enum { KIR_ALGO_DIRECT, KIR_ALGO_WINOGRAD2X2, KIR_ALGO_WINOGRAD4X4, KIR_ALGOS } kir_algorithm;

/* How they are chosen (schedule_winograd): each as the tuner measured it
 * (kir_target.measured), else as the cost model says (CHOSEN, the
 * default); or every one by the same algorithm (`compile --winograd
 * none|2x2|4x4`). */
typedef enum { KIR_WINOGRAD_CHOSEN, KIR_WINOGRAD_NONE, KIR_WINOGRAD_2X2, KIR_WINOGRAD_4X4 } kir_winograd;

typedef struct kir_tuning kir_tuning;

/* The machine a program is lowered for, as the lowering's schedule step
 * (schedule.c) reads it. A backend describes its targets
 * (llvm_kir_target, cl_kir_target): facts about the machine, then the
 * thresholds of the decisions the lowering makes, measured on that kind
 * of machine; the lowering itself assumes no machine. A fact of 0 is not
 * known (a CPU named by --cpu rather than this host: its caches). */
typedef struct {
	char name[64];                  /* for --report: "cpu x86-64-v3", "opencl" */
	int lanes;                      /* f32 lanes of a vector (1: left to the device compiler) */
	int vector_registers;           /* architectural vector registers (0 on OpenCL) */
	int cores;                      /* CPU cores, or OpenCL compute units */
	int64_t l1_bytes, l2_bytes;     /* data cache per core */
	int64_t local_bytes;            /* OpenCL local memory per work-group (0 on a CPU) */
	int max_group;                  /* OpenCL work-items per work-group (0 on a CPU) */
	/* The decisions' thresholds (schedule.c says what each decides). */
	int channels_last_min;          /* output channels from which a convolution runs channels-last */
	int channels_last_step;         /* ... when their count is a multiple of this */
	int64_t partials_max_bytes;     /* a weight gradient's partial sums take at most this */
	int winograd_min_channels;      /* the cost model's Winograd: from these input and output
	                                   channels (0: never) */
	kir_winograd winograd;          /* which 3x3 stride-1 convolutions run by Winograd */
	const kir_tuning *measured;     /* KIR_WINOGRAD_CHOSEN: the tuner's choices, or NULL */
	int max_args;                   /* buffers a kernel may take (split_args.c; 0: any number) */
} kir_target;

/* One line: the target's name, facts and thresholds (--report). */
void kir_target_report(const kir_target *t, FILE *f);

/* Lowers entry e of g to kernels for target t: fusion, the schedule's
 * layouts and loop orders, then the memory plan.
 * requires: a verified graph. establishes: kernels in dependency order,
 * every buffer written before it is read, temporaries placed so that no two
 * live at once overlap. Returns NULL with g->err set on failure. */
kir_program *kir_lower(ir_graph *g, const ir_entry *e, const kir_target *t);

/* Marks a temporary no kernel uses any more: no elements, no arena space,
 * described as empty. */
void kir_buffer_unused(kir_buffer *b);

/* Frees what a program holds outside its graph's arena (kernels, buffers);
 * the program itself goes with the graph. */
void kir_program_free(kir_program *p);

/* How many distinct buffers k reads or writes (of p's nbuf), through the
 * expressions a store or a term uses: a store dropped as dead may leave
 * loads behind. */
int kir_buffer_count(const kir_kernel *k, int nbuf);

/* Horizontal fusion (merge.c): adjacent kernels over one domain become
 * one kernel with several stores; with max_args > 0, none that
 * kir_split_args could not bring within max_args buffers a kernel. */
void kir_merge(kir_program *p, int max_args);
/* Batches and joint reductions of more than max_args buffers split
 * (split_args.c; max_args 0: none), after kir_merge, before the plan. */
void kir_split_args(kir_program *p, int max_args);
/* Whether k takes at most max_args buffers, or kir_split_args would part
 * it into kernels that each do. */
int kir_split_fits(const kir_program *p, const kir_kernel *k, int max_args);
/* The buffers of the last kernel kir_split_args parts joint reduction k
 * into (joint_total): those its own stores touch, and the temporary of
 * its chunks' totals. */
int kir_joint_last_buffers(const kir_kernel *k, int nbuf);

/* The memory plan (plan.c): arena offsets for temporaries by liveness. */
void kir_plan_memory(kir_program *p);

/* Checks the kernel IR's invariants (types, operand order, vars in range,
 * buffers exist); 0 or -1 with a message in err. */
int kir_verify(const kir_program *p, char *err, size_t errlen);

void kir_dump(const kir_program *p, FILE *f);
void kir_report(const kir_program *p, FILE *f);

/* The kernel ABI (share.c): a kernel's function is called as
 *   fn(void **args, int64_t row_begin, int64_t row_end)
 * with args[j] the data of buffer k->arg[j]. kir_share sets arg, narg and
 * fn for every kernel of progs[0..n): kernels equal but for the buffers
 * they touch get one fn. Returns the number of distinct functions. */
int kir_share(kir_program **progs, int n);

/* Sets k->arg, k->narg: the buffers k touches, in the order of first use
 * (loads in expression order, then stores), as kir_share does; and the
 * argument number of buffer buf in them (-1: not one of them). */
void kir_set_args(kir_kernel *k);
int kir_arg_of(const kir_kernel *k, int buf);

/* A kernel's signature: a hash of what kir_share compares but its tile
 * (so the same for every schedule of one computation), for a tuning
 * file's keys. Sets k's arguments as kir_share does. */
uint64_t kir_kernel_signature(const kir_program *p, kir_kernel *k);

/* Convolutions Winograd F(2x2, 3x3) and F(4x4, 3x3) apply to
 * (lower_winograd.c): node n of g is a 3x3, stride-1, padding-1 conv2d,
 * conv2d_grad_input or conv2d_grad_weight whose image keeps its size. */
int kir_winograd_candidate(const ir_graph *g, const ir_node *n);
/* A convolution's signature (share.c): a hash of its op, dtypes, shapes
 * and attributes, the same for every graph it appears in. */
uint64_t kir_conv_signature(const ir_graph *g, const ir_node *n);
/* A graph of node n of g alone, for timing it (the tuner): inputs of its
 * operands' dtypes and shapes, n on them, the output of entry "conv". */
ir_graph *kir_conv_alone(const ir_graph *g, const ir_node *n);

/* Tuning results (tuning.c), like FFTW's wisdom: the register tile the
 * tuner measured fastest for a kernel signature on a machine, and the
 * algorithm it measured fastest for a convolution (kir_conv_signature).
 * The file is text, one result a line after the header line
 * "ddpmc-tuning 1":
 *   MACHINE <tab> SIGNATURE (16 hex digits) <tab> VAR0 COPIES0 VAR1 COPIES1 <tab> GFLOPS
 *   MACHINE <tab> SIGNATURE <tab> direct|winograd|winograd4x4 <tab> GFLOPS
 * ("winograd" is F(2x2, 3x3), the first Winograd the tuner timed).
 * MACHINE names the host CPU and the code's CPU (a backend's key): the
 * results of other machines are kept, never used. */

/* Reads path for machine: a missing file is an empty set. A file that is
 * not a tuning file, or has a malformed line, is refused whole: NULL with
 * "PATH:LINE: what is wrong" in err. */
kir_tuning *kir_tuning_load(const char *path, const char *machine, char *err, size_t errlen);
/* An empty set for machine. */
kir_tuning *kir_tuning_new(const char *machine);
/* This machine's result for signature sig into *t (source KIR_TILE_TUNED):
 * 1, or 0 when there is none. */
int kir_tuning_find(const kir_tuning *db, uint64_t sig, kir_tile *t);
/* Records (replaces) this machine's result for sig. */
void kir_tuning_put(kir_tuning *db, uint64_t sig, const kir_tile *t);
/* The same for the algorithm of the convolution of signature sig, its
 * effective GFLOP/s (the direct convolution's FLOPs over its time). */
int kir_tuning_find_algorithm(const kir_tuning *db, uint64_t sig, kir_algorithm *a);
void kir_tuning_put_algorithm(kir_tuning *db, uint64_t sig, kir_algorithm a, double gflops);
/* Writes every result, each machine's, to path atomically (a temporary
 * file renamed over it): 0, or -1 with a message in err. */
int kir_tuning_save(const kir_tuning *db, const char *path, char *err, size_t errlen);
void kir_tuning_free(kir_tuning *db);

/* The rows of a kernel: the product of its domain extents but the last
 * (1 for rank <= 1); of a batch, the sum of its segments'. Backends run a
 * row range per call (the kernel ABI). */
int64_t kir_rows(const kir_kernel *k);

/* Segment s of k as a kernel without segments: its rank, extents, stores
 * (a batch's) and accumulator terms (a joint reduction's, with no stores),
 * k's expressions. Shares k's arrays: valid while k is unchanged. */
kir_kernel kir_segment_view(const kir_kernel *k, int s);
/* A kernel without segments that runs nothing: an extent of 0. */
int kir_is_empty(const kir_kernel *k);

/* Every index expression of k with the vars at `vars` into val[0..nx), as
 * kir_eval computes them; KIR_UNKNOWN where a value depends on a load (or
 * on nothing an index can hold). For analyses: strides, say. */
#define KIR_UNKNOWN INT64_MIN
void kir_index_values(const kir_kernel *k, const int64_t *vars, int64_t *val);
int kir_is_batch(const kir_kernel *k);

/* Whether every index expression (KT_IDX) that kernel k evaluates, but
 * a random draw's element (kir_mark_elements), stays within [lo, hi] at
 * every point of its domain (of each segment's, for a kernel with
 * segments), by interval arithmetic (range.c): an index loaded, converted
 * from f32 or accumulated counts as unbounded. 1 is a proof; 0 may be
 * caution. For backends that would index in fewer bits where that
 * computes the same. */
int kir_index_within(const kir_kernel *k, int64_t lo, int64_t hi);
/* Marks in wide[] (k->nx entries) the index expressions k uses only for
 * a random draw's element (KX_RANDOM's a), directly or through other
 * such expressions: `shard * numel + i` of a data-parallel step, beyond
 * int's range. Backends compute them in 64 bits whatever else they
 * index in, so kir_index_within does not bound them. Never an
 * accumulator. */
void kir_mark_elements(const kir_kernel *k, char *wide);

/* Visits expression i and every expression it depends on that `done`
 * does not report, operands before users, each once (visit must make done
 * report it). With an explicit stack: a chain of fused ops may be many
 * thousands deep. For backends that emit expressions on demand. */
typedef int (*kir_done_fn)(void *ctx, int i);
typedef void (*kir_visit_fn)(void *ctx, int i);
void kir_walk(const kir_kernel *k, int i, kir_done_fn done, kir_visit_fn visit, void *ctx);
/* used[i] = 1 for every expression the kernel's stores and accumulators
 * read (used: k->nx zeroed bytes). A segment view (kir_segment_view)
 * shares the whole batch's expressions, most of them its siblings'. */
void kir_mark_used(const kir_kernel *k, char *used);
/* Marks in used[] every operand, direct or not, of the expressions
 * already marked. */
void kir_mark_operands(const kir_kernel *k, char *used);
int kir_is_joint(const kir_kernel *k);

/* The descriptor compiled executables embed (describe.c): JSON text and
 * the constant data blob, for entries progs[0..n) of g. Backends add to
 * it through the options (NULL: CPU kernels only, nothing added). */
typedef struct {
	int no_cpu;             /* no CPU functions: every kernel's "fn" is -1 */
	/* appends more members to kernel k of entry e's object ("cl": {...}) */
	void (*kernel_members)(rt_strbuf *b, int e, int k, void *ctx);
	void *ctx;
} kir_describe_opts;

void kir_describe(const ir_graph *g, const char *model, kir_program **progs, int n,
                  const kir_describe_opts *opts, rt_strbuf *json, rt_strbuf *data);
/* g's metadata as the descriptor's "meta" object: {"key": value, ...}. */
void kir_describe_meta(rt_strbuf *b, const ir_graph *g);

/* Binding to host memory (host.c): bufs[i] for every buffer of p — params
 * and inputs point into their tensor sets, outputs are added to `outs`,
 * temporaries live in *arena (p->arena_bytes, caller frees), constants in
 * the graph. NULL with a message when a tensor is missing or mismatched.
 * kir_convert_inputs copies `in` into `out` in the dtypes g's inputs
 * declare (-1 with a message on a size mismatch). */
void **kir_bind_host(const kir_program *p, rt_tensorset *state, const rt_tensorset *inputs,
                     rt_tensorset *outs, char **arena, char *err, size_t errlen);
int kir_convert_inputs(const ir_graph *g, const rt_tensorset *in, rt_tensorset *out,
                       char *err, size_t errlen);

/* Runs a kernel program on host buffers (bufs[i] points at buffer i's
 * data; temporaries inside `arena`). Plain C, for testing lowering
 * separately from code generation. */
void kir_eval(const kir_program *p, void **bufs);

#endif
