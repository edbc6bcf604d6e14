/* ir: the graph IR, the compiler's central data structure.
 *
 * A graph is one pool of nodes shared by all entries of a program. Nodes
 * are created in topological order (a node's inputs always have smaller
 * ids) and never change once built. Every node has a dtype, a static shape
 * and the Lua file:line that built it. Parameters and inputs are named leaf
 * nodes. An entry (forward, train_step, ...) names some nodes as its outputs
 * and, for state, pairs a param with the node holding its next value; the
 * entry's subgraph is everything reachable from those.
 *
 * Builders (ir_add and the leaf constructors) check shapes and dtypes with
 * the op's shape rule and return -1 with a message in g->err of the form
 * "file:line: op: what is wrong (shapes)" when they do not hold.
 *
 * Dimension legend used in comments: N batch, C channels, H/W height/width,
 * O output channels, T timesteps. */
#ifndef DDPMC_IR_H
#define DDPMC_IR_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

#include "tensor.h"

#define IR_MAXDIM 6

typedef enum {
#define OP(name, arity, flags, meaning) OP_##name,
#include "ops.h"
#undef OP
} ir_opcode;

/* The number of ops: not an enumerator, so that a switch over ops needs
 * no case for it. */
enum {
	OP_COUNT = 0
#define OP(name, arity, flags, meaning) + 1
#include "ops.h"
#undef OP
};

enum {
	LEAF = 1 << 0, ELEMWISE = 1 << 1, REDUCE = 1 << 2, MOVE = 1 << 3,
	CONTRACT = 1 << 4, INDEX = 1 << 5, COMMUT = 1 << 6, RANDOM = 1 << 7,
	TRANSC = 1 << 8
};

/* The case labels of every op of one kind, for switches that treat a kind
 * alike; test_ops checks each list against the flags of ops.h. A new op
 * joins its kind's list here (every switch without its case says so). */
#define IR_CASES_LEAF case OP_input: case OP_param: case OP_fill: case OP_constant
#define IR_CASES_TRANSC case OP_exp: case OP_log: case OP_sqrt: case OP_rsqrt: case OP_sin: \
	case OP_cos: case OP_tanh: case OP_sigmoid
#define IR_CASES_ELEMWISE case OP_neg: IR_CASES_TRANSC: case OP_abs: case OP_cast: case OP_add: \
	case OP_sub: case OP_mul: case OP_div: case OP_max: case OP_min: case OP_lt: case OP_le: \
	case OP_eq: case OP_select
#define IR_CASES_REDUCE case OP_reduce_sum: case OP_reduce_max
#define IR_CASES_MOVE case OP_reshape: case OP_permute: case OP_broadcast: case OP_slice: \
	case OP_concat: case OP_pad: case OP_upsample2d
#define IR_CASES_CONTRACT case OP_matmul: case OP_conv2d: case OP_conv2d_grad_input: \
	case OP_conv2d_grad_weight
#define IR_CASES_INDEX case OP_gather: case OP_scatter_add
#define IR_CASES_RANDOM case OP_rng_uniform: case OP_rng_normal
#define IR_CASES_NOT_ELEMWISE IR_CASES_LEAF: IR_CASES_REDUCE: IR_CASES_MOVE: IR_CASES_CONTRACT: \
	IR_CASES_INDEX: IR_CASES_RANDOM

/* An op a consumer has no case for (it cannot meet it, or the value is no
 * op): stops with "ddpmc: internal error: file:line: no case for op NAME". */
#define IR_NO_CASE(op) ir_no_case((op), __FILE__, __LINE__)
_Noreturn void ir_no_case(ir_opcode op, const char *file, int line);

/* The scalar meaning of elementwise op `op` (operands a, b, c as ops.h
 * names them; unused ones ignored), in double: the one definition the
 * interpreter, kir_eval and lowering's constant folding share. Comparisons
 * give 0 or 1; max and min propagate NaN; cast is the identity (callers
 * round to the target dtype). */
double ir_scalar(ir_opcode op, double a, double b, double c);

typedef struct {
	const char *name;
	int arity;              /* -1: variadic */
	unsigned flags;
	const char *meaning;
} ir_opinfo;

extern const ir_opinfo ir_ops[OP_COUNT];

typedef struct {
	int rank;
	int64_t d[IR_MAXDIM];
} ir_shape;

/* How a parameter is initialised (torch.nn's defaults are expressed here). */
typedef enum { INIT_ZEROS, INIT_ONES, INIT_UNIFORM, INIT_NORMAL, INIT_COPY } ir_initkind;

typedef struct {
	ir_initkind kind;
	double a, b;            /* uniform: (a, b]; normal: mean a, std b */
	int from;               /* copy: the param node whose initial value it takes */
} ir_init;

/* Per-op attributes; which member is meaningful depends on the op. */
typedef union {
	struct { int index; ir_init init; int trainable; } param;
	struct { double value; } fill;
	struct { unsigned axes; } reduce;                  /* bit k: reduce dim k */
	struct { int perm[IR_MAXDIM]; } permute;
	struct { int64_t start[IR_MAXDIM], step[IR_MAXDIM]; } slice;
	struct { int axis; } concat;
	struct { int64_t lo[IR_MAXDIM], hi[IR_MAXDIM]; double value; } pad;
	struct { int scale; } upsample;
	struct { int stride[2]; int pad[4]; } conv;        /* pad: top bottom left right */
	struct { int stream; } rng;
} ir_attrs;

