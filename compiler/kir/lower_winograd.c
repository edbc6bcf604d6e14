/* lower_winograd: 3x3, stride-1, padding-1 convolutions and both their
 * gradients by Winograd's F(2x2, 3x3) or F(4x4, 3x3) (lower_impl.h),
 * when the schedule asks for it (schedule_winograd); which convolutions
 * can, and one alone in a graph of its own for the tuner to time each way
 * (kir.h).
 *
 * requires: called from lower_fuse.c for the kernel's one reduction, for a
 *   node lower_winograd_algorithm gives a Winograd algorithm.
 * establishes: four side kernels ahead of the kernel being built, which
 *   reads their result T at its own index (so a bias, an activation, every
 *   epilogue fuses after it as after a channels-last convolution, and the
 *   kernel runs in the same transposing order: lower.c):
 *
 *     U[xi, ci, co] = (G f G^T)[xi]                      weight transform
 *     V[xi, p, ci]  = (B^T d B)[xi]                      input transform
 *     M[xi, p, co]  = sum over ci of U[xi, ci, co] V[xi, p, ci]
 *     T[n, m ty + a, m tx + b, co] = (A^T M A)[a][b],    output transform
 *                     over M[., p, co] for tile p = (n, ty, tx)
 *
 * for tiles of m x m outputs (m = 2 or 4) and patches of n x n inputs, n =
 * m + 2: xi = n r + s runs over the n x n transformed points, f is the
 * 3x3 filter from input channel ci to output channel co, d the patch of
 * input channel ci whose centre m x m pixels are output tile p (zero
 * outside the image), p the tiles of every image (image, tile row, tile
 * column). Every kernel has a channel last, in its vectors: the input
 * transform reads a zero-padded channels-last copy of the input
 * (lower_conv.c's), so its loads and stores are whole vectors, and the
 * n^2 sums M are matmuls laid out as a channels-last convolution
 * (register tiles over tiles and output channels, vectors over output
 * channels, tile_hint). A size m does not divide gets a last tile partly
 * outside the image: its patch reads the copy's zeros, its outputs there
 * fill T's padding, never read. They make n^2 products per m^2 outputs
 * where the direct convolution makes 9 per output. An input gradient
 * dL/dx is the convolution of dL/dy (padding 1) with the weight transposed
 * and flipped: ci are then dL/dy's channels, co x's, f[i][j] = w[ci, co,
 * 2-i, 2-j].
 *
 * A weight gradient runs by the dual algorithm, F(3x3, m x m) with the
 * same matrices (the 3x3 taps are now the output, dL/dy's m x m tile the
 * filter), in five side kernels ahead of the kernel being built, which
 * reads W at its own (co, ci, i, j):
 *
 *     V[xi, p, ci]  = (B^T d B)[xi]            as above, of the input x
 *     Y[xi, p, co]  = (A g A^T)[xi]            g: dL/dy's tile p (zero outside)
 *     P[b, xi, ci, co] = sum over the tiles p of image block b of V Y
 *     W[3 i + j, ci, co] = (G^T (sum over b of P[b]) G)[i][j]
 *
 * n^2 products per m^2 pixels of every image where the direct gradient
 * makes 9 per pixel; the blocks as the direct gradient's partials
 * (schedule_image_blocks), summed in block order.
 *
 * F(2x2, 3x3)'s transforms only add, subtract and halve: results differ
 * from the direct sum's by a few f32 roundings of the larger terms (about
 * 1e-6 relative at the tests' sizes; 1e-5 for a weight gradient's long
 * sums); F(4x4, 3x3)'s scale by up to 8 and by 1/6 and 1/24, inexact in
 * f32 (about 1e-5; 1e-4 for a weight gradient). */
#include <math.h>

#include "lower_impl.h"

enum { TAPS = 3, PATCH_MAX = 6, POINTS_MAX = PATCH_MAX * PATCH_MAX };

/* F(m x m, 3 x 3): m x m outputs of a tile from its (m + 2) x (m + 2)
 * patch, y = A^T [(G f G^T) (.) (B^T d B)] A, by the matrices B^T (n x n),
 * G (n x 3) and A^T (m x n), n = m + 2, row-major (Lavin and Gray). */
typedef struct {
	int m, n;
	const double *bt, *g, *at;
} wino_variant;

