/* lower: graph entry -> kernel program (fusion, scheduling, memory plan).
 *
 * requires: a verified graph and one of its entries.
 * establishes: one kernel per materialized node, in node order (a
 *   topological order), preceded by the side kernels it reads (a
 *   convolution's operand laid out for it, a convolution computed
 *   channels-last, a weight gradient's partial sums: see "convolution
 *   operands" below); every other node the entry needs is inlined into
 *   the kernels that use it; state updates write their param in place when
 *   that is safe, else through a temporary and a copy kernel at the end;
 *   temporaries get arena offsets by liveness (first fit).
 *
 * Fusion rule. A node is materialized (gets a buffer and a kernel) when it
 * is a leaf with data (param, input, constant), an entry root, used by more
 * than one node (unless each user can recompute it with at most two cheap
 * arithmetic ops from buffers; a scalar computed by arithmetic is stored
 * once, not recomputed at every point of every user), or when inlining it
 * is impossible or wasteful:
 *   - a reduction or contraction inlines into its consumer only as that
 *     kernel's one reduction, read at the kernel's own index (an epilogue:
 *     bias, residual add, activation, casts after a conv or a sum);
 *   - inside a contraction's operands only index remaps (movement ops) and
 *     casts inline; arithmetic there would be recomputed for every output;
 *   - a concat read by a reduction or contraction (a U-Net's skip
 *     connection before GroupNorm and the shortcut convolution) is stored:
 *     its select per element would run in the inner loop, over two loads
 *     (a sum over a concat of flattened tensors is a joint reduction
 *     instead, see joint_reduction).
 * Everything else elementwise or movement inlines: elementwise chains fuse
 * with each other, into reduction inputs and into contraction epilogues.
 * Conflicts found while building a kernel mark the node and rebuild. */
#include <stdlib.h>
#include <string.h>

#include "kir.h"

typedef struct {
	int node, n;
	int idx[IR_MAXDIM];
	int expr;
} memo;

typedef struct {
	ir_graph *g;
	const ir_entry *e;
	kir_program *p;
	char *live;
	int *uses;              /* consumers inside the entry (+1 per root binding) */
	char *mat;              /* materialize */
	char *forced;           /* materialize: found while building a kernel */
	int *sink;              /* see sinks() */
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
	int depth;              /* nodes value_at is inside (see FUSE_DEPTH) */
	memo *memo;
	int nmemo, memocap;
	char ops[512];
} lower;

static const ir_node *N(lower *L, int id)
{
	return &L->g->nodes[id];
}

/* --- index arithmetic ---------------------------------------------------- */

static int I(lower *L, int64_t v)
{
	return kir_const(L->k, KT_IDX, (double)v);
}

static int iop(lower *L, ir_opcode op, int a, int b)
{
	kir_expr *x = L->k->x;
	int ca = x[a].kind == KX_CONST, cb = x[b].kind == KX_CONST;
	if (ca && cb && op != OP_div)           /* fold */
		return I(L, (int64_t)ir_scalar(op, x[a].value, x[b].value, 0));
	if ((op == OP_add || op == OP_sub) && cb && x[b].value == 0)
		return a;
	if (op == OP_add && ca && x[a].value == 0)
		return b;
	if ((op == OP_mul || op == OP_div) && cb && x[b].value == 1)
		return a;
	if (op == OP_mul && ca && x[a].value == 1)
		return b;
	if (op == OP_mul && ((ca && x[a].value == 0) || (cb && x[b].value == 0)))
		return I(L, 0);
	return kir_op(L->k, KT_IDX, op, a, b, -1);
}

static int clamp(lower *L, int v, int64_t lo, int64_t hi)
{
	return iop(L, OP_min, iop(L, OP_max, v, I(L, lo)), I(L, hi));
}

/* 1 when lo <= v < hi (as an index value). */
static int in_range(lower *L, int v, int64_t lo, int64_t hi)
{
	return iop(L, OP_mul, iop(L, OP_le, I(L, lo), v), iop(L, OP_lt, v, I(L, hi)));
}

/* 1 when expression i is x `op` d for a constant d (x in *x). */
static int is_by(lower *L, int i, int op, int64_t d, int *x)
{
	const kir_expr *e = &L->k->x[i];
	int match = op == KX_MOD ? e->kind == KX_MOD : e->kind == KX_OP && e->op == OP_div;
	if (!match || L->k->x[e->b].kind != KX_CONST || L->k->x[e->b].value != (double)d)
		return 0;
	*x = e->a;
	return 1;
}

/* a * d + b without the split of x that delinearize made: x when a is
 * x / d and b is x % d, u * d + x when a is u + x / d; else -1. */
static int undo_split(lower *L, int a, int b, int64_t d)
{
	const kir_expr *e = &L->k->x[a];
	int x, y;
	if (!is_by(L, b, KX_MOD, d, &x))
		return -1;
	if (is_by(L, a, OP_div, d, &y) && y == x)
		return x;
	if (e->kind == KX_OP && e->op == OP_add && is_by(L, e->b, OP_div, d, &y) && y == x)
		return iop(L, OP_add, iop(L, OP_mul, e->a, I(L, d)), x);
	return -1;
}

static int linearize(lower *L, const int *idx, const ir_shape *s)
{
	int lin = I(L, 0);
	for (int r = 0; r < s->rank; r++) {
		int whole = undo_split(L, lin, idx[r], s->d[r]);
		lin = whole >= 0 ? whole : iop(L, OP_add, iop(L, OP_mul, lin, I(L, s->d[r])), idx[r]);
	}
	return lin;
}

static void delinearize(lower *L, int lin, const ir_shape *s, int *idx)
{
	for (int r = s->rank - 1; r >= 0; r--) {
		idx[r] = r == 0 ? lin : kir_mod(L->k, lin, I(L, s->d[r]));
		lin = iop(L, OP_div, lin, I(L, s->d[r]));
	}
}

/* --- values ------------------------------------------------------------------- */

static int value_at(lower *L, int node, const int *idx);

static int want_materialized(lower *L, int node)
{
	if (L->conflict < 0)
		L->conflict = node;
	return kir_const(L->k, kir_type_of(N(L, node)->dtype), 0);
}

static int load_node(lower *L, int node, const int *idx)
{
	return kir_load(L->k, L->p, L->buf_of[node], linearize(L, idx, &N(L, node)->shape));
}

/* The index of input `in` (shape s) of a broadcasting elementwise node. */
static void broadcast_index(lower *L, const ir_shape *out, const ir_shape *s, const int *idx, int *in)
{
	int lead = out->rank - s->rank;
	for (int r = 0; r < s->rank; r++)
		in[r] = s->d[r] == 1 && out->d[lead + r] != 1 ? I(L, 0) : idx[lead + r];
}

static int elemwise_value(lower *L, const ir_node *n, const int *idx)
{
	int v[3] = { -1, -1, -1 }, in[IR_MAXDIM];
	for (int k = 0; k < n->nin; k++) {
		broadcast_index(L, &n->shape, &N(L, n->in[k])->shape, idx, in);
		v[k] = value_at(L, n->in[k], in);
	}
	if (n->op == OP_cast)
		return kir_cast(L->k, kir_type_of(n->dtype), v[0], n->dtype);
	return kir_op(L->k, kir_type_of(n->dtype), n->op, v[0], v[1], v[2]);
}

/* Reshape keeps row-major order. Dims are matched from the right in groups
 * of equal size (a split or merge of dims); within a group the index is
 * linearized and split again, and a group of one dim each way passes its
 * index through unchanged, so index math stays affine where it can. */
