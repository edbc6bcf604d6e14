/* interp.c: the reference interpreter (see interp.h for its contract).
 *
 * Naive on purpose: each op is the loop nest its definition in ops.h
 * describes. Operands are addressed with a "walker", an odometer over an
 * iteration shape that keeps one flat offset per operand, so broadcasting,
 * permutes, slices, pads and reductions are all "walk a shape with the
 * right strides". */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "interp.h"
#include "philox.h"
#include "state.h"

typedef struct {
	rt_dtype dtype;
	int64_t n;
	float *f;               /* f32, f16, bf16: values rounded to dtype */
	int32_t *i;             /* i32 */
} value;

typedef struct {
	const ir_graph *g;
	value *vals;            /* by node id */
	char *err;
	size_t errlen;
} interp;

static int fail(interp *in, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(in->err, in->errlen, fmt, ap);
	va_end(ap);
	return -1;
}

/* --- values --------------------------------------------------------- */

/* x rounded once to dt (never through f32 first: that could round twice). */
static float round_to(rt_dtype dt, double x)
{
	if (dt == RT_F32 || dt == RT_I32)
		return (float)x;
	uint16_t h;
	rt_store(dt, &h, 0, x);
	return (float)rt_load(dt, &h, 0);
}

/* Float to i32 as torch's .to(torch.int32): toward zero; NaN becomes 0. */
static int32_t to_i32(double x)
{
	if (isnan(x))
		return 0;
	if (x >= 2147483647.0)
		return INT32_MAX;
	if (x <= -2147483648.0)
		return INT32_MIN;
	return (int32_t)x;
}

static inline double ld(const value *v, int64_t k)
{
	return v->f ? (double)v->f[k] : (double)v->i[k];
}

static inline void st(value *v, int64_t k, double x)
{
	if (v->f)
		v->f[k] = round_to(v->dtype, x);
	else
		v->i[k] = to_i32(x);
}

static value make_value(rt_dtype dt, int64_t n)
{
	value v = { dt, n, NULL, NULL };
	if (dt == RT_I32)
		v.i = calloc((size_t)(n ? n : 1), sizeof *v.i);
	else
		v.f = calloc((size_t)(n ? n : 1), sizeof *v.f);
	if (!v.f && !v.i) {
		fputs("ddpmc: out of memory in the interpreter\n", stderr);
		abort();
	}
	return v;
}

static void free_value(value *v)
{
	free(v->f);
	free(v->i);
	v->f = NULL;
	v->i = NULL;
}

/* Rounds every element to the value's dtype (after f32 accumulation). */
static void round_all(value *v)
{
	if (v->dtype == RT_F16 || v->dtype == RT_BF16)
		for (int64_t k = 0; k < v->n; k++)
			v->f[k] = round_to(v->dtype, (double)v->f[k]);
}

/* --- the walker ------------------------------------------------------ */

/* A walker visits a shape row by row: a row is the last dim (len elements,
 * operand k advancing by step(k) per element); walker_next_row moves every
 * operand's offset to the start of the next row. */
enum { MAXOPS = 4 };

typedef struct {
	int rank, nops;
	int64_t dim[IR_MAXDIM], idx[IR_MAXDIM];
	int64_t stride[MAXOPS][IR_MAXDIM];
	int64_t off[MAXOPS];
	int64_t rows, len;
} walker;

static void walker_init(walker *w, const ir_shape *s, int nops)
{
	memset(w, 0, sizeof *w);
	w->rank = s->rank;
	w->nops = nops;
	for (int r = 0; r < s->rank; r++)
		w->dim[r] = s->d[r];
	w->len = s->rank ? s->d[s->rank - 1] : 1;
	w->rows = ir_numel(s) / w->len;
}

/* Row-major strides of shape s placed right-aligned into w's rank; dims of
 * size 1 that w iterates over more than once get stride 0 (broadcast). */
static void walker_operand(walker *w, int op, const ir_shape *s)
{
	int64_t stride = 1;
	for (int r = s->rank - 1; r >= 0; r--) {
		int wr = w->rank - s->rank + r;
		w->stride[op][wr] = s->d[r] == 1 && w->dim[wr] != 1 ? 0 : stride;
		stride *= s->d[r];
	}
}

