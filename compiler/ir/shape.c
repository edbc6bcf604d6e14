/* shape.c: the shape and dtype rule of every non-leaf op, and ir_add.
 *
 * contract: ir_add appends a node only if its inputs exist and satisfy the
 * op's rule; the node's shape and dtype are then fully determined. On a
 * violation nothing is appended and g->err reads
 * "file:line: op: what is wrong (shapes)". */
#include <stdlib.h>
#include <string.h>

#include "ir.h"


typedef struct {
	ir_graph *g;
	const char *where, *op;
	const ir_node **in;     /* the inputs */
	int nin;
	ir_node out;            /* filled in by the rule */
} rule_ctx;

/* A shape as text for messages; four may be live in one message. */
static const char *S(const ir_shape *s)
{
	static char buf[4][128];
	static int next;
	next = (next + 1) % 4;
	return ir_shape_str(s, buf[next], sizeof buf[next]);
}

#define FAIL(c, ...) ir_fail((c)->g, (c)->where, (c)->op, __VA_ARGS__)

static int is_float(rt_dtype dt)
{
	return dt == RT_F32 || dt == RT_F16 || dt == RT_BF16;
}

/* numpy broadcasting: shapes align on the right; a dim of 1 stretches. */
static int broadcast_shapes(rule_ctx *c)
{
	ir_shape *o = &c->out.shape;
	o->rank = 0;
	for (int k = 0; k < c->nin; k++)
		if (c->in[k]->shape.rank > o->rank)
			o->rank = c->in[k]->shape.rank;
	for (int i = 0; i < o->rank; i++)
		o->d[i] = 1;
	for (int k = 0; k < c->nin; k++) {
		const ir_shape *s = &c->in[k]->shape;
		for (int i = 0; i < s->rank; i++) {
			int64_t *od = &o->d[o->rank - s->rank + i];
			if (s->d[i] == *od || s->d[i] == 1)
				continue;
			if (*od != 1)
				return FAIL(c, "shapes %s and %s do not broadcast",
				            S(&c->in[0]->shape), S(s));
			*od = s->d[i];
		}
	}
	return 0;
}

static int rule_elemwise(rule_ctx *c, rt_dtype cast_to)
{
	ir_opcode op = c->out.op;
	int first = op == OP_select;     /* select's condition may be any dtype */
	for (int k = first + 1; k < c->nin; k++)
		if (c->in[k]->dtype != c->in[first]->dtype)
			return FAIL(c, "dtypes differ (%s and %s)",
			            rt_dtype_name(c->in[first]->dtype), rt_dtype_name(c->in[k]->dtype));
	c->out.dtype = op == OP_cast ? cast_to : c->in[first]->dtype;
	int needs_float = (ir_ops[op].flags & TRANSC) != 0;
	if (needs_float && !is_float(c->in[0]->dtype))
		return FAIL(c, "needs a floating-point input, got %s", rt_dtype_name(c->in[0]->dtype));
	return broadcast_shapes(c);
}

static int rule_reduce(rule_ctx *c, const ir_attrs *a)
{
	const ir_shape *s = &c->in[0]->shape;
	if (a->reduce.axes >> s->rank)
		return FAIL(c, "axes mask 0x%x names a dim beyond rank %d of %s",
		            a->reduce.axes, s->rank, S(s));
	c->out.shape = *s;
	for (int i = 0; i < s->rank; i++)
		if (a->reduce.axes >> i & 1)
			c->out.shape.d[i] = 1;
	return 0;
}

static int rule_reshape(rule_ctx *c, const ir_shape *to)
{
	if (ir_numel(to) != ir_numel(&c->in[0]->shape))
		return FAIL(c, "cannot reshape %s (%lld elements) to %s (%lld elements)",
		            S(&c->in[0]->shape), (long long)ir_numel(&c->in[0]->shape),
		            S(to), (long long)ir_numel(to));
	c->out.shape = *to;
	return 0;
}