static int reshape_value(lower *L, const ir_node *n, const int *idx)
{
	int src = n->in[0], in[IR_MAXDIM];
	const ir_shape *s = &N(L, src)->shape, *o = &n->shape;
	if (L->buf_of[src] >= 0)            /* a buffer: the same linear index */
		return kir_load(L->k, L->p, L->buf_of[src], linearize(L, idx, o));
	int ro = o->rank, ri = s->rank;
	while (ro > 0 || ri > 0) {
		int ho = ro, hi = ri;           /* the group is [ro, ho) x [ri, hi) */
		int64_t po = ro > 0 ? o->d[--ro] : 1, pi = ri > 0 ? s->d[--ri] : 1;
		while (po != pi) {              /* equal totals: the smaller side has dims */
			if (po < pi)
				po *= o->d[--ro];
			else
				pi *= s->d[--ri];
		}
		ir_shape gs_out = { ho - ro, { 0 } }, gs_in = { hi - ri, { 0 } };
		for (int r = ro; r < ho; r++)
			gs_out.d[r - ro] = o->d[r];
		for (int r = ri; r < hi; r++)
			gs_in.d[r - ri] = s->d[r];
		if (gs_out.rank == 1 && gs_in.rank == 1)
			in[ri] = idx[ro];
		else
			delinearize(L, linearize(L, idx + ro, &gs_out), &gs_in, in + ri);
	}
	return value_at(L, src, in);
}

/* permute, broadcast, slice, upsample2d: the input's value at the index
 * idx maps to. */
static int movement_value(lower *L, const ir_node *n, const int *idx)
{
	const ir_shape *s = &N(L, n->in[0])->shape;
	int in[IR_MAXDIM];
	switch (n->op) {
	case OP_permute:
		for (int r = 0; r < n->shape.rank; r++)
			in[n->a.permute.perm[r]] = idx[r];
		return value_at(L, n->in[0], in);
	case OP_broadcast:
		broadcast_index(L, &n->shape, s, idx, in);
		return value_at(L, n->in[0], in);
	case OP_slice:
		for (int r = 0; r < s->rank; r++)
			in[r] = iop(L, OP_add, I(L, n->a.slice.start[r]),
			            iop(L, OP_mul, idx[r], I(L, n->a.slice.step[r])));
		return value_at(L, n->in[0], in);
	case OP_upsample2d:
		memcpy(in, idx, (size_t)n->shape.rank * sizeof *in);
		in[2] = iop(L, OP_div, idx[2], I(L, n->a.upsample.scale));
		in[3] = iop(L, OP_div, idx[3], I(L, n->a.upsample.scale));
		return value_at(L, n->in[0], in);
	case OP_reshape: case OP_pad: case OP_concat:           /* their own functions */
	IR_CASES_LEAF: IR_CASES_ELEMWISE: IR_CASES_REDUCE: IR_CASES_CONTRACT: IR_CASES_INDEX:
	IR_CASES_RANDOM: break;
	}
	IR_NO_CASE(n->op);
}

/* pad: a select between the clamped input value and the pad value. */
static int pad_value(lower *L, const ir_node *n, const int *idx)
{
	const ir_shape *s = &N(L, n->in[0])->shape;
	int in[IR_MAXDIM], inside = I(L, 1);
	for (int r = 0; r < s->rank; r++) {
		int64_t lo = n->a.pad.lo[r];
		in[r] = iop(L, OP_sub, idx[r], I(L, lo));
		if (lo || n->a.pad.hi[r]) {
			inside = iop(L, OP_mul, inside, in_range(L, idx[r], lo, lo + s->d[r]));
			in[r] = clamp(L, in[r], 0, s->d[r] - 1);
		}
	}
	kir_type t = kir_type_of(n->dtype);
	int v = value_at(L, n->in[0], in);
	return kir_op(L->k, t, OP_select, inside, v, kir_const(L->k, t, n->a.pad.value));
}

/* concat: a chain of selects on the axis index, last input innermost;
 * inside a joint reduction's segment, the segment's piece itself. */
static int concat_value(lower *L, const ir_node *n, const int *idx)
{
	if (L->joined >= 0 && n == N(L, L->joined))
		return value_at(L, n->in[L->piece], idx);
	int ax = n->a.concat.axis, result = -1, in[IR_MAXDIM];
	int64_t end = n->shape.d[ax];
	for (int k = n->nin - 1; k >= 0; k--) {
		int64_t len = N(L, n->in[k])->shape.d[ax];
		memcpy(in, idx, (size_t)n->shape.rank * sizeof *in);
		in[ax] = clamp(L, iop(L, OP_sub, idx[ax], I(L, end - len)), 0, len - 1);
		int v = value_at(L, n->in[k], in);
		result = result < 0 ? v
		       : kir_op(L->k, kir_type_of(n->dtype), OP_select,
		                iop(L, OP_lt, idx[ax], I(L, end)), v, result);
		end -= len;
	}
	return result;
}

static int index_from(lower *L, int value, int64_t rows)
{
	int i = kir_op(L->k, KT_IDX, OP_cast, value, -1, -1);
	return clamp(L, i, 0, rows - 1);
}

/* gather: table rows picked by a (clamped) i32 index. */
static int gather_value(lower *L, const ir_node *n, const int *idx)
{
	const ir_shape *ts = &N(L, n->in[0])->shape, *is = &N(L, n->in[1])->shape;
	int in[IR_MAXDIM];
	int row = index_from(L, value_at(L, n->in[1], idx), ts->d[0]);
	in[0] = row;
	for (int r = 1; r < ts->rank; r++)
		in[r] = idx[is->rank + r - 1];
	return value_at(L, n->in[0], in);
}

/* Element shard * numel + (idx linearized) of the draw's stream; a
 * constant shard (one process: a fill of 0) folds away. */
static int random_value(lower *L, const ir_node *n, const int *idx)
{
	int none[1] = { 0 };
	int s = value_at(L, n->in[2], none);
	const kir_expr *x = &L->k->x[s];
	int shard = x->kind == KX_CONST ? I(L, (int64_t)x->value) : kir_cast(L->k, KT_IDX, s, RT_F32);
	int first = iop(L, OP_mul, shard, I(L, ir_numel(&n->shape)));
	int elem = iop(L, OP_add, first, linearize(L, idx, &n->shape));
	int seed = value_at(L, n->in[0], none), step = value_at(L, n->in[1], none);
	return kir_random(L->k, n->op, elem, seed, step, n->a.rng.stream);
}

/* --- reductions and contractions (the kernel's one reduction; merge.c may
 *     put several reductions over one domain into one kernel later) ----- */

/* Reduction var j (after set_reduction); index 0 when its extent is 1. */
static int rvar(lower *L, int j)
{
	int v = L->k->rank + j;
	return L->k->ext[v] == 1 ? I(L, 0) : kir_var(L->k, v);
}

static void set_reduction(lower *L, const int64_t *ext, int n)
{
	L->k->nred = n;
	for (int j = 0; j < n; j++)
		L->k->ext[L->k->rank + j] = ext[j];
}

/* A run of adjacent reduced axes is one reduction var over their product
 * (the same order), split back into the axes' indices: a contiguous
 * run's load folds the split away (linearize), so the innermost loop is
 * long, say all of a GroupNorm group's C/G x H x W. A sum to one point
 * keeps its axes (merge.c puts an elementwise kernel over the same shape,
 * the loss's gradient, inside its loop). */
static int reduce_body(lower *L, const ir_node *n, const int *idx)
{
	const ir_shape *s = &N(L, n->in[0])->shape;
	int64_t ext[IR_MAXDIM];
	int in[IR_MAXDIM], first[IR_MAXDIM], last[IR_MAXDIM], nr = 0;
	int to_point = ir_numel(&n->shape) == 1;
	for (int r = 0; r < s->rank; r++) {
		if (!(n->a.reduce.axes >> r & 1))
			continue;
		if (!to_point && nr > 0 && last[nr - 1] == r - 1)
			ext[nr - 1] *= s->d[r], last[nr - 1] = r;
		else
			first[nr] = last[nr] = r, ext[nr++] = s->d[r];
	}
	set_reduction(L, ext, nr);
	for (int r = 0; r < s->rank; r++)
		in[r] = idx[r];
	for (int j = 0; j < nr; j++) {
		ir_shape run = { last[j] - first[j] + 1, { 0 } };
		for (int r = first[j]; r <= last[j]; r++)
			run.d[r - first[j]] = s->d[r];
		delinearize(L, rvar(L, j), &run, &in[first[j]]);
	}
	return value_at(L, n->in[0], in);
}