static const double f2_bt[] = { 1, 0, -1, 0,  0, 1, 1, 0,  0, -1, 1, 0,  0, 1, 0, -1 };
static const double f2_g[] = { 1, 0, 0,  .5, .5, .5,  .5, -.5, .5,  0, 0, 1 };
static const double f2_at[] = { 1, 1, 1, 0,  0, 1, -1, -1 };
static const double f4_bt[] = {
	4, 0, -5, 0, 1, 0,   0, -4, -4, 1, 1, 0,   0, 4, -4, -1, 1, 0,
	0, -2, -1, 2, 1, 0,  0, 2, -1, -2, 1, 0,   0, 4, 0, -5, 0, 1,
};
static const double f4_g[] = {
	1. / 4, 0, 0,              -1. / 6, -1. / 6, -1. / 6,   -1. / 6, 1. / 6, -1. / 6,
	1. / 24, 1. / 12, 1. / 6,  1. / 24, -1. / 12, 1. / 6,   0, 0, 1,
};
static const double f4_at[] = {
	1, 1, 1, 1, 1, 0,   0, 1, -1, 2, -2, 0,   0, 1, 1, 4, 4, 0,   0, 1, -1, 8, -8, 1,
};
static const wino_variant f2x2 = { 2, 4, f2_bt, f2_g, f2_at }, f4x4 = { 4, 6, f4_bt, f4_g, f4_at };

typedef struct {
	const wino_variant *f;
	int points;                     /* n x n */
	int64_t images, h, w, th, tw;   /* output size and tiles per column and row */
	int64_t cin, cout;
	ir_shape u, v, m;               /* (points, cin, cout), (points, tiles, cin), (points, tiles, cout) */
	ir_shape tiles;                 /* (images, th, tw) */
	ir_shape t;                     /* (images, m th, m tw, cout) */
} wino_shapes;

static int fconst(lower *L, double v)
{
	return kir_const(L->k, KT_F32, v);
}

static int fop(lower *L, ir_opcode op, int a, int b)
{
	return kir_op(L->k, KT_F32, op, a, b, -1);
}

/* c a, as an operand of a sum of terms whose sign is applied there. */
static int magnitude_term(lower *L, double c, int a)
{
	return fabs(c) == 1 ? a : fop(L, OP_mul, fconst(L, fabs(c)), a);
}

/* out[i os] = the sum over j of mat[i][j] a[j as], for the rows i of mat
 * (rows x cols): the positive terms first, then the negative ones
 * subtracted; a unit coefficient multiplies nothing, a zero adds nothing. */
static void apply(lower *L, const double *mat, int rows, int cols, const int *a, int as, int *out, int os)
{
	for (int i = 0; i < rows; i++) {
		int sum = -1;
		for (int sign = 1; sign >= -1; sign -= 2)
			for (int j = 0; j < cols; j++) {
				double c = mat[i * cols + j];
				if (c * sign <= 0)
					continue;
				int term = magnitude_term(L, c, a[j * as]);
				if (sum >= 0)
					sum = fop(L, sign > 0 ? OP_add : OP_sub, sum, term);
				else
					sum = sign > 0 ? term : kir_op(L->k, KT_F32, OP_neg, term, -1, -1);
			}
		out[i * os] = sum >= 0 ? sum : fconst(L, 0);
	}
}

/* out (rows x rows, row-major) = T in T^T for in cols x cols (row-major)
 * and T = mat, rows x cols: T applied to every column, then to every row
 * of the result. */
static void two_sided(lower *L, const int *in, int cols, const double *mat, int rows, int *out)
{
	int half[POINTS_MAX];                   /* T in: rows x cols, row-major */
	for (int j = 0; j < cols; j++)
		apply(L, mat, rows, cols, in + j, cols, half + j, cols);
	for (int r = 0; r < rows; r++)
		apply(L, mat, rows, cols, half + r * cols, 1, out + r * rows, 1);
}

/* out (cols x rows) = mat (rows x cols) transposed. */
static void transpose(const double *mat, int rows, int cols, double *out)
{
	for (int i = 0; i < rows; i++)
		for (int j = 0; j < cols; j++)
			out[j * rows + i] = mat[i * cols + j];
}

/* The shapes of node n's transforms: the convolution's output, or for a
 * weight gradient the dL/dy it reads (in[1]; its input x is in[0]). */