static int rule_permute(rule_ctx *c, const ir_attrs *a)
{
	const ir_shape *s = &c->in[0]->shape;
	unsigned seen = 0;
	for (int i = 0; i < s->rank; i++) {
		int p = a->permute.perm[i];
		if (p < 0 || p >= s->rank || (seen >> p & 1))
			return FAIL(c, "perm is not a permutation of the %d dims of %s", s->rank, S(s));
		seen |= 1u << p;
		c->out.shape.d[i] = s->d[p];
	}
	c->out.shape.rank = s->rank;
	return 0;
}

static int rule_broadcast(rule_ctx *c, const ir_shape *to)
{
	const ir_shape *s = &c->in[0]->shape;
	int lead = to->rank - s->rank;
	for (int i = 0; lead >= 0 && i < s->rank; i++)
		if (s->d[i] != 1 && s->d[i] != to->d[lead + i])
			lead = -1;
	if (lead < 0)
		return FAIL(c, "cannot broadcast %s to %s", S(s), S(to));
	c->out.shape = *to;
	return 0;
}

/* `to` holds the element count per axis. */
static int rule_slice(rule_ctx *c, const ir_attrs *a, const ir_shape *to)
{
	const ir_shape *s = &c->in[0]->shape;
	if (to->rank != s->rank)
		return FAIL(c, "slice of %s has rank %d", S(s), to->rank);
	for (int i = 0; i < s->rank; i++) {
		int64_t start = a->slice.start[i], step = a->slice.step[i];
		if (start < 0 || step < 1 || to->d[i] < 1 || start + (to->d[i] - 1) * step >= s->d[i])
			return FAIL(c, "axis %d: start %lld, step %lld, %lld elements is outside %s",
			            i, (long long)start, (long long)step, (long long)to->d[i], S(s));
	}
	c->out.shape = *to;
	return 0;
}

static int rule_concat(rule_ctx *c, const ir_attrs *a)
{
	const ir_shape *s0 = &c->in[0]->shape;
	int ax = a->concat.axis;
	if (ax < 0 || ax >= s0->rank)
		return FAIL(c, "axis %d is outside rank %d", ax, s0->rank);
	c->out.shape = *s0;
	c->out.shape.d[ax] = 0;
	for (int k = 0; k < c->nin; k++) {
		const ir_shape *s = &c->in[k]->shape;
		int ok = s->rank == s0->rank && c->in[k]->dtype == c->in[0]->dtype;
		for (int i = 0; ok && i < s->rank; i++)
			ok = i == ax || s->d[i] == s0->d[i];
		if (!ok)
			return FAIL(c, "%s %s and %s %s differ outside axis %d",
			            rt_dtype_name(c->in[0]->dtype), S(s0),
			            rt_dtype_name(c->in[k]->dtype), S(s), ax);
		c->out.shape.d[ax] += s->d[ax];
	}
	return 0;
}

static int rule_pad(rule_ctx *c, const ir_attrs *a)
{
	const ir_shape *s = &c->in[0]->shape;
	c->out.shape = *s;
	for (int i = 0; i < s->rank; i++) {
		if (a->pad.lo[i] < 0 || a->pad.hi[i] < 0)
			return FAIL(c, "negative padding on axis %d of %s", i, S(s));
		c->out.shape.d[i] += a->pad.lo[i] + a->pad.hi[i];
	}
	return 0;
}

static int rule_upsample(rule_ctx *c, const ir_attrs *a)
{
	const ir_shape *s = &c->in[0]->shape;
	if (s->rank != 4 || a->upsample.scale < 1)
		return FAIL(c, "needs (N, C, H, W) and a scale >= 1, got %s and %d",
		            S(s), a->upsample.scale);
	c->out.shape = *s;
	c->out.shape.d[2] *= a->upsample.scale;
	c->out.shape.d[3] *= a->upsample.scale;
	return 0;
}

/* (.., M, K) x (.., K, N) -> (.., M, N); batch dims must be equal. */
static int rule_matmul(rule_ctx *c)
{
	const ir_shape *a = &c->in[0]->shape, *b = &c->in[1]->shape;
	int r = a->rank, ok = r >= 2 && b->rank == r && a->d[r - 1] == b->d[r - 2];
	for (int i = 0; ok && i < r - 2; i++)
		ok = a->d[i] == b->d[i];
	if (!ok)
		return FAIL(c, "cannot multiply %s by %s", S(a), S(b));
	c->out.shape = *a;
	c->out.shape.d[r - 1] = b->d[r - 1];
	return 0;
}

