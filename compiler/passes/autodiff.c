/* autodiff: reverse-mode differentiation of the graph.
 *
 * requires: a verified graph; y a floating node; seed a node of y's shape
 *   and dtype holding dL/dy (or -1: ones, for any y).
 * establishes: grads[i] is a node of wrt[i]'s shape and dtype holding
 *   dL/dwrt[i] (a zero fill where wrt[i] does not reach y). Only nodes are
 *   appended; existing ones are untouched, so the gradients are ordinary
 *   graph nodes that later passes fuse and plan like any other.
 *
 * The gradient rule of every op is one case of grad_rule() below, written
 * in core ops. Adjoints flow only through nodes that both depend on some
 * wrt[i] and reach y; integer-valued paths (i32, compares) carry none. */
#include <stdlib.h>
#include <string.h>

#include "autodiff.h"

typedef struct {
	ir_graph *g;
	const char *where;      /* of the forward node whose rule is running */
} ad;

/* A builder failure here is a broken invariant, not a user error. */
static int must(ad *d, int id)
{
	if (id < 0) {
		fprintf(stderr, "ddpmc: internal error in autodiff: %s\n", d->g->err);
		abort();
	}
	return id;
}

static const ir_node *node(ad *d, int id)
{
	return &d->g->nodes[id];
}

static int op1(ad *d, ir_opcode op, int a)
{
	return must(d, ir_add(d->g, op, &a, 1, NULL, NULL, RT_F32, d->where));
}

static int op2(ad *d, ir_opcode op, int a, int b)
{
	int in[2] = { a, b };
	return must(d, ir_add(d->g, op, in, 2, NULL, NULL, RT_F32, d->where));
}

static int with(ad *d, ir_opcode op, const int *in, int nin, const ir_attrs *a,
                const ir_shape *s, rt_dtype dt)
{
	return must(d, ir_add(d->g, op, in, nin, a, s, dt, d->where));
}

static int scalar(ad *d, double v, rt_dtype dt)
{
	ir_shape s = { 0 };
	return must(d, ir_fill(d->g, v, dt, &s, d->where));
}

static int reshape(ad *d, int a, const ir_shape *s)
{
	return with(d, OP_reshape, &a, 1, NULL, s, RT_F32);
}

/* Sums g (broadcast result shape) back to shape s, as numpy broadcasting
 * spread it: over leading dims s lacks and over dims where s has 1. */
static int unbroadcast(ad *d, int g, const ir_shape *to)
{
	const ir_shape *gs = &node(d, g)->shape, want = *to, *s = &want;
	if (ir_shape_eq(gs, s))
		return g;
	ir_attrs a = { 0 };
	int lead = gs->rank - s->rank;
	for (int r = 0; r < gs->rank; r++)
		if (r < lead || (s->d[r - lead] == 1 && gs->d[r] != 1))
			a.reduce.axes |= 1u << r;
	int sum = a.reduce.axes ? with(d, OP_reduce_sum, &g, 1, &a, NULL, RT_F32) : g;
	return reshape(d, sum, s);
}

static int bcast(ad *d, int g, const ir_shape *s)
{
	if (ir_shape_eq(&node(d, g)->shape, s))
		return g;
	return with(d, OP_broadcast, &g, 1, NULL, s, RT_F32);
}

/* Swaps the last two dims. */
static int transpose(ad *d, int a)
{
	ir_attrs at = { 0 };
	int r = node(d, a)->shape.rank;
	for (int i = 0; i < r; i++)
		at.permute.perm[i] = i;
	at.permute.perm[r - 2] = r - 1;
	at.permute.perm[r - 1] = r - 2;
	return with(d, OP_permute, &a, 1, &at, NULL, RT_F32);
}

/* The adjoint of a strided slice along one axis: spreads g's elements to
 * positions start + i*step of a zero tensor of length len on that axis. */