static wino_shapes shapes_of(lower *L, const ir_node *n, const wino_variant *f)
{
	const int64_t *d = n->op == OP_conv2d_grad_weight ? N(L, n->in[1])->shape.d : n->shape.d;
	wino_shapes s = { .f = f, .points = f->n * f->n, .images = d[0], .h = d[2], .w = d[3],
	                  .th = (d[2] + f->m - 1) / f->m, .tw = (d[3] + f->m - 1) / f->m,
	                  .cin = N(L, n->in[0])->shape.d[1], .cout = d[1] };
	int64_t tiles = s.images * s.th * s.tw;
	s.u = (ir_shape){ 3, { s.points, s.cin, s.cout } };
	s.v = (ir_shape){ 3, { s.points, tiles, s.cin } };
	s.m = (ir_shape){ 3, { s.points, tiles, s.cout } };
	s.tiles = (ir_shape){ 3, { s.images, s.th, s.tw } };
	s.t = (ir_shape){ 4, { s.images, f->m * s.th, f->m * s.tw, s.cout } };
	return s;
}

/* The vars of side kernel k's domain into v (index 0 for an extent of 1). */
static void domain_vars(lower *S, int *v)
{
	for (int r = 0; r < S->k->rank; r++)
		v[r] = S->k->ext[r] == 1 ? I(S, 0) : kir_var(S->k, r);
}

/* Pixel `offset` from the first of tile t along an axis. */
static int tile_pixel(lower *L, const wino_shapes *s, int t, int offset)
{
	return lower_iop(L, OP_add, lower_iop(L, OP_mul, t, I(L, s->f->m)), I(L, offset));
}

/* out[r size + c] = node's value at pixel (r, c) of the tile at the side
 * kernel's domain vars v = (image, tile row, tile column, channel), read
 * from its copy in layout lay, for r, c < size. */
static void read_tile(lower *S, const wino_shapes *s, int node, const layout *lay, const int *v, int size,
                      int *out)
{
	for (int r = 0; r < size; r++)
		for (int c = 0; c < size; c++) {
			int y = tile_pixel(S, s, v[1], r), x = tile_pixel(S, s, v[2], c);
			out[r * size + c] = lower_relaid_value(S, node, lay, v[0], v[3], y, x);
		}
}

/* buf[xi, a, b] = value[xi] for the points xi (buf of shape s->d[0], ...). */
static void store_points(lower *S, int buf, const ir_shape *s, int a, int b, const int *value)
{
	for (int xi = 0; xi < s->d[0]; xi++) {
		int at[3] = { I(S, xi), a, b };
		kir_store_add(S->k, buf, lower_linearize(S, at, s), value[xi]);
	}
}

/* Appends side kernel k (built in S) storing value[xi] at (xi, a, b) of a
 * new temporary of shape s: the buffer, or -1 after a conflict. */
static int finish_transform(lower *L, lower *S, const ir_node *n, const ir_shape *s, int a, int b,
                            const int *value, const char *kind)
{
	if (lower_side_end(L, S, S->k) < 0)
		return -1;
	int buf = lower_f32_temp(L, n, s);
	store_points(S, buf, s, a, b, value);
	lower_append_kernel(L, S->k, kind, ir_ops[n->op].name);
	return buf;
}

/* Appends side kernel k (built in S), a sum of loads of temporaries
 * (so no conflict), storing its accumulator acc at its own index v of a
 * new temporary of shape s: the buffer. */
static int finish_sum(lower *L, lower *S, const ir_node *n, int acc, const int *v, const ir_shape *s,
                      const char *kind)
{
	lower_side_end(L, S, S->k);
	int buf = lower_f32_temp(L, n, s);
	kir_store_add(S->k, buf, lower_linearize(S, v, s), acc);
	lower_append_kernel(L, S->k, kind, ir_ops[n->op].name);
	return buf;
}

/* Tap (i, j) of the filter from input channel ci to output channel co. */
static int filter_tap(lower *L, const ir_node *n, int ci, int co, int i, int j)
{
	int flip = n->op == OP_conv2d_grad_input;
	int at[4] = { flip ? ci : co, flip ? co : ci, I(L, flip ? TAPS - 1 - i : i),
	              I(L, flip ? TAPS - 1 - j : j) };
	return lower_value_at(L, n->in[1], at);
}