/* conv2d's output shape for input x and weight w (no checks). */
static ir_shape conv_out_shape(const ir_shape *x, const ir_shape *w, const ir_attrs *a)
{
	const int *st = a->conv.stride, *p = a->conv.pad;
	return (ir_shape){ 4, { x->d[0], w->d[0], (x->d[2] + p[0] + p[1] - w->d[2]) / st[0] + 1,
	                        (x->d[3] + p[2] + p[3] - w->d[3]) / st[1] + 1 } };
}

/* Stride and padding valid, and the kernel fits the padded input. */
static int conv_geometry_ok(const ir_shape *x, const ir_shape *w, const ir_attrs *a)
{
	const int *st = a->conv.stride, *p = a->conv.pad;
	return st[0] >= 1 && st[1] >= 1 && p[0] >= 0 && p[1] >= 0 && p[2] >= 0 && p[3] >= 0 &&
	       x->d[2] + p[0] + p[1] >= w->d[2] && x->d[3] + p[2] + p[3] >= w->d[3];
}

/* x (N, C, H, W), w (O, C, KH, KW) -> (N, O, H', W'). */
static int rule_conv2d(rule_ctx *c, const ir_attrs *a)
{
	const ir_shape *x = &c->in[0]->shape, *w = &c->in[1]->shape;
	if (x->rank != 4 || w->rank != 4)
		return FAIL(c, "needs input (N, C, H, W) and weight (O, C, KH, KW), got %s and %s",
		            S(x), S(w));
	if (x->d[1] != w->d[1])
		return FAIL(c, "input has %lld channels, weight expects %lld (%s and %s)",
		            (long long)x->d[1], (long long)w->d[1], S(x), S(w));
	const int *st = a->conv.stride, *p = a->conv.pad;
	if (st[0] < 1 || st[1] < 1 || p[0] < 0 || p[1] < 0 || p[2] < 0 || p[3] < 0)
		return FAIL(c, "stride (%d, %d) or padding (%d, %d, %d, %d) is invalid",
		            st[0], st[1], p[0], p[1], p[2], p[3]);
	int64_t h = x->d[2] + p[0] + p[1] - w->d[2], wd = x->d[3] + p[2] + p[3] - w->d[3];
	if (h < 0 || wd < 0)
		return FAIL(c, "kernel %lldx%lld is larger than the padded input %s",
		            (long long)w->d[2], (long long)w->d[3], S(x));
	c->out.shape = conv_out_shape(x, w, a);
	return 0;
}

/* table (T, R..), idx (I..) i32 -> (I.., R..). */
static int rule_gather(rule_ctx *c)
{
	const ir_shape *t = &c->in[0]->shape, *ix = &c->in[1]->shape;
	if (c->in[1]->dtype != RT_I32)
		return FAIL(c, "index must be i32, got %s", rt_dtype_name(c->in[1]->dtype));
	if (t->rank < 1 || ix->rank + t->rank - 1 > IR_MAXDIM)
		return FAIL(c, "cannot gather %s by %s", S(t), S(ix));
	c->out.shape = *ix;
	for (int i = 1; i < t->rank; i++)
		c->out.shape.d[c->out.shape.rank++] = t->d[i];
	return 0;
}

/* g (N, O, OH, OW), w (O, C, KH, KW) -> x (N, C, H, W) = `to`, which must be
 * an input shape whose convolution with w has g's shape. */
static int rule_conv_grad_input(rule_ctx *c, const ir_attrs *a, const ir_shape *to)
{
	const ir_shape *g = &c->in[0]->shape, *w = &c->in[1]->shape;
	ir_shape back = { 0 };
	int ok = g->rank == 4 && w->rank == 4 && to->rank == 4 && to->d[1] == w->d[1] &&
	         conv_geometry_ok(to, w, a);
	if (ok)
		back = conv_out_shape(to, w, a);
	if (!ok || !ir_shape_eq(&back, g))
		return FAIL(c, "gradient %s and weight %s do not come from an input %s",
		            S(g), S(w), S(to));
	c->out.shape = *to;
	return 0;
}