/* 1 when every element of rank-1 node `node` comes from one fused concat
 * of rank-1 pieces (*concat) through elementwise ops, at its own index,
 * all else being the same at every element (fills, broadcast scalars). */
static int from_one_concat(lower *L, int node, int *concat)
{
	const ir_node *n = N(L, node);
	if (n->op == OP_fill || (n->op == OP_broadcast && ir_numel(&N(L, n->in[0])->shape) == 1))
		return 1;
	if (L->mat[node])
		return 0;
	if (n->op == OP_concat) {
		if (n->shape.rank != 1 || (*concat >= 0 && *concat != node))
			return 0;
		*concat = node;
		return 1;
	}
	if (!(ir_ops[n->op].flags & ELEMWISE))
		return 0;
	for (int i = 0; i < n->nin; i++)
		if (!from_one_concat(L, n->in[i], concat))
			return 0;
	return 1;
}

/* A sum to one point over a concat of pieces (the squares of every
 * gradient, say) is one kernel with a segment per piece: a joint
 * reduction (kir.h), the concat read as the segment's piece at the
 * segment's own var. -1 when n is not such a sum. */
static int joint_reduction(lower *L, const ir_node *n)
{
	kir_kernel *k = L->k;
	int concat = -1;
	if (k->rank != 0 || N(L, n->in[0])->shape.rank != 1 || !from_one_concat(L, n->in[0], &concat) ||
	    concat < 0)
		return -1;
	const ir_node *c = N(L, concat);
	k->seg = calloc((size_t)c->nin, sizeof *k->seg);
	k->nseg = c->nin;
	int64_t total = 0;
	for (int s = 0; s < c->nin; s++) {
		int64_t len = N(L, c->in[s])->shape.d[0];
		k->seg[s] = (kir_segment){ .nred = 1, .ext = { len } };
		total += len;
		L->nmemo = 0;           /* values of the concat differ per segment */
		L->joined = concat, L->piece = s;
		int idx[1] = { len == 1 ? I(L, 0) : kir_var(k, 0) };
		k->seg[s].red_value[0] = value_at(L, n->in[0], idx);
	}
	L->joined = -1;
	L->nmemo = 0;
	set_reduction(L, &total, 1);
	int acc = kir_acc_add(k, n->op == OP_reduce_max ? OP_max : OP_add, k->seg[0].red_value[0]);
	return kir_acc(k, kir_type_of(n->dtype), acc);
}

static int mul(lower *L, int a, int b)
{
	return kir_op(L->k, KT_F32, OP_mul, a, b, -1);
}

static int matmul_body(lower *L, const ir_node *n, const int *idx)
{
	int r = n->shape.rank, ia[IR_MAXDIM], ib[IR_MAXDIM];
	int64_t K = N(L, n->in[0])->shape.d[r - 1];
	set_reduction(L, &K, 1);
	memcpy(ia, idx, (size_t)r * sizeof *ia);
	memcpy(ib, idx, (size_t)r * sizeof *ib);
	ia[r - 1] = rvar(L, 0);
	ib[r - 2] = rvar(L, 0);
	return mul(L, value_at(L, n->in[0], ia), value_at(L, n->in[1], ib));
}

/* --- convolution operands laid out for their contraction ---------------
 *
 * A convolution reads its operands through copies made once, each by a
 * kernel of its own ahead of the kernel being built: zero-padded (and
 * spread by a stride), so that the contraction needs no bounds tests (its
 * loads stay plain vector loads and its products plain multiply-adds), or
 * permuted (channels-last, a weight with its output channel last), so that
 * vectors span channels. */

typedef struct {
	int64_t pad[4];         /* top, bottom, left, right zeros */
	int64_t spread[2];      /* rows, columns s apart with zeros between (1: dense) */
	int perm[4];            /* the copy's dims: the node's dims perm[0], perm[1], ... */
} layout;

#define DENSE { 1, 1 }
#define AS_IS { 0, 1, 2, 3 }
static const layout channels_last = { { 0 }, DENSE, { 0, 2, 3, 1 } };   /* (N, H, W, C) */
static const layout first_dim_last = { { 0 }, DENSE, { 1, 2, 3, 0 } };  /* (C, KH, KW, O) */

typedef struct {
	int node;
	layout lay;
	int buf;
} relaid;

struct relaid_set {
	relaid *v;
	int n, cap;
};

static int is_plain(const layout *lay)
{
	static const int as_is[4] = AS_IS;
	return !memcmp(lay->perm, as_is, sizeof as_is) && !(lay->pad[0] | lay->pad[1] | lay->pad[2] | lay->pad[3]) &&
	       lay->spread[0] == 1 && lay->spread[1] == 1;
}

/* The copy's shape (its dims in its order) for node extents d. */
static ir_shape relaid_shape(const int64_t *d, const layout *lay)
{
	int64_t e[4] = { d[0], d[1] };
	for (int a = 0; a < 2; a++)
		e[2 + a] = (d[2 + a] - 1) * lay->spread[a] + 1 + lay->pad[2 * a] + lay->pad[2 * a + 1];
	ir_shape s = { 4, { 0 } };
	for (int k = 0; k < 4; k++)
		s.d[k] = e[lay->perm[k]];
	return s;
}

/* The index into a node's axis of extent n at copy coordinate v of a
 * layout with `before` zeros and spread s; *inside: 1 where that is a node
 * element, not a zero. */
static int relaid_source(lower *L, int v, int64_t before, int64_t s, int64_t n, int *inside)
{
	int64_t span = (n - 1) * s + 1;
	int t = iop(L, OP_sub, v, I(L, before));
	int tc = clamp(L, t, 0, span - 1);
	*inside = iop(L, OP_mul, *inside, in_range(L, t, 0, span));
	if (s == 1)
		return tc;
	*inside = iop(L, OP_mul, *inside, iop(L, OP_eq, kir_mod(L->k, tc, I(L, s)), I(L, 0)));
	return iop(L, OP_div, tc, I(L, s));
}

static int same_layout(const layout *a, const layout *b)
{
	return !memcmp(a->perm, b->perm, sizeof a->perm) && !memcmp(a->pad, b->pad, sizeof a->pad) &&
	       !memcmp(a->spread, b->spread, sizeof a->spread);
}

static void append_kernel(lower *L, kir_kernel *k, const char *kind, const char *ops)
{
	char name[64];
	snprintf(name, sizeof name, "k%d_%s", L->p->nk, kind);
	k->name = ir_strdup(L->g, name);
	k->ops = ir_strdup(L->g, ops);
	L->p->k = ir_grow(L->p->k, L->p->nk, &L->p->kcap, sizeof *L->p->k);
	L->p->k[L->p->nk++] = *k;
}

static int add_buffer(lower *L, kir_bufkind kind, const ir_node *n, const char *name);

/* A kernel built ahead of the one being built (a side kernel), in a
 * lowering context S of its own that shares the program and the node
 * tables. Only what may inline into a contraction's operand inlines into
 * it (movement, casts): the rest must be materialized (a conflict). */
static void side_begin(lower *L, lower *S, kir_kernel *k)
{
	*S = *L;
	S->k = k, S->root = -1, S->red_node = -1, S->in_contraction = 1, S->in_reduction = 0, S->conflict = -1;
	S->memo = NULL, S->nmemo = S->memocap = 0, S->ops[0] = 0;
}

/* Ends side kernel k: 0, or -1 after a conflict (passed on to L, k freed). */
static int side_end(lower *L, lower *S, kir_kernel *k)
{
	free(S->memo);
	if (S->conflict < 0)
		return 0;
	L->conflict = S->conflict;
	free(k->x);
	free(k->st);
	return -1;
}