static int64_t walker_step(const walker *w, int op)
{
	return w->rank ? w->stride[op][w->rank - 1] : 0;
}

static void walker_next_row(walker *w)
{
	for (int r = w->rank - 2; r >= 0; r--) {
		for (int k = 0; k < w->nops; k++)
			w->off[k] += w->stride[k][r];
		if (++w->idx[r] < w->dim[r])
			return;
		for (int k = 0; k < w->nops; k++)
			w->off[k] -= w->stride[k][r] * w->dim[r];
		w->idx[r] = 0;
	}
}

static void row_major(const ir_shape *s, int64_t *stride)
{
	int64_t acc = 1;
	for (int r = s->rank - 1; r >= 0; r--) {
		stride[r] = acc;
		acc *= s->d[r];
	}
}

/* --- ops ------------------------------------------------------------- */

static const ir_node *input_node(interp *in, const ir_node *n, int k)
{
	return &in->g->nodes[n->in[k]];
}

static const value *input_value(interp *in, const ir_node *n, int k)
{
	return &in->vals[n->in[k]];
}

/* Computed in double and rounded once at storage: for + - * / and sqrt on
 * f32 inputs that is exactly the f32 result; elsewhere at least as close. */
static void run_elemwise(interp *in, const ir_node *n, value *out)
{
	walker w;
	const value *a[3] = { 0 };
	walker_init(&w, &n->shape, n->nin);
	for (int k = 0; k < n->nin; k++) {
		walker_operand(&w, k, &input_node(in, n, k)->shape);
		a[k] = input_value(in, n, k);
	}
	int64_t s0 = walker_step(&w, 0), s1 = walker_step(&w, 1), s2 = walker_step(&w, 2);
	for (int64_t row = 0, e = 0; row < w.rows; row++, walker_next_row(&w))
		for (int64_t x = 0; x < w.len; x++, e++) {
			double p = ld(a[0], w.off[0] + x * s0);
			double q = n->nin > 1 ? ld(a[1], w.off[1] + x * s1) : 0;
			double r = n->nin > 2 ? ld(a[2], w.off[2] + x * s2) : 0;
			st(out, e, ir_scalar(n->op, p, q, r));
		}
}

/* Walks the input; operand 1 addresses the output with stride 0 on the
 * reduced dims. Accumulates in double. */
static void run_reduce(interp *in, const ir_node *n, value *out)
{
	const ir_node *src = input_node(in, n, 0);
	const value *a = input_value(in, n, 0);
	double *acc = malloc((size_t)out->n * sizeof *acc);
	if (!acc)
		abort();
	int is_max = n->op == OP_reduce_max;
	for (int64_t e = 0; e < out->n; e++)
		acc[e] = is_max ? -INFINITY : 0.0;
	walker w;
	walker_init(&w, &src->shape, 2);
	walker_operand(&w, 0, &src->shape);
	walker_operand(&w, 1, &n->shape);
	int64_t s0 = walker_step(&w, 0), s1 = walker_step(&w, 1);
	for (int64_t row = 0; row < w.rows; row++, walker_next_row(&w))
		for (int64_t x = 0; x < w.len; x++) {
			double v = ld(a, w.off[0] + x * s0);
			double *slot = &acc[w.off[1] + x * s1];
			*slot = ir_scalar(is_max ? OP_max : OP_add, *slot, v, 0);
		}
	for (int64_t e = 0; e < out->n; e++)
		st(out, e, acc[e]);
	free(acc);
}

/* out[base + sum idx*ostride] = a[walk of a's own layout]: the shape walked
 * is `s`; operand 0 reads the source with strides src_stride. */
static void copy_walk(const ir_shape *s, const value *a, const int64_t *src_stride,
                      int64_t src_base, value *out, const int64_t *dst_stride,
                      int64_t dst_base)
{
	walker w;
	walker_init(&w, s, 2);
	memcpy(w.stride[0], src_stride, sizeof w.stride[0]);
	memcpy(w.stride[1], dst_stride, sizeof w.stride[1]);
	w.off[0] = src_base;
	w.off[1] = dst_base;
	int64_t s0 = walker_step(&w, 0), s1 = walker_step(&w, 1);
	for (int64_t row = 0; row < w.rows; row++, walker_next_row(&w))
		for (int64_t x = 0; x < w.len; x++)
			st(out, w.off[1] + x * s1, ld(a, w.off[0] + x * s0));
}

