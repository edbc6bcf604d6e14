/* lower_impl: what the files of the lowering (kir_lower, kir.h) share.
 *
 * The lowering turns one graph entry into a kernel program. Its files, by
 * job:
 *   lower.c        the entry: which nodes get a buffer and a kernel
 *                  (the fusion rule), building every kernel in node order,
 *                  rebuilding after a conflict, FLOPs and bytes per kernel
 *   lower_index.c  index arithmetic over the kernel's expressions (folded
 *                  where constant, affine where it can stay so)
 *   lower_fuse.c   the value of a node at an index, inlined into the
 *                  kernel being built: elementwise chains, movement,
 *                  reductions and contractions fused as its one reduction
 *   lower_conv.c   convolutions and their gradients: operands read through
 *                  copies laid out for the contraction (side kernels),
 *                  channels-last kernels, weight-gradient partial sums
 *   lower_winograd.c 3x3 stride-1 convolutions and both their gradients
 *                  by Winograd F(2x2, 3x3) or F(4x4, 3x3): transforms,
 *                  matmuls, the output transform as the consumer's value
 *   lower_roots.c  entry outputs and state updates (in place when safe)
 *   schedule.c     the decisions of layout and loop order, by the target
 *                  (kir_target): no file of the lowering holds a machine's
 *                  threshold
 *
 * One `lower` context is the state of one lowering: the node tables
 * (shared by every kernel) and the kernel being built. A side kernel, built
 * ahead of the kernel being built (lower_conv.c), gets a context of its own
 * that shares the node tables and the program. */
#ifndef DDPMC_LOWER_IMPL_H
#define DDPMC_LOWER_IMPL_H

#include "kir.h"

typedef struct {
	int node, n;
	int idx[IR_MAXDIM];
	int expr;
	int reads;              /* buffers the kernel first read computing it */
} memo;

/* A copy of a convolution operand (N, C, H, W) laid out for its
 * contraction: padded, spread by a stride, permuted. */
typedef struct {
	int64_t pad[4];         /* top, bottom, left, right zeros */
	int64_t spread[2];      /* rows, columns s apart with zeros between (1: dense) */
	int perm[4];            /* the copy's dims: the node's dims perm[0], perm[1], ... */
} layout;

typedef struct {
	int node;
	layout lay;
	int buf;
} relaid;

struct relaid_set {
	relaid *v;
	int n, cap;
};

typedef struct {
	ir_graph *g;
	const ir_entry *e;
	const kir_target *target;       /* what the schedule decides for */
	kir_program *p;
	char *live;
	int *uses;              /* consumers inside the entry (+1 per root binding) */
	char *bound;            /* an entry output or state update (a root binding) */
	char *spread;           /* read broadcast by a node with many more values */
	char *maxed;            /* the operand of a max reduction */
	char *mat;              /* materialize */
	char *forced;           /* materialize: found while building a kernel */
	int *sink;              /* see sinks() */
	int *walked, walks;     /* reads_channels_last's marks: node -> the walk that saw it */
	int *buf_of;            /* node -> buffer, or -1 */
	struct relaid_set *relaid;      /* copies of conv operands (shared with side kernels) */
	/* the kernel being built */
	kir_kernel *k;
	int root;
	int dim_var[IR_MAXDIM]; /* the var expression of each of the root's dims */
	int red_node;           /* node fused as this kernel's reduction, or -1 */
	int in_contraction;     /* building a contraction's operands */
	int in_reduction;       /* building a reduction's or contraction's body */
	int channel_vectors;    /* a convolution whose last var is its output channel */
	int conflict;           /* node that must be materialized, or -1 */
	int joined, piece;      /* joint reduction: concat `joined` is its input `piece` */
	int budget;             /* buffers a kernel may take (kir_target.max_args); 0: any */
	int *read_mark, read_cap, mark;  /* read_mark[b] == mark: the kernel reads or stores b */
	int nread, scanned;     /* those buffers; its expressions counted so far */
	int part_first, part_end;       /* a concat root built in parts: this part's inputs */
	int depth;              /* nodes value_at is inside (see FUSE_DEPTH) */
	memo *memo;
	int nmemo, memocap;
	char ops[512];
} lower;

static inline const ir_node *N(lower *L, int id)
{
	return &L->g->nodes[id];
}