static int unslice_axis(ad *d, int g, int ax, int64_t start, int64_t step, int64_t len)
{
	ir_shape s = node(d, g)->shape;
	int64_t n = s.d[ax];
	if (step > 1) {                       /* interleave step-1 zeros after each */
		ir_shape wide = s;
		memmove(&wide.d[ax + 2], &wide.d[ax + 1], (size_t)(s.rank - ax - 1) * sizeof wide.d[0]);
		wide.rank++;
		wide.d[ax + 1] = 1;
		ir_attrs p = { 0 };
		p.pad.hi[ax + 1] = step - 1;
		int r = reshape(d, g, &wide);
		r = with(d, OP_pad, &r, 1, &p, NULL, RT_F32);
		s.d[ax] = n * step;
		g = reshape(d, r, &s);
		int64_t keep = n * step < len - start ? n * step : len - start;
		if (keep < s.d[ax]) {
			ir_attrs sl = { 0 };
			for (int i = 0; i < s.rank; i++)
				sl.slice.step[i] = 1;
			s.d[ax] = keep;
			g = with(d, OP_slice, &g, 1, &sl, &s, RT_F32);
		}
	}
	ir_attrs p = { 0 };
	p.pad.lo[ax] = start;
	p.pad.hi[ax] = len - start - node(d, g)->shape.d[ax];
	return p.pad.lo[ax] || p.pad.hi[ax] ? with(d, OP_pad, &g, 1, &p, NULL, RT_F32) : g;
}

static int grad_slice(ad *d, const ir_node *n, int g)
{
	const ir_shape src_shape = node(d, n->in[0])->shape, *src = &src_shape;
	for (int ax = 0; ax < src->rank; ax++)
		if (node(d, g)->shape.d[ax] != src->d[ax] || n->a.slice.start[ax])
			g = unslice_axis(d, g, ax, n->a.slice.start[ax], n->a.slice.step[ax], src->d[ax]);
	return g;
}

/* The slice of g that input k of a concat filled. */
static int grad_concat(ad *d, const ir_node *n, int g, int k)
{
	ir_attrs a = { 0 };
	int ax = n->a.concat.axis;
	for (int i = 0; i < n->shape.rank; i++)
		a.slice.step[i] = 1;
	for (int j = 0; j < k; j++)
		a.slice.start[ax] += node(d, n->in[j])->shape.d[ax];
	return with(d, OP_slice, &g, 1, &a, &node(d, n->in[k])->shape, RT_F32);
}

static int grad_pad(ad *d, const ir_node *n, int g)
{
	ir_attrs a = { 0 };
	for (int i = 0; i < n->shape.rank; i++) {
		a.slice.start[i] = n->a.pad.lo[i];
		a.slice.step[i] = 1;
	}
	return with(d, OP_slice, &g, 1, &a, &node(d, n->in[0])->shape, RT_F32);
}

/* Nearest upsampling copied each pixel to an f x f block: sum the blocks. */
static int grad_upsample(ad *d, const ir_node *n, int g)
{
	const ir_shape in_shape = node(d, n->in[0])->shape, *s = &in_shape;
	int64_t f = n->a.upsample.scale;
	ir_shape blocks = { 6, { s->d[0], s->d[1], s->d[2], f, s->d[3], f } };
	ir_attrs a = { 0 };
	a.reduce.axes = 1u << 3 | 1u << 5;
	int r = reshape(d, g, &blocks);
	r = with(d, OP_reduce_sum, &r, 1, &a, NULL, RT_F32);
	return reshape(d, r, s);
}

static int grad_permute(ad *d, const ir_node *n, int g)
{
	ir_attrs a = { 0 };
	for (int i = 0; i < n->shape.rank; i++)
		a.permute.perm[n->a.permute.perm[i]] = i;
	return with(d, OP_permute, &g, 1, &a, NULL, RT_F32);
}

/* d max(a, b)/da: 1 where a wins, 1/2 on ties (torch's rule). */
static int grad_minmax(ad *d, const ir_node *n, int g, int k)
{
	int a = n->in[k], b = n->in[1 - k];
	int wins = n->op == OP_max ? op2(d, OP_lt, b, a) : op2(d, OP_lt, a, b);
	int tie = op2(d, OP_mul, op2(d, OP_eq, a, b), scalar(d, 0.5, n->dtype));
	return op2(d, OP_mul, g, op2(d, OP_add, wins, tie));
}