static void run_permute(interp *in, const ir_node *n, value *out)
{
	int64_t src[IR_MAXDIM] = { 0 }, perm[IR_MAXDIM] = { 0 }, dst[IR_MAXDIM] = { 0 };
	row_major(&input_node(in, n, 0)->shape, src);
	for (int r = 0; r < n->shape.rank; r++)
		perm[r] = src[n->a.permute.perm[r]];
	row_major(&n->shape, dst);
	copy_walk(&n->shape, input_value(in, n, 0), perm, 0, out, dst, 0);
}

static void run_broadcast(interp *in, const ir_node *n, value *out)
{
	walker w;
	walker_init(&w, &n->shape, 1);
	walker_operand(&w, 0, &input_node(in, n, 0)->shape);
	int64_t s0 = walker_step(&w, 0);
	for (int64_t row = 0, e = 0; row < w.rows; row++, walker_next_row(&w))
		for (int64_t x = 0; x < w.len; x++, e++)
			st(out, e, ld(input_value(in, n, 0), w.off[0] + x * s0));
}

static void run_slice(interp *in, const ir_node *n, value *out)
{
	int64_t src[IR_MAXDIM] = { 0 }, dst[IR_MAXDIM] = { 0 }, base = 0;
	row_major(&input_node(in, n, 0)->shape, src);
	for (int r = 0; r < n->shape.rank; r++) {
		base += n->a.slice.start[r] * src[r];
		src[r] *= n->a.slice.step[r];
	}
	row_major(&n->shape, dst);
	copy_walk(&n->shape, input_value(in, n, 0), src, base, out, dst, 0);
}

static void run_concat(interp *in, const ir_node *n, value *out)
{
	int64_t dst[IR_MAXDIM] = { 0 }, at = 0;
	int ax = n->a.concat.axis;
	row_major(&n->shape, dst);
	for (int k = 0; k < n->nin; k++) {
		const ir_shape *s = &input_node(in, n, k)->shape;
		int64_t src[IR_MAXDIM] = { 0 };
		row_major(s, src);
		copy_walk(s, input_value(in, n, k), src, 0, out, dst, at * dst[ax]);
		at += s->d[ax];
	}
}

static void run_pad(interp *in, const ir_node *n, value *out)
{
	const ir_shape *s = &input_node(in, n, 0)->shape;
	int64_t src[IR_MAXDIM] = { 0 }, dst[IR_MAXDIM] = { 0 }, base = 0;
	row_major(s, src);
	row_major(&n->shape, dst);
	for (int r = 0; r < s->rank; r++)
		base += n->a.pad.lo[r] * dst[r];
	for (int64_t e = 0; e < out->n; e++)
		st(out, e, n->a.pad.value);
	copy_walk(s, input_value(in, n, 0), src, 0, out, dst, base);
}

static void run_upsample(interp *in, const ir_node *n, value *out)
{
	const ir_shape *s = &input_node(in, n, 0)->shape;
	const value *a = input_value(in, n, 0);
	int64_t H = s->d[2], W = s->d[3], f = n->a.upsample.scale;
	int64_t OH = H * f, OW = W * f, planes = s->d[0] * s->d[1];
	for (int64_t p = 0; p < planes; p++)
		for (int64_t y = 0; y < OH; y++)
			for (int64_t x = 0; x < OW; x++)
				st(out, (p * OH + y) * OW + x, ld(a, (p * H + y / f) * W + x / f));
}

/* (B.., M, K) x (B.., K, N), accumulating in f32. */
static void run_matmul(interp *in, const ir_node *n, value *out)
{
	const ir_shape *sa = &input_node(in, n, 0)->shape;
	const float *A = input_value(in, n, 0)->f, *B = input_value(in, n, 1)->f;
	int r = sa->rank;
	int64_t M = sa->d[r - 2], K = sa->d[r - 1], N = n->shape.d[r - 1];
	int64_t batch = ir_numel(sa) / (M * K);
	for (int64_t b = 0; b < batch; b++)
		for (int64_t m = 0; m < M; m++) {
			float *o = out->f + (b * M + m) * N;
			const float *arow = A + (b * M + m) * K;
			for (int64_t k = 0; k < K; k++) {
				const float *brow = B + (b * K + k) * N;
				for (int64_t j = 0; j < N; j++)
					o[j] += arow[k] * brow[j];
			}
		}
	round_all(out);
}