/* The index constant v in the kernel being built. */
static inline int I(lower *L, int64_t v)
{
	return kir_const(L->k, KT_IDX, (double)v);
}

/* lower.c: buffers and kernels of the program */
int lower_add_buffer(lower *L, kir_bufkind kind, const ir_node *n, const char *name);
int lower_param_buffer(lower *L, const char *name);
const char *lower_output_name(lower *L, int node);
/* Appends kernel k, named after `kind`, reporting the graph ops `ops`. */
void lower_append_kernel(lower *L, kir_kernel *k, const char *kind, const char *ops);
/* The fused node of the kernel just built that read the most buffers
 * (a buffer of it saves the kernel all but one of them), fewer than
 * `most` unless it is a concat (built in parts once stored), or -1. */
int lower_widest_fused(lower *L, int most);

/* lower_index.c: index expressions (KT_IDX) of the kernel being built */
int lower_iop(lower *L, ir_opcode op, int a, int b);
int lower_clamp(lower *L, int v, int64_t lo, int64_t hi);
int lower_in_range(lower *L, int v, int64_t lo, int64_t hi);
int lower_linearize(lower *L, const int *idx, const ir_shape *s);
void lower_delinearize(lower *L, int lin, const ir_shape *s, int *idx);

/* lower_fuse.c: node values in the kernel being built */
int lower_value_at(lower *L, int node, const int *idx);
int lower_compute_value(lower *L, int node, const int *idx);
/* The buffers the kernel being built reads or stores so far (counted
 * only under a budget: 0 otherwise). */
int lower_buffers(lower *L);
int lower_want_materialized(lower *L, int node);
/* Whether a reduction of shape r can be the epilogue of a kernel whose
 * root has shape root: the same shape, or both a single value. */
int lower_fuses_into(const ir_shape *r, const ir_shape *root);
void lower_set_reduction(lower *L, const int64_t *ext, int n);
int lower_rvar(lower *L, int j);
int lower_mul(lower *L, int a, int b);

/* lower_conv.c: convolutions */
/* Node (N, C, H, W) at (nn, c, y, x) of its copy in layout lay (for a
 * weight: (o, c, i, j)), the copy made by a side kernel on first use. */
int lower_relaid_value(lower *L, int node, const layout *lay, int nn, int c, int y, int x);
int lower_conv_body(lower *L, const ir_node *n, const int *idx);
int lower_conv_grad_input_body(lower *L, const ir_node *n, const int *idx);
int lower_conv_grad_weight_body(lower *L, const ir_node *n, const int *idx);
int lower_channels_in_vectors(lower *L, const ir_node *n, layout *glay);
int lower_channels_last_conv(lower *L, const ir_node *n, const int *idx, const layout *glay);
/* A kernel built ahead of the one being built (a side kernel), in a
 * lowering context S of its own that shares the program and the node
 * tables. Only what may inline into a contraction's operand inlines into
 * it (movement, casts): the rest must be materialized (a conflict). */
void lower_side_begin(lower *L, lower *S, kir_kernel *k);
/* Ends side kernel k: 0, or -1 after a conflict (passed on to L, k freed). */
int lower_side_end(lower *L, lower *S, kir_kernel *k);

/* A new f32 temporary of shape s for a side kernel of node n (its
 * partial sums, a channels-last result, Winograd's transforms). */
int lower_f32_temp(lower *L, const ir_node *n, const ir_shape *s);

/* lower_winograd.c: the algorithm node n (a convolution or either of its
 * gradients) runs by: KIR_ALGO_DIRECT unless Winograd applies and the
 * schedule asks for it; by Winograd algorithm a, its value at the
 * kernel's own index idx */
kir_algorithm lower_winograd_algorithm(lower *L, const ir_node *n);
int lower_winograd_conv(lower *L, const ir_node *n, kir_algorithm a, const int *idx);

/* lower_roots.c */
void lower_plan_roots(lower *L);

/* schedule.c: layout and loop order, by the target */
int schedule_channels_last(const kir_target *t, ir_opcode op, int64_t channels, const int64_t *taps);
int64_t schedule_image_blocks(const kir_target *t, int64_t images, int64_t weights);
void schedule_domain_order(ir_opcode op, int rank, int reads_channels_last, int *order);
kir_algorithm schedule_winograd(const kir_target *t, const ir_graph *g, const ir_node *n);

#endif