/* U over (ci, co): the buffer, or -1 after a conflict. */
static int weight_transform(lower *L, const ir_node *n, const wino_shapes *s)
{
	kir_kernel k = { .rank = 2, .ext = { s->cin, s->cout } };
	lower S;
	lower_side_begin(L, &S, &k);
	int v[2], f[TAPS * TAPS], u[POINTS_MAX];
	domain_vars(&S, v);
	for (int i = 0; i < TAPS; i++)
		for (int j = 0; j < TAPS; j++)
			f[i * TAPS + j] = filter_tap(&S, n, v[0], v[1], i, j);
	two_sided(&S, f, TAPS, s->f->g, s->f->n, u);
	return finish_transform(L, &S, n, &s->u, v[0], v[1], u, "winograd_weight");
}

/* V over (image, tile row, tile column, ci), from the input's copy
 * channels-last, zero-padded by 1 before and to whole tiles after: the
 * buffer, or -1 after a conflict. */
static int input_transform(lower *L, const ir_node *n, const wino_shapes *s)
{
	kir_kernel k = { .rank = 4, .ext = { s->images, s->th, s->tw, s->cin } };
	lower S;
	lower_side_begin(L, &S, &k);
	int m = s->f->m, patch = s->f->n;
	const layout padded = { { 1, m * s->th + 1 - s->h, 1, m * s->tw + 1 - s->w }, { 1, 1 },
		                { 0, 2, 3, 1 } };      /* (N, H, W, C) */
	int v[4], d[POINTS_MAX], t[POINTS_MAX];
	domain_vars(&S, v);
	read_tile(&S, s, n->in[0], &padded, v, patch, d);
	two_sided(&S, d, patch, s->f->bt, patch, t);
	int tile = lower_linearize(&S, v, &s->tiles);
	return finish_transform(L, &S, n, &s->v, tile, v[3], t, "winograd_input");
}

/* M over (xi, tile, co), summing over ci: the buffer. */
static int pointwise_products(lower *L, const ir_node *n, const wino_shapes *s, int ub, int vb)
{
	kir_kernel k = { .rank = 3, .ext = { s->points, s->m.d[1], s->cout }, .tile_hint = { 0, 1, 1 } };
	lower S;
	lower_side_begin(L, &S, &k);
	int v[3];
	domain_vars(&S, v);
	lower_set_reduction(&S, &s->cin, 1);
	int ci = lower_rvar(&S, 0);
	int ua[3] = { v[0], ci, v[2] }, va[3] = { v[0], v[1], ci };
	int prod = lower_mul(&S, kir_load(&k, L->p, ub, lower_linearize(&S, ua, &s->u)),
	                     kir_load(&k, L->p, vb, lower_linearize(&S, va, &s->v)));
	return finish_sum(L, &S, n, kir_acc(&k, KT_F32, kir_acc_add(&k, OP_add, prod)), v, &s->m,
	                  "winograd_products");
}

/* T over (image, tile row, tile column, co) from M: the buffer. */
static int output_transform(lower *L, const ir_node *n, const wino_shapes *s, int mb)
{
	kir_kernel k = { .rank = 4, .ext = { s->images, s->th, s->tw, s->cout } };
	lower S;
	lower_side_begin(L, &S, &k);
	int v[4], m[POINTS_MAX], y[POINTS_MAX], side = s->f->m;
	domain_vars(&S, v);
	int tile = lower_linearize(&S, v, &s->tiles);
	for (int xi = 0; xi < s->points; xi++) {
		int at[3] = { I(&S, xi), tile, v[3] };
		m[xi] = kir_load(&k, L->p, mb, lower_linearize(&S, at, &s->m));
	}
	two_sided(&S, m, s->f->n, s->f->at, side, y);
	lower_side_end(L, &S, &k);      /* loads of temporaries only: no conflict */
	int tb = lower_f32_temp(L, n, &s->t);
	for (int a = 0; a < side; a++)
		for (int b = 0; b < side; b++) {
			int at[4] = { v[0], tile_pixel(&S, s, v[1], a), tile_pixel(&S, s, v[2], b), v[3] };
			kir_store_add(&k, tb, lower_linearize(&S, at, &s->t), y[a * side + b]);
		}
	lower_append_kernel(L, &k, "winograd_output", ir_ops[n->op].name);
	return tb;
}