typedef struct {
	ir_opcode op;
	rt_dtype dtype;
	ir_shape shape;
	int nin;
	int *in;                /* producers, all with smaller ids */
	ir_attrs a;
	const char *where;      /* "models/unet.lua:42" */
	const char *name;       /* input, param: its name; else NULL */
	void *data;             /* constant: numel values stored in dtype */
} ir_node;

typedef struct {
	const char *name;
	int node;
} ir_binding;

typedef struct {
	const char *name;
	ir_binding *outputs;    /* sorted by name */
	int noutputs;
	ir_binding *updates;    /* name: the param to overwrite; node: its new value */
	int nupdates;
} ir_entry;

typedef struct ir_chunk ir_chunk;

/* One item of program metadata (ddpm.meta): one JSON value, checked. */
typedef struct {
	const char *key, *json;
	const char *where;      /* file:line that set it */
} ir_meta;

typedef struct {
	ir_node *nodes;
	int n, cap;
	int *params;            /* node ids of params, in creation order */
	int nparams, paramcap;
	ir_entry *entries;
	int nentries, entrycap;
	ir_meta *meta;
	int nmeta, metacap;
	ir_chunk *arena;        /* everything the graph allocates, freed at once */
	char err[512];
} ir_graph;

ir_graph *ir_new(void);
void ir_free(ir_graph *g);
void *ir_alloc(ir_graph *g, size_t size);     /* zeroed; dies when out of memory */
const char *ir_strdup(ir_graph *g, const char *s);

/* Grows a malloc'd array of n items of `size` bytes so that it holds n+1;
 * *cap doubles. Dies when out of memory. Shared by every growing array. */
void *ir_grow(void *arr, int n, int *cap, size_t size);

/* Leaves. */
int ir_input(ir_graph *g, const char *name, rt_dtype dt, const ir_shape *s,
             const char *where);
int ir_param(ir_graph *g, const char *name, rt_dtype dt, const ir_shape *s,
             ir_init init, int trainable, const char *where);
int ir_fill(ir_graph *g, double value, rt_dtype dt, const ir_shape *s,
            const char *where);
int ir_constant(ir_graph *g, const double *values, rt_dtype dt,
                const ir_shape *s, const char *where);

/* Any non-leaf op. `shape` is the target shape of reshape, broadcast,
 * slice (element counts), the conv2d gradients, scatter_add and the random
 * ops, and ignored otherwise; `dt` is the target dtype of cast and the
 * random ops, and ignored otherwise. */
int ir_add(ir_graph *g, ir_opcode op, const int *in, int nin,
           const ir_attrs *a, const ir_shape *shape, rt_dtype dt,
           const char *where);

/* Entries: outputs and updates are copied. Fails on a duplicate entry
 * name, an update of a non-param or one whose shape or dtype differs. */
int ir_entry_add(ir_graph *g, const char *name, const ir_binding *outputs,
                 int noutputs, const ir_binding *updates, int nupdates, const char *where);
const ir_entry *ir_entry_find(const ir_graph *g, const char *name);

/* The nodes an entry needs, as a 0/1 mask over node ids (caller frees). */
char *ir_entry_live(const ir_graph *g, const ir_entry *e);

int ir_find_param(const ir_graph *g, const char *name);   /* node id or -1 */

/* Program metadata: key -> JSON text (a later value replaces an earlier).
 * The keys are those the compiled program reads (meta.c lists them), each
 * value one JSON value of its key's type and range; -1 with
 * "where: meta: ..." in g->err otherwise. */
int ir_set_meta(ir_graph *g, const char *key, const char *json, const char *where);
const char *ir_get_meta(const ir_graph *g, const char *key);
/* The metadata agrees with the graph: meta image [C, H, W] and batch B
 * are the shape (B, C, H, W) of the image inputs x, x0 and sample.x.
 * -1 with "where: meta: ..." (the meta's where) in g->err otherwise. */
int ir_meta_verify(ir_graph *g);

/* Shapes. A shape holds at most IR_MAXNUMEL elements: kernel IR index
 * constants are doubles, exact up to 2^53, and byte sizes then fit int64.
 * ir_numel_fits says whether s does (dims positive); builders refuse a
 * shape that does not, so ir_numel never overflows on a built node. */
#define IR_MAXNUMEL ((int64_t)1 << 53)
int64_t ir_numel(const ir_shape *s);
int ir_numel_fits(const ir_shape *s);
int ir_shape_eq(const ir_shape *a, const ir_shape *b);
const char *ir_shape_str(const ir_shape *s, char *buf, size_t len);
ir_shape ir_shape_of(int rank, const int64_t *d);
int ir_opcode_parse(const char *name, ir_opcode *out);

/* For builders and passes: append a checked node (ids stay topological),
 * and report "where: op: message" in g->err, returning -1. */
int ir_push(ir_graph *g, const ir_node *n);
int ir_fail(ir_graph *g, const char *where, const char *op, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Reruns the shape rule of non-leaf node `id` against what it records. */
int ir_recheck(ir_graph *g, int id);

/* Check every invariant the builders establish; 0 if the graph is sound,
 * else -1 with the first violation in g->err. Passes run it between them. */
int ir_verify(ir_graph *g);

/* Readable dumps: one line per node, or Graphviz. `live` may be NULL. */
void ir_dump(const ir_graph *g, const char *live, FILE *f);
void ir_dump_dot(const ir_graph *g, const char *live, FILE *f);

/* Multiply-adds counted as 2 FLOPs; elementwise ops as 1 per element. */
double ir_node_flops(const ir_graph *g, const ir_node *n);

#endif