/* The contribution to input k's adjoint of a node n with adjoint g, at
 * n's own shape for elementwise ops (unbroadcast by the caller). */
static int grad_rule(ad *d, int id, int g, int k)
{
	const ir_node copy = *node(d, id), *n = &copy;
	int a = n->in[0], b = n->nin > 1 ? n->in[1] : -1;
	rt_dtype dt = n->dtype;
	switch (n->op) {
	case OP_neg: return op1(d, OP_neg, g);
	case OP_exp: return op2(d, OP_mul, g, id);
	case OP_log: return op2(d, OP_div, g, a);
	case OP_sqrt: return op2(d, OP_div, op2(d, OP_mul, g, scalar(d, 0.5, dt)), id);
	case OP_rsqrt: {
		int cube = op2(d, OP_mul, op2(d, OP_mul, id, id), id);
		return op2(d, OP_mul, op2(d, OP_mul, g, scalar(d, -0.5, dt)), cube);
	}
	case OP_sin: return op2(d, OP_mul, g, op1(d, OP_cos, a));
	case OP_cos: return op1(d, OP_neg, op2(d, OP_mul, g, op1(d, OP_sin, a)));
	case OP_tanh:
		return op2(d, OP_mul, g, op2(d, OP_sub, scalar(d, 1, dt), op2(d, OP_mul, id, id)));
	case OP_sigmoid:
		return op2(d, OP_mul, op2(d, OP_mul, g, id), op2(d, OP_sub, scalar(d, 1, dt), id));
	case OP_abs: {
		int zero = scalar(d, 0, dt);
		return op2(d, OP_mul, g, op2(d, OP_sub, op2(d, OP_lt, zero, a), op2(d, OP_lt, a, zero)));
	}
	case OP_cast: return with(d, OP_cast, &g, 1, NULL, NULL, node(d, a)->dtype);
	case OP_add: return g;
	case OP_sub: return k == 0 ? g : op1(d, OP_neg, g);
	case OP_mul: return op2(d, OP_mul, g, k == 0 ? b : a);
	case OP_div:
		return k == 0 ? op2(d, OP_div, g, b)
		              : op1(d, OP_neg, op2(d, OP_div, op2(d, OP_mul, g, id), b));
	case OP_max: case OP_min: return grad_minmax(d, n, g, k);
	case OP_select: {
		int zero = scalar(d, 0, dt), in[3] = { a, k == 1 ? g : zero, k == 1 ? zero : g };
		return with(d, OP_select, in, 3, NULL, NULL, RT_F32);
	}
	case OP_reduce_sum: return bcast(d, g, &node(d, a)->shape);
	case OP_reduce_max: {
		const ir_shape in_shape = node(d, a)->shape, *s = &in_shape;
		int hit = op2(d, OP_eq, a, bcast(d, id, s));
		return op2(d, OP_mul, bcast(d, g, s), hit);
	}
	case OP_reshape: return reshape(d, g, &node(d, a)->shape);
	case OP_permute: return grad_permute(d, n, g);
	case OP_broadcast: return g;
	case OP_slice: return grad_slice(d, n, g);
	case OP_concat: return grad_concat(d, n, g, k);
	case OP_pad: return grad_pad(d, n, g);
	case OP_upsample2d: return grad_upsample(d, n, g);
	case OP_matmul:
		return k == 0 ? op2(d, OP_matmul, g, transpose(d, b)) : op2(d, OP_matmul, transpose(d, a), g);
	case OP_conv2d: {
		int in[2] = { k == 0 ? g : a, k == 0 ? b : g };
		return with(d, k == 0 ? OP_conv2d_grad_input : OP_conv2d_grad_weight, in, 2, &n->a,
		            &node(d, n->in[k])->shape, RT_F32);
	}
	case OP_gather: {
		int in[2] = { g, b };
		return with(d, OP_scatter_add, in, 2, NULL, &node(d, a)->shape, RT_F32);
	}
	case OP_scatter_add: {
		int in[2] = { g, b };
		return with(d, OP_gather, in, 2, NULL, NULL, RT_F32);
	}
	case OP_conv2d_grad_input: case OP_conv2d_grad_weight:     /* no second derivatives */
		fprintf(stderr, "%s: %s: no gradient rule\n", n->where, ir_ops[n->op].name);
		abort();
	IR_CASES_LEAF: IR_CASES_RANDOM: case OP_lt: case OP_le: case OP_eq:
		break;                  /* no input carries their adjoint */
	}
	IR_NO_CASE(n->op);
}