/* Builds the copy of node (N, C, H, W) in layout lay into a new buffer, as
 * a side kernel. Returns the buffer, or -1 with L->conflict set. */
static int build_relaid(lower *L, int node, const layout *lay)
{
	const ir_node *n = N(L, node);
	const int64_t *d = n->shape.d;
	ir_node t = *n;
	t.shape = relaid_shape(d, lay);
	kir_kernel k = { .rank = 4 };
	lower S;
	side_begin(L, &S, &k);
	int to[4], dim[4], at[4];               /* vars in buffer order; by node dim */
	for (int v = 0; v < 4; v++) {
		k.ext[v] = t.shape.d[v];
		to[v] = kir_var(&k, v);
		dim[lay->perm[v]] = to[v];
	}
	int inside = I(&S, 1);
	at[0] = dim[0], at[1] = dim[1];
	at[2] = relaid_source(&S, dim[2], lay->pad[0], lay->spread[0], d[2], &inside);
	at[3] = relaid_source(&S, dim[3], lay->pad[2], lay->spread[1], d[3], &inside);
	kir_type ty = kir_type_of(n->dtype);
	int v = value_at(&S, node, at);
	if (k.x[inside].kind != KX_CONST)
		v = kir_op(&k, ty, OP_select, inside, v, kir_const(&k, ty, 0));
	if (side_end(L, &S, &k) < 0)
		return -1;
	int b = add_buffer(L, KB_TEMP, &t, NULL);
	kir_store_add(&k, b, linearize(&S, to, &t.shape), v);
	int permuted = lay->perm[0] != 0 || lay->perm[1] != 1;
	append_kernel(L, &k, permuted ? "permute" : "zero_pad", permuted ? "permute" : "pad");
	return b;
}

/* The buffer of node's copy in layout lay, made on first use; -1 after a
 * conflict. */
static int relaid_buffer(lower *L, int node, const layout *lay)
{
	struct relaid_set *rs = L->relaid;
	for (int i = 0; i < rs->n; i++)
		if (rs->v[i].node == node && same_layout(&rs->v[i].lay, lay))
			return rs->v[i].buf;
	int b = build_relaid(L, node, lay);
	if (b < 0)
		return -1;
	rs->v = ir_grow(rs->v, rs->n, &rs->cap, sizeof *rs->v);
	rs->v[rs->n++] = (relaid){ node, *lay, b };
	return b;
}

/* Node (N, C, H, W) at (nn, c, y, x) of its copy in layout lay (for a
 * weight: (o, c, i, j)). */
static int relaid_value(lower *L, int node, const layout *lay, int nn, int c, int y, int x)
{
	ir_shape s = relaid_shape(N(L, node)->shape.d, lay);
	int b = relaid_buffer(L, node, lay);
	if (b < 0)
		return kir_const(L->k, KT_F32, 0);
	int coord[4] = { nn, c, y, x }, at[4];
	for (int k = 0; k < 4; k++)
		at[k] = coord[lay->perm[k]];
	return kir_load(L->k, L->p, b, linearize(L, at, &s));
}

/* x[n, c, y*s + i - p, x*s + j - p], zero outside (the padding): read
 * from x's zero-padded copy, or x itself when the convolution has no
 * padding (every tap then lies inside). */
static int conv_input(lower *L, const ir_node *conv, int nn, int c, int y, int x, int i, int j)
{
	const ir_attrs *a = &conv->a;
	layout lay = { { a->conv.pad[0], a->conv.pad[1], a->conv.pad[2], a->conv.pad[3] }, DENSE, AS_IS };
	int py = iop(L, OP_add, iop(L, OP_mul, y, I(L, a->conv.stride[0])), i);
	int px = iop(L, OP_add, iop(L, OP_mul, x, I(L, a->conv.stride[1])), j);
	if (is_plain(&lay)) {
		int at[4] = { nn, c, py, px };
		return value_at(L, conv->in[0], at);
	}
	return relaid_value(L, conv->in[0], &lay, nn, c, py, px);
}

/* Weight w[o, c, i, j] of convolution node n (or its input gradient). In
 * a kernel whose vectors span the output channels, read through a copy
 * with them last: (C, KH, KW, O) for a convolution, (O, KH, KW, C) for an
 * input gradient (whose output channel is c). */
static int conv_weight(lower *L, const ir_node *n, int o, int c, int i, int j)
{
	int at[4] = { o, c, i, j };
	if (!L->channel_vectors)
		return value_at(L, n->in[1], at);
	return relaid_value(L, n->in[1], n->op == OP_conv2d ? &first_dim_last : &channels_last, o, c, i, j);
}

static int conv_body(lower *L, const ir_node *n, const int *idx)
{
	const ir_shape *w = &N(L, n->in[1])->shape;
	int64_t ext[3] = { w->d[1], w->d[2], w->d[3] };
	set_reduction(L, ext, 3);
	int c = rvar(L, 0), i = rvar(L, 1), j = rvar(L, 2);
	int xv = conv_input(L, n, idx[0], c, idx[2], idx[3], i, j);
	return mul(L, xv, conv_weight(L, n, idx[1], c, i, j));
}

/* dL/dx[n,c,h,w] as a stride-1 convolution with the flipped kernel:
 * sum_o,i,j gp[n, o, h + KH-1-i, w + KW-1-j] w[o, c, i, j], gp being g
 * spread by the stride (zeros between) and padded by K-1-p before. */
static int conv_grad_input_dense(lower *L, const ir_node *n, const int *idx, const layout *lay)
{
	const ir_shape *w = &N(L, n->in[1])->shape;
	int64_t ext[3] = { w->d[0], w->d[2], w->d[3] };
	set_reduction(L, ext, 3);
	int o = rvar(L, 0), i = rvar(L, 1), j = rvar(L, 2);
	int y = iop(L, OP_sub, iop(L, OP_add, idx[2], I(L, w->d[2] - 1)), i);
	int x = iop(L, OP_sub, iop(L, OP_add, idx[3], I(L, w->d[3] - 1)), j);
	return mul(L, relaid_value(L, n->in[0], lay, idx[0], o, y, x), conv_weight(L, n, o, idx[1], i, j));
}

/* The layout of g for conv_grad_input_dense: spread by the stride, K-1-p
 * zeros before and what h + K-1-i can reach after. 0 when the padding is
 * larger than that (then g is read in place, with bounds tests). */
static int grad_input_layout(lower *L, const ir_node *n, layout *lay)
{
	const ir_shape *w = &N(L, n->in[1])->shape, *g = &N(L, n->in[0])->shape;
	*lay = (layout){ { 0 }, { n->a.conv.stride[0], n->a.conv.stride[1] }, AS_IS };
	for (int a = 0; a < 2; a++) {
		int64_t before = w->d[2 + a] - 1 - n->a.conv.pad[2 * a];
		int64_t span = (g->d[2 + a] - 1) * lay->spread[a] + 1;
		int64_t after = n->shape.d[2 + a] + w->d[2 + a] - 1 - span - before;
		lay->pad[2 * a] = before, lay->pad[2 * a + 1] = after > 0 ? after : 0;
	}
	return lay->pad[0] >= 0 && lay->pad[2] >= 0;
}

