/* lower_conv: convolutions and their gradients as contractions
 * (lower_impl.h).
 *
 * requires: called from lower_fuse.c for the kernel's one reduction.
 * establishes: the kernel's reduction vars and the product it sums; the
 *   side kernels it reads (operand copies, a channels-last convolution,
 *   weight-gradient partial sums), appended to the program ahead of the
 *   kernel being built, each copy made once per lowering.
 *
 * A convolution reads its operands through copies made once, each by a
 * kernel of its own ahead of the kernel being built: zero-padded (and
 * spread by a stride), so that the contraction needs no bounds tests (its
 * loads stay plain vector loads and its products plain multiply-adds), or
 * permuted (channels-last, a weight with its output channel last), so that
 * vectors span channels. */
#include <stdlib.h>
#include <string.h>

#include "lower_impl.h"

#define DENSE { 1, 1 }
#define AS_IS { 0, 1, 2, 3 }
static const layout channels_last = { { 0 }, DENSE, { 0, 2, 3, 1 } };   /* (N, H, W, C) */
static const layout first_dim_last = { { 0 }, DENSE, { 1, 2, 3, 0 } };  /* (C, KH, KW, O) */

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
	int t = lower_iop(L, OP_sub, v, I(L, before));
	int tc = lower_clamp(L, t, 0, span - 1);
	*inside = lower_iop(L, OP_mul, *inside, lower_in_range(L, t, 0, span));
	if (s == 1)
		return tc;
	*inside = lower_iop(L, OP_mul, *inside, lower_iop(L, OP_eq, kir_mod(L->k, tc, I(L, s)), I(L, 0)));
	return lower_iop(L, OP_div, tc, I(L, s));
}

static int same_layout(const layout *a, const layout *b)
{
	return !memcmp(a->perm, b->perm, sizeof a->perm) && !memcmp(a->pad, b->pad, sizeof a->pad) &&
	       !memcmp(a->spread, b->spread, sizeof a->spread);
}

void lower_side_begin(lower *L, lower *S, kir_kernel *k)
{
	*S = *L;
	S->k = k, S->root = -1, S->red_node = -1, S->in_contraction = 1, S->in_reduction = 0, S->conflict = -1;
	S->memo = NULL, S->nmemo = S->memocap = 0, S->ops[0] = 0;
	/* its own count of buffers, against the target's limit */
	S->read_mark = NULL, S->read_cap = 0, S->mark = 1, S->nread = S->scanned = 0;
}

int lower_f32_temp(lower *L, const ir_node *n, const ir_shape *s)
{
	ir_node t = *n;
	t.dtype = RT_F32;
	t.shape = *s;
	return lower_add_buffer(L, KB_TEMP, &t, NULL);
}