static int is_float(rt_dtype dt)
{
	return dt == RT_F32 || dt == RT_F16 || dt == RT_BF16;
}

/* Inputs that carry no adjoint whatever the values: indices, conditions,
 * compare results, and the seeds of random draws. */
static int differentiable_input(const ir_node *n, int k)
{
	unsigned f = ir_ops[n->op].flags;
	if (n->op == OP_lt || n->op == OP_le || n->op == OP_eq || f & RANDOM)
		return 0;
	if (n->op == OP_select)
		return k > 0;
	if (f & INDEX)
		return k == 0;
	return 1;
}

/* needs[id]: node id depends on some wrt through differentiable inputs. */
static char *dependents(const ir_graph *g, const int *wrt, int nwrt, int upto)
{
	char *needs = calloc((size_t)upto + 1, 1);
	if (!needs)
		abort();
	for (int i = 0; i < nwrt; i++)
		if (wrt[i] <= upto)            /* a wrt built after y cannot reach it */
			needs[wrt[i]] = 1;
	for (int id = 0; id <= upto; id++) {
		const ir_node *n = &g->nodes[id];
		for (int k = 0; k < n->nin && !needs[id]; k++)
			needs[id] = needs[n->in[k]] && differentiable_input(n, k) && is_float(n->dtype);
	}
	return needs;
}

static void accumulate(ad *d, int *adj, int target, int contribution)
{
	contribution = unbroadcast(d, contribution, &node(d, target)->shape);
	adj[target] = adj[target] < 0 ? contribution : op2(d, OP_add, adj[target], contribution);
}

int ad_grad(ir_graph *g, int y, int seed, const int *wrt, int nwrt, int *grads)
{
	if (!is_float(g->nodes[y].dtype))
		return ir_fail(g, g->nodes[y].where, "grad", "cannot differentiate a %s value",
		               rt_dtype_name(g->nodes[y].dtype));
	char sa[128], sb[128];
	if (seed >= 0 && (!ir_shape_eq(&g->nodes[seed].shape, &g->nodes[y].shape) ||
	                  g->nodes[seed].dtype != g->nodes[y].dtype))
		return ir_fail(g, g->nodes[y].where, "grad", "seed %s %s does not match %s %s",
		               rt_dtype_name(g->nodes[seed].dtype),
		               ir_shape_str(&g->nodes[seed].shape, sa, sizeof sa),
		               rt_dtype_name(g->nodes[y].dtype),
		               ir_shape_str(&g->nodes[y].shape, sb, sizeof sb));
	ad d = { g, g->nodes[y].where };
	char *needs = dependents(g, wrt, nwrt, y);
	int *adj = malloc((size_t)(y + 1) * sizeof *adj);
	if (!adj)
		abort();
	for (int id = 0; id <= y; id++)
		adj[id] = -1;
	adj[y] = seed >= 0 ? seed : must(&d, ir_fill(g, 1, g->nodes[y].dtype, &g->nodes[y].shape,
	                                             d.where));
	for (int id = y; id >= 0; id--) {
		if (adj[id] < 0 || !needs[id])
			continue;
		d.where = g->nodes[id].where;
		for (int k = 0; k < g->nodes[id].nin; k++) {
			int in = g->nodes[id].in[k];
			if (needs[in] && differentiable_input(&g->nodes[id], k))
				accumulate(&d, adj, in, grad_rule(&d, id, adj[id], k));
		}
	}
	for (int i = 0; i < nwrt; i++) {
		const ir_node *w = &g->nodes[wrt[i]];
		grads[i] = wrt[i] <= y && adj[wrt[i]] >= 0 ? adj[wrt[i]]
		         : must(&d, ir_fill(g, 0, w->dtype, &w->shape, w->where));
	}
	free(adj);
	free(needs);
	return 0;
}