/* The output columns x whose input column x*s + j - pad lies in [0, W). */
static void valid_columns(int64_t OW, int64_t W, int s, int64_t j, int pad,
                          int64_t *x0, int64_t *x1)
{
	int64_t lo = pad - j, hi = W + pad - j;       /* x*s in [lo, hi) */
	*x0 = lo <= 0 ? 0 : (lo + s - 1) / s;
	*x1 = hi <= 0 ? 0 : (hi + s - 1) / s;
	if (*x1 > OW)
		*x1 = OW;
}

/* The three inner loops of conv2d and its adjoints over one output row:
 * out[x] += w * in[x*s + off], in[x*s + off] += w * g[x], and the dot
 * product of in[x*s + off] and g[x], for x in [x0, x1). */
static void row_axpy(float *out, float w, const float *in, int s, int64_t off,
                     int64_t x0, int64_t x1)
{
	for (int64_t x = x0; x < x1; x++)
		out[x] += w * in[x * s + off];
}

static void row_scatter(float *in, float w, const float *g, int s, int64_t off,
                        int64_t x0, int64_t x1)
{
	for (int64_t x = x0; x < x1; x++)
		in[x * s + off] += w * g[x];
}

static float row_dot(const float *in, const float *g, int s, int64_t off, int64_t x0, int64_t x1)
{
	float acc = 0;
	for (int64_t x = x0; x < x1; x++)
		acc += in[x * s + off] * g[x];
	return acc;
}

/* x (N, C, H, W) * w (O, C, KH, KW) -> (N, O, OH, OW), accumulating in f32. */
static void run_conv2d(interp *in, const ir_node *n, value *out)
{
	const ir_shape *sx = &input_node(in, n, 0)->shape, *sw = &input_node(in, n, 1)->shape;
	const float *X = input_value(in, n, 0)->f, *Wt = input_value(in, n, 1)->f;
	int64_t C = sx->d[1], H = sx->d[2], W = sx->d[3];
	int64_t O = sw->d[0], KH = sw->d[2], KW = sw->d[3];
	int64_t OH = n->shape.d[2], OW = n->shape.d[3];
	int sy = n->a.conv.stride[0], sxs = n->a.conv.stride[1];
	int pt = n->a.conv.pad[0], pl = n->a.conv.pad[2];
	for (int64_t b = 0; b < sx->d[0]; b++)
		for (int64_t o = 0; o < O; o++) {
			float *op = out->f + (b * O + o) * OH * OW;
			for (int64_t c = 0; c < C; c++) {
				const float *ip = X + (b * C + c) * H * W;
				for (int64_t i = 0; i < KH; i++)
					for (int64_t j = 0; j < KW; j++) {
						float wv = Wt[((o * C + c) * KH + i) * KW + j];
						int64_t x0, x1;
						valid_columns(OW, W, sxs, j, pl, &x0, &x1);
						for (int64_t y = 0; y < OH; y++) {
							int64_t iy = y * sy + i - pt;
							if (iy >= 0 && iy < H)
								row_axpy(op + y * OW, wv, ip + iy * W, sxs, j - pl, x0, x1);
						}
					}
			}
		}
	round_all(out);
}

/* The adjoint of conv2d with respect to its input: every g[n,o,y,x] adds
 * g * w[o,c,i,j] to the input element it was computed from. */
static void run_conv2d_grad_input(interp *in, const ir_node *n, value *out)
{
	const ir_shape *sg = &input_node(in, n, 0)->shape, *sw = &input_node(in, n, 1)->shape;
	const float *G = input_value(in, n, 0)->f, *Wt = input_value(in, n, 1)->f;
	int64_t C = n->shape.d[1], H = n->shape.d[2], W = n->shape.d[3];
	int64_t O = sw->d[0], KH = sw->d[2], KW = sw->d[3], OH = sg->d[2], OW = sg->d[3];
	int sy = n->a.conv.stride[0], sxs = n->a.conv.stride[1];
	int pt = n->a.conv.pad[0], pl = n->a.conv.pad[2];
	for (int64_t b = 0; b < n->shape.d[0]; b++)
		for (int64_t o = 0; o < O; o++)
			for (int64_t c = 0; c < C; c++) {
				float *ip = out->f + (b * C + c) * H * W;
				const float *gp = G + (b * O + o) * OH * OW;
				for (int64_t i = 0; i < KH; i++)
					for (int64_t j = 0; j < KW; j++) {
						float wv = Wt[((o * C + c) * KH + i) * KW + j];
						int64_t x0, x1;
						valid_columns(OW, W, sxs, j, pl, &x0, &x1);
						for (int64_t y = 0; y < OH; y++) {
							int64_t iy = y * sy + i - pt;
							if (iy >= 0 && iy < H)
								row_scatter(ip + iy * W, wv, gp + y * OW, sxs, j - pl, x0, x1);
						}
					}
			}
	round_all(out);
}