int lower_side_end(lower *L, lower *S, kir_kernel *k)
{
	/* Under a limit of buffers a kernel, a side kernel that inlines more
	 * than it may take with the temporary it stores (a convolution's
	 * operand that is a concat of many) has its widest fused node stored
	 * first, as a kernel of the lowering's own does (build_part). */
	if (S->conflict < 0 && S->budget && lower_buffers(S) + 1 > S->budget)
		S->conflict = lower_widest_fused(S, S->budget);
	free(S->memo);
	free(S->read_mark);
	if (S->conflict < 0)
		return 0;
	L->conflict = S->conflict;
	kir_kernel_free(k);
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
	lower_side_begin(L, &S, &k);
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
	int v = lower_value_at(&S, node, at);
	if (k.x[inside].kind != KX_CONST)
		v = kir_op(&k, ty, OP_select, inside, v, kir_const(&k, ty, 0));
	if (lower_side_end(L, &S, &k) < 0)
		return -1;
	int b = lower_add_buffer(L, KB_TEMP, &t, NULL);
	kir_store_add(&k, b, lower_linearize(&S, to, &t.shape), v);
	int permuted = lay->perm[0] != 0 || lay->perm[1] != 1;
	lower_append_kernel(L, &k, permuted ? "permute" : "zero_pad", permuted ? "permute" : "pad");
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

int lower_relaid_value(lower *L, int node, const layout *lay, int nn, int c, int y, int x)
{
	ir_shape s = relaid_shape(N(L, node)->shape.d, lay);
	int b = relaid_buffer(L, node, lay);
	if (b < 0)
		return kir_const(L->k, KT_F32, 0);
	int coord[4] = { nn, c, y, x }, at[4];
	for (int k = 0; k < 4; k++)
		at[k] = coord[lay->perm[k]];
	return kir_load(L->k, L->p, b, lower_linearize(L, at, &s));
}

/* x[n, c, y*s + i - p, x*s + j - p], zero outside (the padding): read
 * from x's zero-padded copy, or x itself when the convolution has no
 * padding (every tap then lies inside). */
static int conv_input(lower *L, const ir_node *conv, int nn, int c, int y, int x, int i, int j)
{
	const ir_attrs *a = &conv->a;
	layout lay = { { a->conv.pad[0], a->conv.pad[1], a->conv.pad[2], a->conv.pad[3] }, DENSE, AS_IS };
	int py = lower_iop(L, OP_add, lower_iop(L, OP_mul, y, I(L, a->conv.stride[0])), i);
	int px = lower_iop(L, OP_add, lower_iop(L, OP_mul, x, I(L, a->conv.stride[1])), j);
	if (is_plain(&lay)) {
		int at[4] = { nn, c, py, px };
		return lower_value_at(L, conv->in[0], at);
	}
	return lower_relaid_value(L, conv->in[0], &lay, nn, c, py, px);
}

/* Weight w[o, c, i, j] of convolution node n (or its input gradient). In
 * a kernel whose vectors span the output channels, read through a copy
 * with them last: (C, KH, KW, O) for a convolution, (O, KH, KW, C) for an
 * input gradient (whose output channel is c). */
static int conv_weight(lower *L, const ir_node *n, int o, int c, int i, int j)
{
	int at[4] = { o, c, i, j };
	if (!L->channel_vectors)
		return lower_value_at(L, n->in[1], at);
	return lower_relaid_value(L, n->in[1], n->op == OP_conv2d ? &first_dim_last : &channels_last, o, c, i, j);
}

int lower_conv_body(lower *L, const ir_node *n, const int *idx)
{
	const ir_shape *w = &N(L, n->in[1])->shape;
	int64_t ext[3] = { w->d[1], w->d[2], w->d[3] };
	lower_set_reduction(L, ext, 3);
	int c = lower_rvar(L, 0), i = lower_rvar(L, 1), j = lower_rvar(L, 2);
	int xv = conv_input(L, n, idx[0], c, idx[2], idx[3], i, j);
	return lower_mul(L, xv, conv_weight(L, n, idx[1], c, i, j));
}

/* dL/dx[n,c,h,w] as a stride-1 convolution with the flipped kernel:
 * sum_o,i,j gp[n, o, h + KH-1-i, w + KW-1-j] w[o, c, i, j], gp being g
 * spread by the stride (zeros between) and padded by K-1-p before. */
static int conv_grad_input_dense(lower *L, const ir_node *n, const int *idx, const layout *lay)
{
	const ir_shape *w = &N(L, n->in[1])->shape;
	int64_t ext[3] = { w->d[0], w->d[2], w->d[3] };
	lower_set_reduction(L, ext, 3);
	int o = lower_rvar(L, 0), i = lower_rvar(L, 1), j = lower_rvar(L, 2);
	int y = lower_iop(L, OP_sub, lower_iop(L, OP_add, idx[2], I(L, w->d[2] - 1)), i);
	int x = lower_iop(L, OP_sub, lower_iop(L, OP_add, idx[3], I(L, w->d[3] - 1)), j);
	int gv = lower_relaid_value(L, n->in[0], lay, idx[0], o, y, x);
	return lower_mul(L, gv, conv_weight(L, n, o, idx[1], i, j));
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
int lower_conv_grad_input_body(lower *L, const ir_node *n, const int *idx)
{
	const ir_shape *w = &N(L, n->in[1])->shape, *g = &N(L, n->in[0])->shape;
	layout lay;
	if (grad_input_layout(L, n, &lay))
		return conv_grad_input_dense(L, n, idx, &lay);
	int64_t ext[3] = { w->d[0], w->d[2], w->d[3] };
	lower_set_reduction(L, ext, 3);
	int o = lower_rvar(L, 0), i = lower_rvar(L, 1), j = lower_rvar(L, 2);
	int src[2], ok = I(L, 1);
	for (int d = 0; d < 2; d++) {
		int t = lower_iop(L, OP_sub, lower_iop(L, OP_add, idx[2 + d], I(L, n->a.conv.pad[2 * d])), d ? j : i);
		int tc = lower_iop(L, OP_max, t, I(L, 0));
		int s = n->a.conv.stride[d];
		int q = lower_iop(L, OP_div, tc, I(L, s));
		ok = lower_iop(L, OP_mul, ok, lower_iop(L, OP_le, I(L, 0), t));
		if (s > 1)
			ok = lower_iop(L, OP_mul, ok, lower_iop(L, OP_eq, kir_mod(L->k, tc, I(L, s)), I(L, 0)));
		ok = lower_iop(L, OP_mul, ok, lower_iop(L, OP_lt, q, I(L, g->d[2 + d])));
		src[d] = lower_clamp(L, q, 0, g->d[2 + d] - 1);
	}
	int gi[4] = { idx[0], o, src[0], src[1] }, wi[4] = { o, idx[1], i, j };
	/* the select on g, which does not depend on the output channel, as
	 * conv_input's on x: a tile over channels shares it, and the product
	 * stays one multiply-add */
	int gv = kir_op(L->k, KT_F32, OP_select, ok, lower_value_at(L, n->in[0], gi), kir_const(L->k, KT_F32, 0));
	return lower_mul(L, gv, lower_value_at(L, n->in[1], wi));
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
	lower_set_reduction(L, ext, 3);
	int b = lower_iop(L, OP_add, image0, lower_rvar(L, 0)), y = lower_rvar(L, 1), x = lower_rvar(L, 2);
	int xv = conv_input(L, n, b, c, y, x, i, j);
	return lower_mul(L, xv, lower_relaid_value(L, n->in[1], &channels_last, b, o, y, x));
}

/* The partials kernel over (block, i, j, c, o) for weight gradient n; its
 * buffer, or -1 after a conflict. */
static int grad_weight_partials(lower *L, const ir_node *n, int64_t nb)
{
	const int64_t *w = n->shape.d, per = N(L, n->in[1])->shape.d[0] / nb;
	kir_kernel k = { .rank = 5, .ext = { nb, w[2], w[3], w[1], w[0] } };
	lower S;
	lower_side_begin(L, &S, &k);
	int v[5];
	for (int r = 0; r < 5; r++) {
		v[r] = k.ext[r] == 1 ? I(&S, 0) : kir_var(&k, r);
		k.tile_hint[r] = 1;
	}
	int body = grad_weight_product(&S, n, v[4], v[3], v[1], v[2], lower_iop(&S, OP_mul, v[0], I(&S, per)), per);
	int acc = kir_acc(&k, KT_F32, kir_acc_add(&k, OP_add, body));
	if (lower_side_end(L, &S, &k) < 0)
		return -1;
	ir_shape ps = { 5, { nb, w[2], w[3], w[1], w[0] } };
	int pb = lower_f32_temp(L, n, &ps);
	kir_store_add(&k, pb, lower_linearize(&S, v, &ps), acc);
	lower_append_kernel(L, &k, "conv2d_grad_weight", "conv2d_grad_weight");
	return pb;
}

/* dL/dw in blocks of images (schedule_image_blocks): one block sums at
 * once; more read the partials kernel's P[block, i, j, c, o] and sum the
 * blocks in block order (the same numbers on every run and device). */
int lower_conv_grad_weight_body(lower *L, const ir_node *n, const int *idx)
{
	int64_t images = N(L, n->in[1])->shape.d[0];
	int64_t nb = schedule_image_blocks(L->target, images, ir_numel(&n->shape));
	if (nb == 1)
		return grad_weight_product(L, n, idx[0], idx[1], idx[2], idx[3], I(L, 0), images);
	int pb = grad_weight_partials(L, n, nb);
	if (pb < 0)
		return kir_const(L->k, KT_F32, 0);
	lower_set_reduction(L, &nb, 1);
	const int64_t *w = n->shape.d;
	int at[5] = { lower_rvar(L, 0), idx[2], idx[3], idx[1], idx[0] };
	ir_shape ps = { 5, { nb, w[2], w[3], w[1], w[0] } };
	return kir_load(L->k, L->p, pb, lower_linearize(L, at, &ps));
}

/* Whether n runs channels-last (schedule_channels_last; not when it runs
 * by Winograd, lower_winograd.c), and for an
 * input gradient the layout of g it reads then (*glay). */
int lower_channels_in_vectors(lower *L, const ir_node *n, layout *glay)
{
	if ((n->op != OP_conv2d && n->op != OP_conv2d_grad_input) ||
	    lower_winograd_algorithm(L, n) != KIR_ALGO_DIRECT)
		return 0;
	const int64_t *taps = &N(L, n->in[1])->shape.d[2];
	if (!schedule_channels_last(L->target, n->op, n->shape.d[1], taps))
		return 0;
	return n->op == OP_conv2d || grad_input_layout(L, n, glay);
}

int lower_channels_last_conv(lower *L, const ir_node *n, const int *idx, const layout *glay)
{
	const int64_t *d = n->shape.d;
	kir_kernel k = { .rank = 4, .ext = { d[0], d[2], d[3], d[1] } };
	lower S;
	lower_side_begin(L, &S, &k);
	S.channel_vectors = 1;
	int v[4];
	for (int r = 0; r < 4; r++) {
		v[r] = k.ext[r] == 1 ? I(&S, 0) : kir_var(&k, r);
		k.tile_hint[r] = 1;
	}
	int at[4] = { v[0], v[3], v[1], v[2] };
	int body = n->op == OP_conv2d ? lower_conv_body(&S, n, at) : conv_grad_input_dense(&S, n, at, glay);
	int acc = kir_acc(&k, KT_F32, kir_acc_add(&k, OP_add, body));
	if (lower_side_end(L, &S, &k) < 0)
		return kir_const(L->k, KT_F32, 0);
	ir_shape ts = { 4, { d[0], d[2], d[3], d[1] } };
	int tb = lower_f32_temp(L, n, &ts);
	kir_store_add(&k, tb, lower_linearize(&S, v, &ts), acc);
	lower_append_kernel(L, &k, ir_ops[n->op].name, ir_ops[n->op].name);
	int back[4] = { idx[0], idx[2], idx[3], idx[1] };
	return kir_load(L->k, L->p, tb, lower_linearize(L, back, &ts));
}