/* x (N, C, H, W), g (N, O, OH, OW) -> w (O, C, KH, KW) = `to`. */
static int rule_conv_grad_weight(rule_ctx *c, const ir_attrs *a, const ir_shape *to)
{
	const ir_shape *x = &c->in[0]->shape, *g = &c->in[1]->shape;
	ir_shape back = { 0 };
	int ok = x->rank == 4 && g->rank == 4 && to->rank == 4 && to->d[1] == x->d[1] &&
	         conv_geometry_ok(x, to, a);
	if (ok)
		back = conv_out_shape(x, to, a);
	if (!ok || !ir_shape_eq(&back, g))
		return FAIL(c, "input %s and gradient %s do not come from a weight %s",
		            S(x), S(g), S(to));
	c->out.shape = *to;
	return 0;
}

/* a (I.., R..), idx (I..) i32 -> `to` = (T, R..). */
static int rule_scatter_add(rule_ctx *c, const ir_shape *to)
{
	const ir_shape *src = &c->in[0]->shape, *ix = &c->in[1]->shape;
	int ok = c->in[1]->dtype == RT_I32 && to->rank >= 1 &&
	         src->rank == ix->rank + to->rank - 1;
	for (int i = 0; ok && i < ix->rank; i++)
		ok = src->d[i] == ix->d[i];
	for (int i = 1; ok && i < to->rank; i++)
		ok = src->d[ix->rank + i - 1] == to->d[i];
	if (!ok)
		return FAIL(c, "cannot scatter %s by %s %s into %s", S(src),
		            rt_dtype_name(c->in[1]->dtype), S(ix), S(to));
	c->out.shape = *to;
	return 0;
}

/* seed, step and shard: i32 scalars; the output is a float tensor of shape `to`. */
static int rule_random(rule_ctx *c, const ir_shape *to, rt_dtype dt)
{
	for (int k = 0; k < 3; k++)
		if (c->in[k]->dtype != RT_I32 || c->in[k]->shape.rank != 0)
			return FAIL(c, "seed, step and shard must be i32 scalars, got %s %s",
			            rt_dtype_name(c->in[k]->dtype), S(&c->in[k]->shape));
	if (!is_float(dt))
		return FAIL(c, "draws floating-point values, not %s", rt_dtype_name(dt));
	c->out.shape = *to;
	c->out.dtype = dt;
	return 0;
}

static int apply_rule(rule_ctx *c, const ir_attrs *a, const ir_shape *to, rt_dtype dt)
{
	ir_opcode op = c->out.op;
	c->out.dtype = c->in[0]->dtype;
	if (ir_ops[op].flags & ELEMWISE)
		return rule_elemwise(c, dt);
	if (ir_ops[op].flags & (CONTRACT | INDEX) || op == OP_concat) {
		int same = 1;
		for (int k = 1; k < c->nin; k++)
			same &= ir_ops[op].flags & INDEX || c->in[k]->dtype == c->in[0]->dtype;
		if (!same)
			return FAIL(c, "dtypes differ (%s and %s)",
			            rt_dtype_name(c->in[0]->dtype), rt_dtype_name(c->in[1]->dtype));
	}
	if (ir_ops[op].flags & CONTRACT && !is_float(c->in[0]->dtype))
		return FAIL(c, "needs floating-point inputs, got %s", rt_dtype_name(c->in[0]->dtype));
	int needs_shape = op == OP_reshape || op == OP_broadcast || op == OP_slice ||
	                  op == OP_conv2d_grad_input || op == OP_conv2d_grad_weight ||
	                  op == OP_scatter_add || ir_ops[op].flags & RANDOM;
	if (needs_shape && !to)
		return FAIL(c, "needs a target shape");
	switch (op) {
	case OP_reduce_sum: case OP_reduce_max: return rule_reduce(c, a);
	case OP_reshape: return rule_reshape(c, to);
	case OP_permute: return rule_permute(c, a);
	case OP_broadcast: return rule_broadcast(c, to);
	case OP_slice: return rule_slice(c, a, to);
	case OP_concat: return rule_concat(c, a);
	case OP_pad: return rule_pad(c, a);
	case OP_upsample2d: return rule_upsample(c, a);
	case OP_matmul: return rule_matmul(c);
	case OP_conv2d: return rule_conv2d(c, a);
	case OP_conv2d_grad_input: return rule_conv_grad_input(c, a, to);
	case OP_conv2d_grad_weight: return rule_conv_grad_weight(c, a, to);
	case OP_gather: return rule_gather(c);
	case OP_scatter_add: return rule_scatter_add(c, to);
	case OP_rng_uniform: case OP_rng_normal: return rule_random(c, to, dt);
	IR_CASES_LEAF: IR_CASES_ELEMWISE: break;       /* refused by infer, ruled above */
	}
	IR_NO_CASE(op);
}

