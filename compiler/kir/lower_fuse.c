/* lower_fuse: the value of a node at an index, as expressions of the
 * kernel being built (lower_impl.h) — where fusion happens.
 *
 * requires: the node tables marked (L->mat, L->buf_of: lower.c), L->k
 *   the kernel being built with its domain vars.
 * establishes: lower_value_at returns the expression of the node's value
 *   at idx: a load when the node has a buffer, else its computation
 *   inlined (elementwise chains, movement as index remaps, a reduction or
 *   contraction as the kernel's one reduction, read at the kernel's own
 *   index: its epilogue). Where the fusion rule (lower.c) forbids
 *   inlining, L->conflict names the node to materialize, and the kernel
 *   is rebuilt. Values are memoized per (node, index). */
#include <stdlib.h>
#include <string.h>

#include "lower_impl.h"

/* Records that node must be materialized after all (the first such node
 * of the kernel); a placeholder value until the kernel is rebuilt. */
int lower_want_materialized(lower *L, int node)
{
	if (L->conflict < 0)
		L->conflict = node;
	return kir_const(L->k, kir_type_of(N(L, node)->dtype), 0);
}

int lower_buffers(lower *L)
{
	if (!L->budget)
		return 0;
	for (const kir_kernel *k = L->k; L->scanned < k->nx; L->scanned++) {
		const kir_expr *e = &k->x[L->scanned];
		if (e->kind != KX_LOAD)
			continue;
		if (e->buf >= L->read_cap) {
			int cap = L->read_cap;
			while (e->buf >= L->read_cap)
				L->read_mark = ir_grow(L->read_mark, L->read_cap, &L->read_cap, sizeof *L->read_mark);
			memset(L->read_mark + cap, 0, (size_t)(L->read_cap - cap) * sizeof *L->read_mark);
		}
		if (L->read_mark[e->buf] != L->mark)
			L->read_mark[e->buf] = L->mark, L->nread++;
	}
	return L->nread;
}

static int load_node(lower *L, int node, const int *idx)
{
	return kir_load(L->k, L->p, L->buf_of[node], lower_linearize(L, idx, &N(L, node)->shape));
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
		v[k] = lower_value_at(L, n->in[k], in);
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
		return kir_load(L->k, L->p, L->buf_of[src], lower_linearize(L, idx, o));
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
			lower_delinearize(L, lower_linearize(L, idx + ro, &gs_out), &gs_in, in + ri);
	}
	return lower_value_at(L, src, in);
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
		return lower_value_at(L, n->in[0], in);
	case OP_broadcast:
		broadcast_index(L, &n->shape, s, idx, in);
		return lower_value_at(L, n->in[0], in);
	case OP_slice:
		for (int r = 0; r < s->rank; r++)
			in[r] = lower_iop(L, OP_add, I(L, n->a.slice.start[r]),
			            lower_iop(L, OP_mul, idx[r], I(L, n->a.slice.step[r])));
		return lower_value_at(L, n->in[0], in);
	case OP_upsample2d:
		memcpy(in, idx, (size_t)n->shape.rank * sizeof *in);
		in[2] = lower_iop(L, OP_div, idx[2], I(L, n->a.upsample.scale));
		in[3] = lower_iop(L, OP_div, idx[3], I(L, n->a.upsample.scale));
		return lower_value_at(L, n->in[0], in);
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
		in[r] = lower_iop(L, OP_sub, idx[r], I(L, lo));
		if (lo || n->a.pad.hi[r]) {
			inside = lower_iop(L, OP_mul, inside, lower_in_range(L, idx[r], lo, lo + s->d[r]));
			in[r] = lower_clamp(L, in[r], 0, s->d[r] - 1);
		}
	}
	kir_type t = kir_type_of(n->dtype);
	int v = lower_value_at(L, n->in[0], in);
	return kir_op(L->k, t, OP_select, inside, v, kir_const(L->k, t, n->a.pad.value));
}

/* concat: a chain of selects on the axis index, last input innermost;
 * inside a joint reduction's segment, the segment's piece itself; as a
 * root built in parts (lower.c), the part's inputs, idx[axis] counted
 * from the part's start. */
static int concat_value(lower *L, const ir_node *n, const int *idx)
{
	if (L->joined >= 0 && n == N(L, L->joined))
		return lower_value_at(L, n->in[L->piece], idx);
	int parted = L->part_end > 0 && L->root >= 0 && n == N(L, L->root);
	int first = parted ? L->part_first : 0, last = parted ? L->part_end : n->nin;
	int ax = n->a.concat.axis, result = -1, in[IR_MAXDIM];
	int64_t end = 0;
	for (int k = first; k < last; k++)
		end += N(L, n->in[k])->shape.d[ax];
	for (int k = last - 1; k >= first; k--) {
		int64_t len = N(L, n->in[k])->shape.d[ax];
		memcpy(in, idx, (size_t)n->shape.rank * sizeof *in);
		in[ax] = lower_clamp(L, lower_iop(L, OP_sub, idx[ax], I(L, end - len)), 0, len - 1);
		int v = lower_value_at(L, n->in[k], in);
		result = result < 0 ? v
		       : kir_op(L->k, kir_type_of(n->dtype), OP_select,
		                lower_iop(L, OP_lt, idx[ax], I(L, end)), v, result);
		end -= len;
	}
	return result;
}