/* dL/dx[n,c,h,w] = sum_o,i,j g[n,o,y,x] w[o,c,i,j] over h + pt - i = y*sy (and w). */
static int conv_grad_input_body(lower *L, const ir_node *n, const int *idx)
{
	const ir_shape *w = &N(L, n->in[1])->shape, *g = &N(L, n->in[0])->shape;
	layout lay;
	if (grad_input_layout(L, n, &lay))
		return conv_grad_input_dense(L, n, idx, &lay);
	int64_t ext[3] = { w->d[0], w->d[2], w->d[3] };
	set_reduction(L, ext, 3);
	int o = rvar(L, 0), i = rvar(L, 1), j = rvar(L, 2);
	int src[2], ok = I(L, 1);
	for (int d = 0; d < 2; d++) {
		int t = iop(L, OP_sub, iop(L, OP_add, idx[2 + d], I(L, n->a.conv.pad[2 * d])), d ? j : i);
		int tc = iop(L, OP_max, t, I(L, 0));
		int s = n->a.conv.stride[d];
		int q = iop(L, OP_div, tc, I(L, s));
		ok = iop(L, OP_mul, ok, iop(L, OP_le, I(L, 0), t));
		if (s > 1)
			ok = iop(L, OP_mul, ok, iop(L, OP_eq, kir_mod(L->k, tc, I(L, s)), I(L, 0)));
		ok = iop(L, OP_mul, ok, iop(L, OP_lt, q, I(L, g->d[2 + d])));
		src[d] = clamp(L, q, 0, g->d[2 + d] - 1);
	}
	int gi[4] = { idx[0], o, src[0], src[1] }, wi[4] = { o, idx[1], i, j };
	/* the select on g, which does not depend on the output channel, as
	 * conv_input's on x: a tile over channels shares it, and the product
	 * stays one multiply-add */
	int gv = kir_op(L->k, KT_F32, OP_select, ok, value_at(L, n->in[0], gi), kir_const(L->k, KT_F32, 0));
	return mul(L, gv, value_at(L, n->in[1], wi));
}

/* dL/dw[o,c,i,j] summed over images n, y, x of x[n,c,y*sy+i-pt,x*sx+j-pl]
 * g[n,o,y,x], with g read channels-last so that the output channels o are
 * contiguous; at (o, c, i, j) of weight gradient node `n`, images
 * image0 + [0, count). */
static int grad_weight_product(lower *L, const ir_node *n, int o, int c, int i, int j,
                               int image0, int64_t count)
{
	const ir_shape *g = &N(L, n->in[1])->shape;
	int64_t ext[3] = { count, g->d[2], g->d[3] };
	set_reduction(L, ext, 3);
	int b = iop(L, OP_add, image0, rvar(L, 0)), y = rvar(L, 1), x = rvar(L, 2);
	int xv = conv_input(L, n, b, c, y, x, i, j);
	return mul(L, xv, relaid_value(L, n->in[1], &channels_last, b, o, y, x));
}

/* The weight gradient sums over every pixel of every image: too long a
 * reduction for one pass that keeps its operands in cache, and for a GPU
 * too few outputs to share out. So it is split: a side kernel sums each
 * block of images into partials P[block, i, j, c, o], and the gradient
 * sums the blocks. Blocks are as small as the partials allow (one or two
 * images' operands stay in a core's cache while every output channel
 * tile passes over them). */
enum { PARTIALS_MAX_BYTES = 32 << 20 };

static int64_t image_blocks(int64_t images, int64_t weights)
{
	int64_t nb = images;
	while (nb > 1 && (images % nb || nb * weights * 4 > PARTIALS_MAX_BYTES))
		nb--;
	return nb;
}

/* The partials kernel over (block, i, j, c, o) for weight gradient n; its
 * buffer, or -1 after a conflict. */
static int grad_weight_partials(lower *L, const ir_node *n, int64_t nb)
{
	const int64_t *w = n->shape.d, per = N(L, n->in[1])->shape.d[0] / nb;
	kir_kernel k = { .rank = 5, .ext = { nb, w[2], w[3], w[1], w[0] } };
	lower S;
	side_begin(L, &S, &k);
	int v[5];
	for (int r = 0; r < 5; r++) {
		v[r] = k.ext[r] == 1 ? I(&S, 0) : kir_var(&k, r);
		k.tile_hint[r] = 1;
	}
	int body = grad_weight_product(&S, n, v[4], v[3], v[1], v[2], iop(&S, OP_mul, v[0], I(&S, per)), per);
	int acc = kir_acc(&k, KT_F32, kir_acc_add(&k, OP_add, body));
	if (side_end(L, &S, &k) < 0)
		return -1;
	ir_node t = *n;
	t.dtype = RT_F32;
	t.shape = (ir_shape){ 5, { nb, w[2], w[3], w[1], w[0] } };
	int pb = add_buffer(L, KB_TEMP, &t, NULL);
	kir_store_add(&k, pb, linearize(&S, v, &t.shape), acc);
	append_kernel(L, &k, "conv2d_grad_weight", "conv2d_grad_weight");
	return pb;
}

static int conv_grad_weight_body(lower *L, const ir_node *n, const int *idx)
{
	int64_t images = N(L, n->in[1])->shape.d[0], nb = image_blocks(images, ir_numel(&n->shape));
	if (nb == 1)
		return grad_weight_product(L, n, idx[0], idx[1], idx[2], idx[3], I(L, 0), images);
	int pb = grad_weight_partials(L, n, nb);
	if (pb < 0)
		return kir_const(L->k, KT_F32, 0);
	set_reduction(L, &nb, 1);
	const int64_t *w = n->shape.d;
	int at[5] = { rvar(L, 0), idx[2], idx[3], idx[1], idx[0] };
	ir_shape ps = { 5, { nb, w[2], w[3], w[1], w[0] } };
	return kir_load(L->k, L->p, pb, linearize(L, at, &ps));
}

/* out[t, r..] = sum over idx positions k with idx[k] == t of a[k, r..]. */
static int scatter_body(lower *L, const ir_node *n, const int *idx)
{
	const ir_shape *is = &N(L, n->in[1])->shape;
	int ii[IR_MAXDIM], ai[IR_MAXDIM];
	set_reduction(L, is->d, is->rank);
	for (int r = 0; r < is->rank; r++)
		ii[r] = ai[r] = rvar(L, r);
	for (int r = 1; r < n->shape.rank; r++)
		ai[is->rank + r - 1] = idx[r];
	int row = kir_op(L->k, KT_IDX, OP_cast, value_at(L, n->in[1], ii), -1, -1);
	int hit = iop(L, OP_eq, row, idx[0]);
	return kir_op(L->k, kir_type_of(n->dtype), OP_select, hit, value_at(L, n->in[0], ai),
	              kir_const(L->k, kir_type_of(n->dtype), 0));
}

/* Node n read at idx visits each of its elements once over the kernel's
 * domain: the same shape at the kernel's own index, or one element read
 * by a kernel of one point (a scalar loss from a sum that keeps dims). */
static int is_identity_index(lower *L, const ir_node *n, const int *idx)
{
	if (ir_numel(&n->shape) == 1 && ir_numel(&N(L, L->root)->shape) == 1)
		return 1;
	if (!ir_shape_eq(&n->shape, &N(L, L->root)->shape))
		return 0;
	for (int r = 0; r < n->shape.rank; r++)
		if (idx[r] != L->dim_var[r])
			return 0;
	return 1;
}

/* Output channels in the vectors. A convolution (or a dense input
 * gradient) with channels enough is computed channels-last, T[n, y, x, o],
 * by a side kernel whose last var is the output channel: its weight loads
 * are whole vectors, its image values broadcasts, and no vector is partial
 * (vectors over the output width would leave 28 = 16 + 12, or 7 of 8
 * lanes). The kernel being built reads T back at its own index: its
 * epilogue transposes. On models/unet.lua's whole train step this beat
 * both vectors over the width everywhere and channel vectors for 7-wide
 * images only, though one 14x14 convolution alone is faster with its
 * width in the vectors (docs/performance.md has the figures and how they
 * were measured). A 1x1 convolution keeps its width in the vectors: it
 * gains nothing from channel vectors and saves the transpose
 * (bench/conv_bench 64 192 64 28 1: 23 ms with it, 17 without). */
enum { CHANNEL_VECTORS_MIN = 32, CHANNEL_VECTORS_STEP = 16 };

static int channels_in_vectors(lower *L, const ir_node *n, layout *glay)
{
	int64_t out = n->shape.d[1];
	if (out < CHANNEL_VECTORS_MIN || out % CHANNEL_VECTORS_STEP)
		return 0;
	if (n->op == OP_conv2d) {
		const int64_t *taps = &N(L, n->in[1])->shape.d[2];
		return taps[0] > 1 || taps[1] > 1;
	}
	return n->op == OP_conv2d_grad_input && grad_input_layout(L, n, glay);
}