/* The adjoint of conv2d with respect to its weight. */
static void run_conv2d_grad_weight(interp *in, const ir_node *n, value *out)
{
	const ir_shape *sx = &input_node(in, n, 0)->shape, *sg = &input_node(in, n, 1)->shape;
	const float *X = input_value(in, n, 0)->f, *G = input_value(in, n, 1)->f;
	int64_t C = sx->d[1], H = sx->d[2], W = sx->d[3];
	int64_t O = n->shape.d[0], KH = n->shape.d[2], KW = n->shape.d[3], OH = sg->d[2], OW = sg->d[3];
	int sy = n->a.conv.stride[0], sxs = n->a.conv.stride[1];
	int pt = n->a.conv.pad[0], pl = n->a.conv.pad[2];
	for (int64_t o = 0; o < O; o++)
		for (int64_t c = 0; c < C; c++)
			for (int64_t i = 0; i < KH; i++)
				for (int64_t j = 0; j < KW; j++) {
					float acc = 0;
					int64_t x0, x1;
					valid_columns(OW, W, sxs, j, pl, &x0, &x1);
					for (int64_t b = 0; b < sx->d[0]; b++) {
						const float *ip = X + (b * C + c) * H * W;
						const float *gp = G + (b * O + o) * OH * OW;
						for (int64_t y = 0; y < OH; y++) {
							int64_t iy = y * sy + i - pt;
							if (iy >= 0 && iy < H)
								acc += row_dot(ip + iy * W, gp + y * OW, sxs, j - pl, x0, x1);
						}
					}
					out->f[((o * C + c) * KH + i) * KW + j] = acc;
				}
	round_all(out);
}

/* Checks an index against the table's first dim. */
static int check_index(interp *in, const ir_node *n, int64_t at, int64_t rows)
{
	if (at >= 0 && at < rows)
		return 0;
	return fail(in, "%s: %s: index %lld is outside 0..%lld", n->where, ir_ops[n->op].name,
	            (long long)at, (long long)rows - 1);
}

static int run_scatter_add(interp *in, const ir_node *n, value *out)
{
	const value *src = input_value(in, n, 0), *idx = input_value(in, n, 1);
	int64_t rows = n->shape.d[0], row = out->n / rows;
	for (int64_t k = 0; k < idx->n; k++) {
		if (check_index(in, n, idx->i[k], rows) < 0)
			return -1;
		for (int64_t r = 0; r < row; r++) {
			int64_t at = idx->i[k] * row + r;
			st(out, at, ld(out, at) + ld(src, k * row + r));
		}
	}
	return 0;
}

/* The stream of a draw: seed and step are the node's i32 scalar inputs;
 * its elements start at shard * n (input 2). */
static void run_random(interp *in, const ir_node *n, value *out)
{
	uint64_t seed = (uint32_t)input_value(in, n, 0)->i[0];
	uint64_t step = (uint32_t)input_value(in, n, 1)->i[0];
	uint64_t first = (uint64_t)input_value(in, n, 2)->i[0] * (uint64_t)out->n;
	uint64_t stream = step << 16 | (uint64_t)(uint16_t)n->a.rng.stream;
	(n->op == OP_rng_normal ? rt_philox_normal : rt_philox_uniform)(seed, stream, first, out->n, out->f);
	round_all(out);
}