static int index_from(lower *L, int value, int64_t rows)
{
	int i = kir_op(L->k, KT_IDX, OP_cast, value, -1, -1);
	return lower_clamp(L, i, 0, rows - 1);
}

/* gather: table rows picked by a (clamped) i32 index. */
static int gather_value(lower *L, const ir_node *n, const int *idx)
{
	const ir_shape *ts = &N(L, n->in[0])->shape, *is = &N(L, n->in[1])->shape;
	int in[IR_MAXDIM];
	int row = index_from(L, lower_value_at(L, n->in[1], idx), ts->d[0]);
	in[0] = row;
	for (int r = 1; r < ts->rank; r++)
		in[r] = idx[is->rank + r - 1];
	return lower_value_at(L, n->in[0], in);
}

/* Element shard * numel + (idx linearized) of the draw's stream; a
 * constant shard (one process: a fill of 0) folds away. */
static int random_value(lower *L, const ir_node *n, const int *idx)
{
	int none[1] = { 0 };
	int s = lower_value_at(L, n->in[2], none);
	const kir_expr *x = &L->k->x[s];
	int shard = x->kind == KX_CONST ? I(L, (int64_t)x->value) : kir_cast(L->k, KT_IDX, s, RT_F32);
	int first = lower_iop(L, OP_mul, shard, I(L, ir_numel(&n->shape)));
	int elem = lower_iop(L, OP_add, first, lower_linearize(L, idx, &n->shape));
	int seed = lower_value_at(L, n->in[0], none), step = lower_value_at(L, n->in[1], none);
	return kir_random(L->k, n->op, elem, seed, step, n->a.rng.stream);
}

/* --- reductions and contractions (the kernel's one reduction; merge.c may
 *     put several reductions over one domain into one kernel later) ----- */

/* Reduction var j (after set_reduction); index 0 when its extent is 1. */
int lower_rvar(lower *L, int j)
{
	int v = L->k->rank + j;
	return L->k->ext[v] == 1 ? I(L, 0) : kir_var(L->k, v);
}

void lower_set_reduction(lower *L, const int64_t *ext, int n)
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
	lower_set_reduction(L, ext, nr);
	for (int r = 0; r < s->rank; r++)
		in[r] = idx[r];
	for (int j = 0; j < nr; j++) {
		ir_shape run = { last[j] - first[j] + 1, { 0 } };
		for (int r = first[j]; r <= last[j]; r++)
			run.d[r - first[j]] = s->d[r];
		lower_delinearize(L, lower_rvar(L, j), &run, &in[first[j]]);
	}
	return lower_value_at(L, n->in[0], in);
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
		k->seg[s].red_value[0] = lower_value_at(L, n->in[0], idx);
	}
	L->joined = -1;
	L->nmemo = 0;
	lower_set_reduction(L, &total, 1);
	int acc = kir_acc_add(k, n->op == OP_reduce_max ? OP_max : OP_add, k->seg[0].red_value[0]);
	/* Under a budget of buffers split_args parts a joint reduction into
	 * kernels of whole segments, each storing its totals too: a segment
	 * that reads as many buffers as the budget cannot be one, so the
	 * concat is stored (in parts) and summed as a plain reduction. */
	for (int s = 0; L->budget && s < k->nseg; s++) {
		kir_kernel v = kir_segment_view(k, s);
		if (kir_buffer_count(&v, L->p->nbuf) >= L->budget)
			return lower_want_materialized(L, concat);
	}
	return kir_acc(k, kir_type_of(n->dtype), acc);
}

int lower_mul(lower *L, int a, int b)
{
	return kir_op(L->k, KT_F32, OP_mul, a, b, -1);
}

static int matmul_body(lower *L, const ir_node *n, const int *idx)
{
	int r = n->shape.rank, ia[IR_MAXDIM], ib[IR_MAXDIM];
	int64_t K = N(L, n->in[0])->shape.d[r - 1];
	lower_set_reduction(L, &K, 1);
	memcpy(ia, idx, (size_t)r * sizeof *ia);
	memcpy(ib, idx, (size_t)r * sizeof *ib);
	ia[r - 1] = lower_rvar(L, 0);
	ib[r - 2] = lower_rvar(L, 0);
	return lower_mul(L, lower_value_at(L, n->in[0], ia), lower_value_at(L, n->in[1], ib));
}