static int channels_last_conv(lower *L, const ir_node *n, const int *idx, const layout *glay)
{
	const int64_t *d = n->shape.d;
	kir_kernel k = { .rank = 4, .ext = { d[0], d[2], d[3], d[1] } };
	lower S;
	side_begin(L, &S, &k);
	S.channel_vectors = 1;
	int v[4];
	for (int r = 0; r < 4; r++) {
		v[r] = k.ext[r] == 1 ? I(&S, 0) : kir_var(&k, r);
		k.tile_hint[r] = 1;
	}
	int at[4] = { v[0], v[3], v[1], v[2] };
	int body = n->op == OP_conv2d ? conv_body(&S, n, at) : conv_grad_input_dense(&S, n, at, glay);
	int acc = kir_acc(&k, KT_F32, kir_acc_add(&k, OP_add, body));
	if (side_end(L, &S, &k) < 0)
		return kir_const(L->k, KT_F32, 0);
	ir_node t = *n;
	t.dtype = RT_F32;
	t.shape = (ir_shape){ 4, { d[0], d[2], d[3], d[1] } };
	int tb = add_buffer(L, KB_TEMP, &t, NULL);
	kir_store_add(&k, tb, linearize(&S, v, &t.shape), acc);
	append_kernel(L, &k, ir_ops[n->op].name, ir_ops[n->op].name);
	int back[4] = { idx[0], idx[2], idx[3], idx[1] };
	return kir_load(L->k, L->p, tb, linearize(L, back, &t.shape));
}

/* The value a reduction or contraction accumulates, over its reduction vars. */
static int reduction_body(lower *L, const ir_node *n, const int *idx)
{
	switch (n->op) {
	case OP_reduce_sum: case OP_reduce_max: return reduce_body(L, n, idx);
	case OP_matmul: return matmul_body(L, n, idx);
	case OP_conv2d: return conv_body(L, n, idx);
	case OP_conv2d_grad_input: return conv_grad_input_body(L, n, idx);
	case OP_conv2d_grad_weight: return conv_grad_weight_body(L, n, idx);
	case OP_scatter_add: return scatter_body(L, n, idx);
	IR_CASES_LEAF: IR_CASES_ELEMWISE: IR_CASES_MOVE: IR_CASES_RANDOM: case OP_gather: break;
	}
	IR_NO_CASE(n->op);
}

/* A reduction or contraction, fused as this kernel's reduction if it can be. */
static int reduction_value(lower *L, int node, const int *idx)
{
	const ir_node *n = N(L, node);
	if (L->red_node >= 0 || L->in_contraction || !is_identity_index(L, n, idx))
		return want_materialized(L, node);
	L->red_node = node;
	int joint = n->op == OP_reduce_sum || n->op == OP_reduce_max ? joint_reduction(L, n) : -1;
	if (joint >= 0)
		return joint;
	layout glay;
	if (channels_in_vectors(L, n, &glay))
		return channels_last_conv(L, n, idx, &glay);
	int contraction = (ir_ops[n->op].flags & CONTRACT) != 0;
	L->in_contraction = contraction;
	L->in_reduction = 1;
	int body = reduction_body(L, n, idx);
	L->in_contraction = L->in_reduction = 0;
	int acc = kir_acc_add(L->k, n->op == OP_reduce_max ? OP_max : OP_add, body);
	return kir_acc(L->k, kir_type_of(n->dtype), acc);
}

/* Inside a contraction's operands only index remaps and casts may inline. */
static int cheap_in_contraction(const ir_node *n)
{
	return (ir_ops[n->op].flags & MOVE) || n->op == OP_cast || n->op == OP_fill ||
	       n->op == OP_gather;
}

static int compute_value(lower *L, int node, const int *idx)
{
	const ir_node *n = N(L, node);
	if (n->op == OP_fill)
		return kir_const(L->k, kir_type_of(n->dtype), n->a.fill.value);
	if ((L->in_contraction && !cheap_in_contraction(n)) || (L->in_reduction && n->op == OP_concat))
		return want_materialized(L, node);
	switch (n->op) {
	IR_CASES_REDUCE: IR_CASES_CONTRACT: case OP_scatter_add: return reduction_value(L, node, idx);
	IR_CASES_ELEMWISE: return elemwise_value(L, n, idx);
	case OP_reshape: return reshape_value(L, n, idx);
	case OP_pad: return pad_value(L, n, idx);
	case OP_concat: return concat_value(L, n, idx);
	case OP_permute: case OP_broadcast: case OP_slice: case OP_upsample2d:
		return movement_value(L, n, idx);
	case OP_gather: return gather_value(L, n, idx);
	IR_CASES_RANDOM: return random_value(L, n, idx);
	IR_CASES_LEAF: break;           /* stored (or a fill, above) */
	}
	IR_NO_CASE(n->op);
}

/* A kernel inlines a chain of at most FUSE_DEPTH nodes: value_at recurses
 * once per node, so a deeper chain (20,000 fused ops of a generated
 * script) is stored at that depth and read back, bounding the C stack. */
enum { FUSE_DEPTH = 1000 };

static int value_at(lower *L, int node, const int *idx)
{
	const ir_node *n = N(L, node);
	if (L->buf_of[node] >= 0 && node != L->root)
		return load_node(L, node, idx);
	for (int m = 0; m < L->nmemo; m++)
		if (L->memo[m].node == node &&
		    !memcmp(L->memo[m].idx, idx, (size_t)n->shape.rank * sizeof *idx))
			return L->memo[m].expr;
	if (L->depth >= FUSE_DEPTH)
		return want_materialized(L, node);
	L->depth++;
	int v = compute_value(L, node, idx);
	L->depth--;
	L->memo = ir_grow(L->memo, L->nmemo, &L->memocap, sizeof *L->memo);
	L->memo[L->nmemo] = (memo){ node, n->shape.rank, { 0 }, v };
	memcpy(L->memo[L->nmemo].idx, idx, (size_t)n->shape.rank * sizeof *idx);
	L->nmemo++;
	if (!strstr(L->ops, ir_ops[n->op].name) && strlen(L->ops) + 16 < sizeof L->ops) {
		strcat(L->ops, L->ops[0] ? " " : "");
		strcat(L->ops, ir_ops[n->op].name);
	}
	return v;
}

/* --- kernels ----------------------------------------------------------------- */

static double kernel_bytes(const kir_program *p, const kir_kernel *k)
{
	double bytes = 0;
	char seen[4096] = { 0 };
	for (int i = 0; i < k->nx; i++)
		if (k->x[i].kind == KX_LOAD && k->x[i].buf < 4096 && !seen[k->x[i].buf]) {
			seen[k->x[i].buf] = 1;
			bytes += (double)p->buf[k->x[i].buf].numel * (double)rt_dtype_size(p->buf[k->x[i].buf].dtype);
		}
	for (int s = 0; s < k->nst; s++)
		bytes += (double)p->buf[k->st[s].buf].numel * (double)rt_dtype_size(p->buf[k->st[s].buf].dtype);
	return bytes;
}

/* FLOPs: one per arithmetic expression per point it runs at (the
 * reduction body per reduction point), multiply-adds as two; a kernel of
 * segments, its segments'. */