/* Y over (image, tile row, tile column, co): A g A^T of each m x m tile g
 * of dL/dy (in[1] of weight gradient n), read from a copy channels-last,
 * zero-padded after to whole tiles: the buffer, or -1 after a conflict. */
static int gradient_transform(lower *L, const ir_node *n, const wino_shapes *s)
{
	kir_kernel k = { .rank = 4, .ext = { s->images, s->th, s->tw, s->cout } };
	lower S;
	lower_side_begin(L, &S, &k);
	int m = s->f->m;
	const layout padded = { { 0, m * s->th - s->h, 0, m * s->tw - s->w }, { 1, 1 }, { 0, 2, 3, 1 } };
	double a[PATCH_MAX * PATCH_MAX];
	transpose(s->f->at, m, s->f->n, a);
	int v[4], g[POINTS_MAX], y[POINTS_MAX];
	domain_vars(&S, v);
	read_tile(&S, s, n->in[1], &padded, v, m, g);
	two_sided(&S, g, m, a, s->f->n, y);
	int tile = lower_linearize(&S, v, &s->tiles);
	return finish_transform(L, &S, n, &s->m, tile, v[3], y, "winograd_gradient");
}

/* P over (block, xi, ci, co) of shape ps, summing over the tiles of
 * each block of images (schedule_image_blocks, as the direct weight
 * gradient's partials: a block's V and Y stay in cache while every tile
 * of channels passes over them): the buffer. */
static int products_over_tiles(lower *L, const ir_node *n, const wino_shapes *s, int vb, int yb,
                               const ir_shape *ps)
{
	kir_kernel k = { .rank = 4, .ext = { ps->d[0], s->points, s->cin, s->cout }, .tile_hint = { 0, 0, 1, 1 } };
	lower S;
	lower_side_begin(L, &S, &k);
	int v[4];
	domain_vars(&S, v);
	int64_t per = s->v.d[1] / ps->d[0];
	lower_set_reduction(&S, &per, 1);
	int p = lower_iop(&S, OP_add, lower_iop(&S, OP_mul, v[0], I(&S, per)), lower_rvar(&S, 0));
	int va[3] = { v[1], p, v[2] }, ya[3] = { v[1], p, v[3] };
	int prod = lower_mul(&S, kir_load(&k, L->p, vb, lower_linearize(&S, va, &s->v)),
	                     kir_load(&k, L->p, yb, lower_linearize(&S, ya, &s->m)));
	return finish_sum(L, &S, n, kir_acc(&k, KT_F32, kir_acc_add(&k, OP_add, prod)), v, ps,
	                  "winograd_products");
}

/* P's blocks summed in block order into (xi, ci, co): the buffer. */
static int sum_of_blocks(lower *L, const ir_node *n, const wino_shapes *s, int pb, const ir_shape *ps)
{
	kir_kernel k = { .rank = 3, .ext = { s->points, s->cin, s->cout } };
	lower S;
	lower_side_begin(L, &S, &k);
	int v[3];
	domain_vars(&S, v);
	lower_set_reduction(&S, &ps->d[0], 1);
	int at[4] = { lower_rvar(&S, 0), v[0], v[1], v[2] };
	int part = kir_load(&k, L->p, pb, lower_linearize(&S, at, ps));
	return finish_sum(L, &S, n, kir_acc(&k, KT_F32, kir_acc_add(&k, OP_add, part)), v, &s->u,
	                  "winograd_blocks");
}

/* W over (tap, ci, co), the 3x3 taps G^T P G: the buffer. */
static int weight_gradient_transform(lower *L, const ir_node *n, const wino_shapes *s, int pb,
                                     const ir_shape *ws)
{
	kir_kernel k = { .rank = 2, .ext = { s->cin, s->cout } };
	lower S;
	lower_side_begin(L, &S, &k);
	double gt[TAPS * PATCH_MAX];
	transpose(s->f->g, s->f->n, TAPS, gt);
	int v[2], pv[POINTS_MAX], taps[TAPS * TAPS];
	domain_vars(&S, v);
	for (int xi = 0; xi < s->points; xi++) {
		int at[3] = { I(&S, xi), v[0], v[1] };
		pv[xi] = kir_load(&k, L->p, pb, lower_linearize(&S, at, &s->u));
	}
	two_sided(&S, pv, s->f->n, gt, TAPS, taps);
	return finish_transform(L, &S, n, ws, v[0], v[1], taps, "winograd_weight_gradient");
}