/* out[t, r..] = sum over idx positions k with idx[k] == t of a[k, r..]. */
static int scatter_body(lower *L, const ir_node *n, const int *idx)
{
	const ir_shape *is = &N(L, n->in[1])->shape;
	int ii[IR_MAXDIM], ai[IR_MAXDIM];
	lower_set_reduction(L, is->d, is->rank);
	for (int r = 0; r < is->rank; r++)
		ii[r] = ai[r] = lower_rvar(L, r);
	for (int r = 1; r < n->shape.rank; r++)
		ai[is->rank + r - 1] = idx[r];
	int row = kir_op(L->k, KT_IDX, OP_cast, lower_value_at(L, n->in[1], ii), -1, -1);
	int hit = lower_iop(L, OP_eq, row, idx[0]);
	return kir_op(L->k, kir_type_of(n->dtype), OP_select, hit, lower_value_at(L, n->in[0], ai),
	              kir_const(L->k, kir_type_of(n->dtype), 0));
}

/* Node n read at idx visits each of its elements once over the kernel's
 * domain: the same shape at the kernel's own index, or one element read
 * by a kernel of one point (a scalar loss from a sum that keeps dims). */
int lower_fuses_into(const ir_shape *r, const ir_shape *root)
{
	return ir_shape_eq(r, root) || (ir_numel(r) == 1 && ir_numel(root) == 1);
}

static int is_identity_index(lower *L, const ir_node *n, const int *idx)
{
	if (ir_numel(&n->shape) == 1 && ir_numel(&N(L, L->root)->shape) == 1)
		return 1;
	if (!lower_fuses_into(&n->shape, &N(L, L->root)->shape))
		return 0;
	for (int r = 0; r < n->shape.rank; r++)
		if (idx[r] != L->dim_var[r])
			return 0;
	return 1;
}

/* The value a reduction or contraction accumulates, over its reduction vars. */
static int reduction_body(lower *L, const ir_node *n, const int *idx)
{
	switch (n->op) {
	case OP_reduce_sum: case OP_reduce_max: return reduce_body(L, n, idx);
	case OP_matmul: return matmul_body(L, n, idx);
	case OP_conv2d: return lower_conv_body(L, n, idx);
	case OP_conv2d_grad_input: return lower_conv_grad_input_body(L, n, idx);
	case OP_conv2d_grad_weight: return lower_conv_grad_weight_body(L, n, idx);
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
		return lower_want_materialized(L, node);
	L->red_node = node;
	int joint = n->op == OP_reduce_sum || n->op == OP_reduce_max ? joint_reduction(L, n) : -1;
	if (joint >= 0)
		return joint;
	kir_algorithm algorithm = lower_winograd_algorithm(L, n);
	if (algorithm != KIR_ALGO_DIRECT)
		return lower_winograd_conv(L, n, algorithm, idx);
	layout glay;
	if (lower_channels_in_vectors(L, n, &glay))
		return lower_channels_last_conv(L, n, idx, &glay);
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

int lower_compute_value(lower *L, int node, const int *idx)
{
	const ir_node *n = N(L, node);
	if (n->op == OP_fill)
		return kir_const(L->k, kir_type_of(n->dtype), n->a.fill.value);
	if ((L->in_contraction && !cheap_in_contraction(n)) || (L->in_reduction && n->op == OP_concat))
		return lower_want_materialized(L, node);
	/* A reduction over no axes (x:sum() of a scalar) is its input: as a
	 * reduction it had accumulators but no reduction vars, which a merge
	 * then put inside another kernel's loop, summing it there. */
	if ((ir_ops[n->op].flags & REDUCE) && !n->a.reduce.axes)
		return lower_value_at(L, n->in[0], idx);
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

int lower_value_at(lower *L, int node, const int *idx)
{
	const ir_node *n = N(L, node);
	if (L->buf_of[node] >= 0 && node != L->root)
		return load_node(L, node, idx);
	for (int m = 0; m < L->nmemo; m++)
		if (L->memo[m].node == node &&
		    !memcmp(L->memo[m].idx, idx, (size_t)n->shape.rank * sizeof *idx))
			return L->memo[m].expr;
	if (L->depth >= FUSE_DEPTH)
		return lower_want_materialized(L, node);
	int before = lower_buffers(L);
	L->depth++;
	int v = lower_compute_value(L, node, idx);
	L->depth--;
	L->memo = ir_grow(L->memo, L->nmemo, &L->memocap, sizeof *L->memo);
	L->memo[L->nmemo] = (memo){ node, n->shape.rank, { 0 }, v, lower_buffers(L) - before };
	memcpy(L->memo[L->nmemo].idx, idx, (size_t)n->shape.rank * sizeof *idx);
	L->nmemo++;
	if (!strstr(L->ops, ir_ops[n->op].name) && strlen(L->ops) + 16 < sizeof L->ops) {
		strcat(L->ops, L->ops[0] ? " " : "");
		strcat(L->ops, ir_ops[n->op].name);
	}
	return v;
}