static double kernel_flops(const kir_kernel *k)
{
	if (k->nseg) {
		double flops = 0;
		for (int s = 0; s < k->nseg; s++) {
			kir_kernel v = kir_segment_view(k, s);
			flops += kernel_flops(&v);
		}
		return flops;
	}
	double outer = 1, inner = 1, per_inner = 0, per_outer = 0;
	for (int v = 0; v < k->rank; v++)
		outer *= (double)k->ext[v];
	for (int v = k->rank; v < k->rank + k->nred; v++)
		inner *= (double)k->ext[v];
	char *in_body = calloc((size_t)k->nx + 1, 1), *used = calloc((size_t)k->nx + 1, 1);
	for (int j = 0; j < k->nacc; j++)
		in_body[k->red_value[j]] = used[k->red_value[j]] = 1;
	for (int s = 0; s < k->nst; s++) {
		in_body[k->st[s].value] |= k->st[s].inner > 0;
		used[k->st[s].value] = used[k->st[s].index] = 1;
	}
	for (int i = k->nx - 1; i >= 0; i--) {
		const kir_expr *e = &k->x[i];
		for (int j = 0; j < 3 && used[i] && e->kind != KX_ACC; j++)
			if ((&e->a)[j] >= 0) {
				in_body[(&e->a)[j]] |= in_body[i];
				used[(&e->a)[j]] = 1;
			}
		if (used[i] && e->kind == KX_OP && e->type == KT_F32)
			*(in_body[i] ? &per_inner : &per_outer) += 1;
	}
	free(in_body);
	free(used);
	return outer * (per_outer + inner * (per_inner + k->nacc));
}

/* 1 when the kernel of `root` will read a convolution computed
 * channels-last (channels_last_conv): the root itself, or one that fuses
 * into it. */
static int reads_channels_last(lower *L, int root)
{
	layout glay;
	for (int id = root; id >= 0; id--) {
		const ir_node *c = N(L, id);
		if ((c->op == OP_conv2d || c->op == OP_conv2d_grad_input) && L->live[id] &&
		    (id == root || (L->sink[id] == root && !L->mat[id])) && channels_in_vectors(L, c, &glay))
			return 1;
	}
	return 0;
}

/* The order of the root's dims as kernel vars (the last is the one backends
 * vectorize). The weight gradient of a convolution runs over (KH, KW, C, O)
 * so that its vectors span output channels, not the 3 taps of a row. A
 * kernel reading a channels-last convolution T[n, y, x, o] runs over
 * (N, H, C, W): the rows of neighbouring channels read the same lines of T. */
static void domain_order(lower *L, int root, int *order)
{
	static const int taps_first[4] = { 2, 3, 1, 0 }, rows_first[4] = { 0, 2, 1, 3 };
	const ir_node *n = N(L, root);
	int transposing = n->shape.rank == 4 && n->op != OP_conv2d_grad_weight && reads_channels_last(L, root);
	for (int r = 0; r < n->shape.rank; r++)
		order[r] = n->op == OP_conv2d_grad_weight ? taps_first[r] : transposing ? rows_first[r] : r;
}

/* Builds the kernel storing node `root` into its buffer; -1 on a conflict
 * (L->conflict names the node to materialize). */
static int build_kernel(lower *L, int root)
{
	const ir_node *n = N(L, root);
	kir_kernel k = { 0 };
	int order[IR_MAXDIM];
	domain_order(L, root, order);
	k.rank = n->shape.rank;
	for (int v = 0; v < k.rank; v++)
		k.ext[v] = n->shape.d[order[v]];
	L->k = &k;
	L->root = root;
	L->red_node = -1;
	L->in_contraction = L->in_reduction = 0;
	L->conflict = -1;
	L->joined = -1;
	L->depth = 0;
	L->nmemo = 0;
	L->ops[0] = 0;
	int idx[IR_MAXDIM];
	for (int v = 0; v < k.rank; v++)       /* a dim of size 1 is index 0, as a broadcast reads it */
		idx[order[v]] = L->dim_var[order[v]] = k.ext[v] == 1 ? I(L, 0) : kir_var(&k, v);
	int v = compute_value(L, root, idx);
	if (L->conflict >= 0) {
		free(k.x);
		free(k.st);
		free(k.seg);
		return -1;
	}
	kir_store_add(&k, L->buf_of[root], linearize(L, idx, &n->shape), v);
	for (int i = 0; i < k.rank + k.nred; i++)
		k.tile_hint[i] = 0;
	if (L->red_node >= 0 && (ir_ops[N(L, L->red_node)->op].flags & CONTRACT))
		for (int r = 0; r < k.rank; r++)
			k.tile_hint[r] = 1;
	append_kernel(L, &k, ir_ops[n->op].name, L->ops[0] ? L->ops : ir_ops[n->op].name);
	return 0;
}

static int add_buffer(lower *L, kir_bufkind kind, const ir_node *n, const char *name)
{
	kir_program *p = L->p;
	p->buf = ir_grow(p->buf, p->nbuf, &p->bufcap, sizeof *p->buf);
	p->buf[p->nbuf] = (kir_buffer){ kind, n->dtype, ir_numel(&n->shape), ir_strdup(L->g, name), 0,
	                                n->data, n->shape };
	return p->nbuf++;
}

static int param_buffer(lower *L, const char *name)
{
	for (int b = 0; b < L->p->nbuf; b++)
		if (L->p->buf[b].kind == KB_PARAM && !strcmp(L->p->buf[b].name, name))
			return b;
	int node = ir_find_param(L->g, name);
	return add_buffer(L, KB_PARAM, N(L, node), name);
}

static const char *output_name(lower *L, int node)
{
	for (int i = 0; i < L->e->noutputs; i++)
		if (L->e->outputs[i].node == node)
			return L->e->outputs[i].name;
	return NULL;
}

/* The buffer of materialized node id: its data for leaves, else an output
 * or a temporary. */
static void assign_buffer(lower *L, int id)
{
	const ir_node *n = N(L, id);
	if (n->op == OP_param)
		L->buf_of[id] = param_buffer(L, n->name);
	else if (n->op == OP_input)
		L->buf_of[id] = add_buffer(L, KB_INPUT, n, n->name);
	else if (n->op == OP_constant)
		L->buf_of[id] = add_buffer(L, KB_CONST, n, NULL);
	else if (output_name(L, id))
		L->buf_of[id] = add_buffer(L, KB_OUTPUT, n, output_name(L, id));
	else
		L->buf_of[id] = add_buffer(L, KB_TEMP, n, NULL);
}

static void count_uses(lower *L)
{
	for (int id = 0; id < L->g->n; id++)
		if (L->live[id])
			for (int k = 0; k < N(L, id)->nin; k++)
				L->uses[N(L, id)->in[k]]++;
	for (int i = 0; i < L->e->noutputs; i++)
		L->uses[L->e->outputs[i].node] += 2;
	for (int i = 0; i < L->e->nupdates; i++)
		L->uses[L->e->updates[i].node] += 2;
}

static int is_root(lower *L, int node)
{
	for (int i = 0; i < L->e->noutputs; i++)
		if (L->e->outputs[i].node == node)
			return 1;
	for (int i = 0; i < L->e->nupdates; i++)
		if (L->e->updates[i].node == node)
			return 1;
	return 0;
}

/* Ops that fuse into their consumer's kernel as index math or arithmetic. */
static int fusable(const ir_node *n)
{
	return (ir_ops[n->op].flags & (ELEMWISE | MOVE)) || n->op == OP_gather;
}

/* sink[id]: the node whose kernel id's value ends up in, following single
 * fusable consumers (id itself when it is a root, used by a non-fusable op,
 * or by several nodes that do not all sink to the same place). */
static int *sinks(lower *L)
{
	int n = L->g->n;
	int *sink = malloc((size_t)n * sizeof *sink), *first = malloc((size_t)n * sizeof *first);
	for (int id = 0; id < n; id++)
		sink[id] = -2, first[id] = -1;      /* -2: no consumer seen yet */
	for (int id = n - 1; id >= 0; id--) {
		if (!L->live[id])
			continue;
		if (sink[id] == -2 || is_root(L, id))
			sink[id] = id;
		for (int k = 0; k < N(L, id)->nin; k++) {
			int in = N(L, id)->in[k];
			int via = fusable(N(L, id)) ? sink[id] : -1;
			sink[in] = sink[in] == -2 ? (via >= 0 ? via : in) : sink[in] == via ? via : in;
		}
	}
	free(first);
	return sink;
}