static int run_gather(interp *in, const ir_node *n, value *out)
{
	const ir_node *tn = input_node(in, n, 0);
	const value *tbl = input_value(in, n, 0), *idx = input_value(in, n, 1);
	int64_t rows = tn->shape.d[0], row = ir_numel(&tn->shape) / rows;
	for (int64_t k = 0; k < idx->n; k++) {
		int64_t at = idx->i[k];
		if (check_index(in, n, at, rows) < 0)
			return -1;
		for (int64_t r = 0; r < row; r++)
			st(out, k * row + r, ld(tbl, at * row + r));
	}
	return 0;
}

static void load_tensor(value *v, const rt_tensor *t)
{
	for (int64_t k = 0; k < v->n; k++)
		st(v, k, rt_load(t->dtype, t->data, k));
}

/* Looks up name in set and checks that its shape is the node's. */
static const rt_tensor *find_bound(interp *in, const rt_tensorset *set, const char *what,
                                   const ir_node *n)
{
	char want[128], got[128];
	const rt_tensor *t = set ? rt_set_find(set, n->name) : NULL;
	if (!t) {
		fail(in, "%s: missing '%s' (%s %s)", what, n->name, rt_dtype_name(n->dtype),
		     ir_shape_str(&n->shape, want, sizeof want));
		return NULL;
	}
	ir_shape s = ir_shape_of(t->rank, t->shape);
	if (t->rank > IR_MAXDIM || !ir_shape_eq(&s, &n->shape)) {
		fail(in, "%s: '%s' has shape %s, the model expects %s", what, n->name,
		     ir_shape_str(&s, got, sizeof got), ir_shape_str(&n->shape, want, sizeof want));
		return NULL;
	}
	return t;
}

static int run_node(interp *in, int id, rt_tensorset *state, const rt_tensorset *inputs)
{
	const ir_node *n = &in->g->nodes[id];
	value *out = &in->vals[id];
	*out = make_value(n->dtype, ir_numel(&n->shape));
	const rt_tensor *t;
	switch (n->op) {
	IR_CASES_ELEMWISE: run_elemwise(in, n, out); return 0;
	case OP_input:
		if (!(t = find_bound(in, inputs, "inputs", n)))
			return -1;
		load_tensor(out, t);
		return 0;
	case OP_param:
		if (!(t = find_bound(in, state, "state", n)))
			return -1;
		load_tensor(out, t);
		return 0;
	case OP_fill:
		for (int64_t k = 0; k < out->n; k++)
			st(out, k, n->a.fill.value);
		return 0;
	case OP_constant:
		for (int64_t k = 0; k < out->n; k++)
			st(out, k, rt_load(n->dtype, n->data, k));
		return 0;
	case OP_reduce_sum: case OP_reduce_max: run_reduce(in, n, out); return 0;
	case OP_reshape:
		for (int64_t k = 0; k < out->n; k++)
			st(out, k, ld(input_value(in, n, 0), k));
		return 0;
	case OP_permute: run_permute(in, n, out); return 0;
	case OP_broadcast: run_broadcast(in, n, out); return 0;
	case OP_slice: run_slice(in, n, out); return 0;
	case OP_concat: run_concat(in, n, out); return 0;
	case OP_pad: run_pad(in, n, out); return 0;
	case OP_upsample2d: run_upsample(in, n, out); return 0;
	case OP_matmul: run_matmul(in, n, out); return 0;
	case OP_conv2d: run_conv2d(in, n, out); return 0;
	case OP_conv2d_grad_input: run_conv2d_grad_input(in, n, out); return 0;
	case OP_conv2d_grad_weight: run_conv2d_grad_weight(in, n, out); return 0;
	case OP_gather: return run_gather(in, n, out);
	case OP_scatter_add: return run_scatter_add(in, n, out);
	case OP_rng_uniform: case OP_rng_normal: run_random(in, n, out); return 0;
	}
	IR_NO_CASE(n->op);
}

/* Remaining consumers per live node; roots get one extra so they survive. */
static int *count_uses(const ir_graph *g, const ir_entry *e, const char *live)
{
	int *uses = calloc((size_t)g->n + 1, sizeof *uses);
	if (!uses)
		abort();
	for (int id = 0; id < g->n; id++)
		if (live[id])
			for (int k = 0; k < g->nodes[id].nin; k++)
				uses[g->nodes[id].in[k]]++;
	for (int k = 0; k < e->noutputs; k++)
		uses[e->outputs[k].node]++;
	for (int k = 0; k < e->nupdates; k++)
		uses[e->updates[k].node]++;
	return uses;
}