/* dL/dw at (co, ci, i, j) by the dual of F(m x m, 3x3): dL/dw[co, ci] =
 * G^T [sum over tiles p of Y[., p, co] (.) V[., p, ci]] G, Y the transform
 * A g A^T of dL/dy's tile p, V the forward's input transform. */
static int winograd_weight_gradient(lower *L, const ir_node *n, const wino_shapes *s, const int *idx)
{
	int vb = input_transform(L, n, s);
	int yb = vb < 0 ? -1 : gradient_transform(L, n, s);
	if (yb < 0)
		return fconst(L, 0);
	int64_t nb = schedule_image_blocks(L->target, s->images, ir_numel(&s->u));
	ir_shape ps = { 4, { nb, s->points, s->cin, s->cout } }, ws = { 3, { TAPS * TAPS, s->cin, s->cout } };
	int pb = products_over_tiles(L, n, s, vb, yb, &ps);
	int wb = weight_gradient_transform(L, n, s, nb > 1 ? sum_of_blocks(L, n, s, pb, &ps) : pb, &ws);
	int tap = lower_iop(L, OP_add, lower_iop(L, OP_mul, idx[2], I(L, TAPS)), idx[3]);
	int at[3] = { tap, idx[1], idx[0] };
	return kir_load(L->k, L->p, wb, lower_linearize(L, at, &ws));
}

int kir_winograd_candidate(const ir_graph *g, const ir_node *n)
{
	if (n->op != OP_conv2d && n->op != OP_conv2d_grad_input && n->op != OP_conv2d_grad_weight)
		return 0;
	const ir_attrs *a = &n->a;
	int weight_grad = n->op == OP_conv2d_grad_weight;
	const int64_t *w = weight_grad ? n->shape.d : g->nodes[n->in[1]].shape.d;
	const int64_t *in = g->nodes[n->in[0]].shape.d;
	const int64_t *out = weight_grad ? g->nodes[n->in[1]].shape.d : n->shape.d;
	return w[2] == TAPS && w[3] == TAPS && a->conv.stride[0] == 1 && a->conv.stride[1] == 1 &&
	       a->conv.pad[0] == 1 && a->conv.pad[1] == 1 && a->conv.pad[2] == 1 && a->conv.pad[3] == 1 &&
	       in[2] == out[2] && in[3] == out[3];
}

kir_algorithm lower_winograd_algorithm(lower *L, const ir_node *n)
{
	return kir_winograd_candidate(L->g, n) ? schedule_winograd(L->target, L->g, n) : KIR_ALGO_DIRECT;
}

ir_graph *kir_conv_alone(const ir_graph *g, const ir_node *n)
{
	ir_graph *one = ir_new();
	int in[2];
	for (int i = 0; i < 2; i++) {
		const ir_node *operand = &g->nodes[n->in[i]];
		in[i] = ir_input(one, i ? "w" : "x", operand->dtype, &operand->shape, "tuner");
	}
	ir_binding out = { "conv", ir_add(one, n->op, in, 2, &n->a, &n->shape, n->dtype, "tuner") };
	if (in[0] < 0 || in[1] < 0 || out.node < 0 || ir_entry_add(one, "conv", &out, 1, NULL, 0, "tuner") < 0) {
		ir_free(one);
		return NULL;
	}
	return one;
}

int lower_winograd_conv(lower *L, const ir_node *n, kir_algorithm a, const int *idx)
{
	wino_shapes s = shapes_of(L, n, a == KIR_ALGO_WINOGRAD4X4 ? &f4x4 : &f2x2);
	if (n->op == OP_conv2d_grad_weight)
		return winograd_weight_gradient(L, n, &s, idx);
	int ub = weight_transform(L, n, &s);
	int vb = ub < 0 ? -1 : input_transform(L, n, &s);
	if (vb < 0)
		return fconst(L, 0);
	int tb = output_transform(L, n, &s, pointwise_products(L, n, &s, ub, vb));
	int at[4] = { idx[0], idx[2], idx[3], idx[1] };
	return kir_load(L->k, L->p, tb, lower_linearize(L, at, &s.t));
}