/* Recomputing a multi-use node in each consumer costs nothing worth a
 * buffer when it is at most REPEAT_MAX cheap arithmetic ops over buffers,
 * fills and movement: say GroupNorm's x - mean, from x and the stored sum
 * (its mean and variance kernels then read x, not a centred copy). */
enum { REPEAT_MAX = 2, REPEAT_DEPTH = 6, TOO_MUCH = 1000 };

static int repeat_cost(lower *L, int id, int depth)
{
	const ir_node *n = N(L, id);
	if (depth > REPEAT_DEPTH || !fusable(n) || n->op == OP_gather ||
	    (ir_ops[n->op].flags & TRANSC))
		return TOO_MUCH;
	int cost = (ir_ops[n->op].flags & ELEMWISE) != 0;
	for (int k = 0; k < n->nin && cost <= REPEAT_MAX; k++) {
		int in = n->in[k];
		if (!L->mat[in] && N(L, in)->op != OP_fill)
			cost += repeat_cost(L, in, depth + 1);
	}
	return cost;
}

/* A node gets its own buffer when it holds data, is a root, was found to
 * need one while building a kernel (forced), or is used by several nodes
 * that do not all fuse into one kernel and cannot simply be recomputed. */
static void mark(lower *L, int id)
{
	const ir_node *n = N(L, id);
	int data_leaf = n->op == OP_param || n->op == OP_input || n->op == OP_constant;
	int scalar_math = (ir_ops[n->op].flags & ELEMWISE) && n->shape.rank == 0;
	int shared = L->uses[id] > 1 && n->op != OP_fill && L->sink[id] == id &&
	             (scalar_math || repeat_cost(L, id, 0) > REPEAT_MAX);
	L->mat[id] = L->live[id] && (data_leaf || shared || L->forced[id] || is_root(L, id));
}

static void drop_kernels_from(kir_program *p, int first)
{
	for (int i = first; i < p->nk; i++) {
		free(p->k[i].x);
		free(p->k[i].st);
		free(p->k[i].seg);
	}
	p->nk = first;
}

/* Builds every kernel in node order. A conflict at node c (it must be
 * materialized after all) only invalidates what was built from c on: those
 * kernels and buffers are dropped, the nodes after c are marked again (a
 * node may now be cheap to recompute from c's buffer) and building resumes
 * at c. */
static void build_all(lower *L)
{
	int *kernels_at = malloc((size_t)L->g->n * sizeof *kernels_at);
	int *buffers_at = malloc((size_t)L->g->n * sizeof *buffers_at);
	for (int id = 0; id < L->g->n; id++) {
		const ir_node *n = N(L, id);
		kernels_at[id] = L->p->nk;
		buffers_at[id] = L->p->nbuf;
		L->buf_of[id] = -1;
		if (!L->live[id] || !L->mat[id])
			continue;
		assign_buffer(L, id);
		int data_leaf = (ir_ops[n->op].flags & LEAF) && n->op != OP_fill;
		if (data_leaf || build_kernel(L, id) == 0)
			continue;
		int c = L->conflict;
		L->forced[c] = 1;
		for (int t = c; t < L->g->n; t++)
			mark(L, t);
		drop_kernels_from(L->p, kernels_at[c]);
		L->p->nbuf = buffers_at[c];
		struct relaid_set *rs = L->relaid;
		while (rs->n > 0 && rs->v[rs->n - 1].buf >= L->p->nbuf)
			rs->n--;
		id = c - 1;
	}
	free(kernels_at);
	free(buffers_at);
}

/* --- roots: outputs and state updates ------------------------------------ */

static int kernel_storing(const kir_program *p, int buf)
{
	for (int n = p->nk - 1; n >= 0; n--)
		for (int s = 0; s < p->k[n].nst; s++)
			if (p->k[n].st[s].buf == buf)
				return n;
	return -1;
}

/* dst[i] = src[i] over shape s: the kernel for roots that are not computed
 * into their own buffer (a param returned as an output, an unsafe update). */
static void copy_kernel(lower *L, int src, int dst, const ir_shape *s)
{
	kir_kernel k = { 0 };
	k.rank = s->rank;
	for (int r = 0; r < s->rank; r++)
		k.ext[r] = s->d[r];
	L->k = &k;
	int idx[IR_MAXDIM];
	for (int r = 0; r < k.rank; r++)
		idx[r] = kir_var(&k, r);
	int lin = linearize(L, idx, s);
	kir_store_add(&k, dst, lin, kir_load(&k, L->p, src, lin));
	append_kernel(L, &k, "copy", "copy");
}

/* Writing param P inside the kernel that computes its next value is safe
 * when the kernel reads P only at the index it stores to and no later
 * kernel reads P's old value. Later readers of the new value then read P. */
static int in_place_safe(lower *L, int node, int pbuf, int kn)
{
	const kir_program *p = L->p;
	if (kn < 0 || p->k[kn].nst != 1 || output_name(L, node))
		return 0;
	const kir_kernel *k = &p->k[kn];
	for (int i = 0; i < k->nx; i++)
		if (k->x[i].kind == KX_LOAD && k->x[i].buf == pbuf && k->x[i].a != k->st[0].index)
			return 0;
	for (int n = kn + 1; n < p->nk; n++)
		for (int i = 0; i < p->k[n].nx; i++)
			if (p->k[n].x[i].kind == KX_LOAD && p->k[n].x[i].buf == pbuf)
				return 0;
	return 1;
}

static void plan_roots(lower *L)
{
	kir_program *p = L->p;
	for (int i = 0; i < L->e->noutputs; i++) {
		int node = L->e->outputs[i].node, b = L->buf_of[node];
		if (p->buf[b].kind == KB_OUTPUT && !strcmp(p->buf[b].name, L->e->outputs[i].name))
			continue;
		int out = add_buffer(L, KB_OUTPUT, N(L, node), L->e->outputs[i].name);
		copy_kernel(L, b, out, &N(L, node)->shape);
	}
	for (int i = 0; i < L->e->nupdates; i++) {
		int node = L->e->updates[i].node, b = L->buf_of[node];
		int pbuf = param_buffer(L, L->e->updates[i].name);
		int kn = p->buf[b].kind == KB_TEMP ? kernel_storing(p, b) : -1;
		if (in_place_safe(L, node, pbuf, kn)) {
			p->k[kn].st[0].buf = pbuf;
			for (int n = kn + 1; n < p->nk; n++)
				for (int x = 0; x < p->k[n].nx; x++)
					if (p->k[n].x[x].kind == KX_LOAD && p->k[n].x[x].buf == b)
						p->k[n].x[x].buf = pbuf;
			kir_buffer_unused(&p->buf[b]);
		} else
			copy_kernel(L, b, pbuf, &N(L, node)->shape);
	}
}

kir_program *kir_lower(ir_graph *g, const ir_entry *e)
{
	kir_program *p = ir_alloc(g, sizeof *p);
	lower L = { .g = g, .e = e, .p = p, .live = ir_entry_live(g, e),
	            .uses = calloc((size_t)g->n + 1, sizeof(int)), .mat = calloc((size_t)g->n + 1, 1),
	            .forced = calloc((size_t)g->n + 1, 1),
	            .buf_of = calloc((size_t)g->n + 1, sizeof(int)),
	            .relaid = &(struct relaid_set){ 0 } };
	p->entry = e->name;
	p->g = g;
	count_uses(&L);
	L.sink = sinks(&L);
	for (int id = 0; id < g->n; id++)
		mark(&L, id);
	build_all(&L);
	plan_roots(&L);
	kir_merge(p);
	kir_plan_memory(p);
	for (int n = 0; n < p->nk; n++) {
		p->k[n].bytes = kernel_bytes(p, &p->k[n]);
		p->k[n].flops = kernel_flops(&p->k[n]);
	}
	free(L.live);
	free(L.uses);
	free(L.mat);
	free(L.forced);
	free(L.sink);
	free(L.buf_of);
	free(L.relaid->v);
	free(L.memo);
	return p;
}