static void store_value(const value *v, rt_tensor *t)
{
	for (int64_t k = 0; k < v->n; k++)
		rt_store(t->dtype, t->data, k, ld(v, k));
}

static int write_results(interp *in, const ir_entry *e, rt_tensorset *state,
                         rt_tensorset *outputs)
{
	for (int k = 0; k < e->noutputs; k++) {
		const ir_node *n = &in->g->nodes[e->outputs[k].node];
		rt_tensor *t = rt_set_add(outputs, e->outputs[k].name, n->dtype, n->shape.rank,
		                          n->shape.d);
		if (!t)
			return fail(in, "outputs: cannot add '%s' (duplicate or out of memory)",
			            e->outputs[k].name);
		store_value(&in->vals[e->outputs[k].node], t);
	}
	for (int k = 0; k < e->nupdates; k++) {
		rt_tensor *t = rt_set_find(state, e->updates[k].name);
		if (!t)
			return fail(in, "state: missing '%s'", e->updates[k].name);
		store_value(&in->vals[e->updates[k].node], t);
	}
	return 0;
}

int interp_run(const ir_graph *g, const ir_entry *e, rt_tensorset *state,
               const rt_tensorset *inputs, rt_tensorset *outputs,
               char *err, size_t errlen)
{
	interp in = { g, calloc((size_t)g->n + 1, sizeof(value)), err, errlen };
	char *live = ir_entry_live(g, e);
	int *uses = count_uses(g, e, live);
	int rc = in.vals ? 0 : -1;
	for (int id = 0; rc == 0 && id < g->n; id++) {
		if (!live[id])
			continue;
		rc = run_node(&in, id, state, inputs);
		for (int k = 0; k < g->nodes[id].nin; k++)
			if (--uses[g->nodes[id].in[k]] == 0)
				free_value(&in.vals[g->nodes[id].in[k]]);
	}
	if (rc == 0)
		rc = write_results(&in, e, state, outputs);
	for (int id = 0; in.vals && id < g->n; id++)
		free_value(&in.vals[id]);
	free(in.vals);
	free(live);
	free(uses);
	return rc;
}

/* --- initial state ----------------------------------------------------- */

/* The initialisers are the runtime's (runtime/state.h), so that compiled
 * executables start from the same bits as the interpreter. */
static void init_param(const ir_graph *g, const ir_node *p, uint64_t seed,
                       rt_tensorset *state, rt_tensor *t)
{
	static const rt_initkind kinds[] = {
		[INIT_ZEROS] = RT_INIT_ZEROS, [INIT_ONES] = RT_INIT_ONES,
		[INIT_UNIFORM] = RT_INIT_UNIFORM, [INIT_NORMAL] = RT_INIT_NORMAL,
		[INIT_COPY] = RT_INIT_COPY,
	};
	const ir_init *init = &p->a.param.init;
	rt_init ri = { kinds[init->kind], init->a, init->b };
	const rt_tensor *src = init->kind == INIT_COPY     /* the source is an earlier param */
		? rt_set_find(state, g->nodes[init->from].name) : NULL;
	if (rt_init_tensor(&ri, seed, (uint64_t)p->a.param.index, src, t) != RT_OK)
		abort();
}

int interp_init_state(const ir_graph *g, uint64_t seed, const rt_tensorset *weights,
                      const char *weights_name, rt_tensorset *state,
                      char *err, size_t errlen)
{
	interp in = { g, NULL, err, errlen };
	for (int i = 0; i < g->nparams; i++) {
		const ir_node *p = &g->nodes[g->params[i]];
		rt_tensor *t = rt_set_add(state, p->name, p->dtype, p->shape.rank, p->shape.d);
		if (!t)
			return fail(&in, "state: cannot add '%s'", p->name);
		const rt_tensor *w = weights ? rt_set_find(weights, p->name) : NULL;
		if (w || (weights && p->a.param.trainable)) {
			if (!(w = find_bound(&in, weights, weights_name, p)))
				return -1;
			for (int64_t k = 0; k < ir_numel(&p->shape); k++)
				rt_store(t->dtype, t->data, k, rt_load(w->dtype, w->data, k));
		} else
			init_param(g, p, seed, state, t);
	}
	return 0;
}