/* Runs op's rule on inputs `in`; on success c->out has shape and dtype. */
static int infer(rule_ctx *c, const int *in, const ir_attrs *a,
                 const ir_shape *shape, rt_dtype dt)
{
	const ir_opinfo *info = &ir_ops[c->out.op];
	int nin = c->nin;
	ir_graph *g = c->g;
	if (info->flags & LEAF)
		return FAIL(c, "is a leaf; use its constructor");
	if (info->arity >= 0 && nin != info->arity)
		return FAIL(c, "takes %d inputs, got %d", info->arity, nin);
	if (nin < 1)
		return FAIL(c, "takes at least one input");
	if (shape && (shape->rank < 0 || shape->rank > IR_MAXDIM))
		return FAIL(c, "rank %d is not in 0..%d", shape->rank, IR_MAXDIM);
	for (int i = 0; shape && i < shape->rank; i++)
		if (shape->d[i] <= 0)
			return FAIL(c, "target dimension %d of %s is not positive", i, S(shape));
	if (shape && !ir_numel_fits(shape))
		return FAIL(c, "target %s has more than 2^53 elements", S(shape));
	for (int k = 0; k < nin; k++) {
		if (in[k] < 0 || in[k] >= g->n)
			return FAIL(c, "input %d is not a node", k);
		c->in[k] = &g->nodes[in[k]];
	}
	if (a)
		c->out.a = *a;
	if (apply_rule(c, &c->out.a, shape, dt) < 0)
		return -1;
	if (!ir_numel_fits(&c->out.shape))       /* a broadcast, concat, upsample grew it */
		return FAIL(c, "result %s has more than 2^53 elements", S(&c->out.shape));
	return 0;
}

int ir_add(ir_graph *g, ir_opcode op, const int *in, int nin,
           const ir_attrs *a, const ir_shape *shape, rt_dtype dt,
           const char *where)
{
	const ir_node **ins = malloc((size_t)(nin + 1) * sizeof *ins);
	rule_ctx c = { g, where, ir_ops[op].name, ins, nin, { .op = op } };
	int rc = infer(&c, in, a, shape, dt);
	free(ins);
	if (rc < 0)
		return -1;
	c.out.nin = nin;
	c.out.in = ir_alloc(g, (size_t)nin * sizeof *c.out.in);
	memcpy(c.out.in, in, (size_t)nin * sizeof *in);
	c.out.where = ir_strdup(g, where);
	return ir_push(g, &c.out);
}

int ir_recheck(ir_graph *g, int id)
{
	const ir_node *n = &g->nodes[id];
	const ir_node **ins = malloc((size_t)(n->nin + 1) * sizeof *ins);
	rule_ctx c = { g, n->where, ir_ops[n->op].name, ins, n->nin, { .op = n->op } };
	int rc = 0;
	for (int k = 0; k < n->nin && rc == 0; k++)
		if (n->in[k] >= id)
			rc = FAIL(&c, "input %d (node %d) does not come before node %d", k, n->in[k], id);
	rc = rc < 0 ? rc : infer(&c, n->in, &n->a, &n->shape, n->dtype);
	free(ins);
	if (rc < 0)
		return -1;
	if (!ir_shape_eq(&c.out.shape, &n->shape) || c.out.dtype != n->dtype)
		return FAIL(&c, "node %d is %s %s but its rule gives %s %s", id,
		            rt_dtype_name(n->dtype), S(&n->shape),
		            rt_dtype_name(c.out.dtype), S(&c.out.shape));
	return 0;
}
