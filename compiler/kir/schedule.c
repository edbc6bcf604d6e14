/* schedule: the lowering's decisions of layout and loop order, by target.
 *
 * The lowering (lower*.c) says what a kernel computes; the functions here
 * say how it is laid out, from the kir_target a backend describes (kir.h)
 * and nothing else: no threshold of a machine is written here or in the
 * lowering. Each backend sets the thresholds for its targets
 * (llvm_kir_target in codegen/llvm, cl_kir_target in codegen/opencl).
 *
 * requires: t filled by a backend (thresholds > 0).
 * establishes: the same answer for the same target and shapes (the
 *   kernels of a program depend on its target only through here).
 *
 * Decided here: which convolutions run by Winograd's algorithm, which
 * run channels-last, how many image blocks a weight gradient's partial
 * sums take, and the order of a kernel's domain vars. Decided by the
 * backends from the same target: register tiles (fixed per kernel by
 * llvm_fix_tiles: a tuning file's measurement or the cost model's pick),
 * work-group tiles (cl_render), the split of rows over threads (the
 * runtime's executor). */
#include "lower_impl.h"

/* Output channels in the vectors. A 3x3 convolution (or a dense input
 * gradient, of any kernel size) with t->channels_last_min output channels
 * or more, a multiple of t->channels_last_step, is computed channels-last,
 * T[n, y, x, o], by a kernel whose last var is the output channel: its
 * weight loads are whole vectors, its image values broadcasts, and no
 * vector is partial (vectors over the output width would leave 28 = 16 +
 * 12, or 7 of 8 lanes). The kernel reading T back transposes in its
 * epilogue. A 1x1 convolution keeps its width in the vectors: it gains
 * nothing from channel vectors and saves the transpose
 * (bench/conv_bench 64 192 64 28 1: 23 ms with it, 17 without). */
int schedule_channels_last(const kir_target *t, ir_opcode op, int64_t channels, const int64_t *taps)
{
	if (channels < t->channels_last_min || channels % t->channels_last_step)
		return 0;
	return op == OP_conv2d_grad_input || (op == OP_conv2d && (taps[0] > 1 || taps[1] > 1));
}

/* Products per image and channel pair of Winograd F(m x m, 3x3) on an
 * output of shape d: (m + 2)^2 per tile, the tiles covering it. */
static int64_t winograd_products(const int64_t *d, int m)
{
	return (m + 2) * (m + 2) * ((d[2] + m - 1) / m) * ((d[3] + m - 1) / m);
}

/* Winograd F(2x2, 3x3) or F(4x4, 3x3) for a 3x3, stride-1, padding-1
 * convolution or gradient n of g (lower_winograd.c): 16 products
 * per 2x2 outputs, or 36 per 4x4, instead of 9 per output, for two passes
 * over the image and one over the products more than a direct convolution
 * makes (F(4x4, 3x3)'s transforms do more arithmetic, its tiles may
 * overhang the image more). Whether that pays depends on the channel
 * counts, the image size and the machine, so where the tuner timed every
 * way on this machine (compile --tune, t->measured) its choice holds;
 * elsewhere the cost model's: Winograd from t->winograd_min_channels
 * input and output channels (a backend's threshold), by F(4x4, 3x3)
 * where it makes fewer products than F(2x2, 3x3), whole tiles counted
 * (measured faster on AVX2 and AVX-512 at 7x7, 14x14 and 28x28, 64 and
 * 128 channels: docs/performance.md). `compile --winograd` asks for one
 * way everywhere. */
kir_algorithm schedule_winograd(const kir_target *t, const ir_graph *g, const ir_node *n)
{
	static const kir_algorithm forced[] = { [KIR_WINOGRAD_NONE] = KIR_ALGO_DIRECT,
		                                [KIR_WINOGRAD_2X2] = KIR_ALGO_WINOGRAD2X2,
		                                [KIR_WINOGRAD_4X4] = KIR_ALGO_WINOGRAD4X4 };
	if (t->winograd != KIR_WINOGRAD_CHOSEN)
		return forced[t->winograd];
	kir_algorithm a;
	if (t->measured && kir_tuning_find_algorithm(t->measured, kir_conv_signature(g, n), &a))
		return a;
	const int64_t *image = n->op == OP_conv2d_grad_weight ? g->nodes[n->in[1]].shape.d : n->shape.d;
	int64_t cin = g->nodes[n->in[0]].shape.d[1], cout = image[1];
	if (t->winograd_min_channels <= 0 || cin < t->winograd_min_channels || cout < t->winograd_min_channels)
		return KIR_ALGO_DIRECT;
	return winograd_products(image, 4) < winograd_products(image, 2) ? KIR_ALGO_WINOGRAD4X4
	                                                                 : KIR_ALGO_WINOGRAD2X2;
}

/* The weight gradient sums over every pixel of every image: too long a
 * reduction for one pass that keeps its operands in cache, and for a GPU
 * too few outputs to share out. So it is split into blocks of images,
 * each summed into partials P[block, i, j, c, o]: as many blocks as divide
 * the images and fit t->partials_max_bytes (small blocks: one or two
 * images' operands stay in a core's cache while every output channel tile
 * passes over them; on a GPU every block's tiles are work-groups). */
int64_t schedule_image_blocks(const kir_target *t, int64_t images, int64_t weights)
{
	int64_t nb = images;
	while (nb > 1 && (images % nb || nb * weights * 4 > t->partials_max_bytes))
		nb--;
	return nb;
}

/* The order of a kernel's domain as the dims of its root (the last var is
 * the one backends vectorize). A weight gradient runs over (KH, KW, C, O)
 * so that its vectors span output channels, not the 3 taps of a row. A
 * kernel reading a channels-last convolution T[n, y, x, o] runs over (N,
 * H, C, W): the rows of neighbouring channels read the same lines of T. */
void schedule_domain_order(ir_opcode op, int rank, int reads_channels_last, int *order)
{
	static const int taps_first[4] = { 2, 3, 1, 0 }, rows_first[4] = { 0, 2, 1, 3 };
	int transposing = rank == 4 && op != OP_conv2d_grad_weight && reads_channels_last;
	for (int r = 0; r < rank; r++)
		order[r] = op == OP_conv2d_grad_weight ? taps_first[r] : transposing ? rows_first[r] : r;
}

/* A fact, when known (not 0). */
static void report_fact(FILE *f, const char *what, int64_t v, int64_t unit, const char *units)
{
	if (v > 0)
		fprintf(f, ", %s %lld%s", what, (long long)(v / unit), units);
}

void kir_target_report(const kir_target *t, FILE *f)
{
	fprintf(f, "target %s: %d lanes", t->name, t->lanes);
	report_fact(f, "vector registers", t->vector_registers, 1, "");
	report_fact(f, "cores", t->cores, 1, "");
	report_fact(f, "L1", t->l1_bytes, 1024, " KiB");
	report_fact(f, "L2", t->l2_bytes, 1024, " KiB");
	report_fact(f, "local memory", t->local_bytes, 1024, " KiB");
	report_fact(f, "work-group", t->max_group, 1, " items");
	fprintf(f, "; channels-last from %d output channels in steps of %d, weight-gradient partials "
	        "<= %lld MiB", t->channels_last_min, t->channels_last_step,
	        (long long)(t->partials_max_bytes >> 20));
	static const char *const forced[] = { [KIR_WINOGRAD_2X2] = "F(2x2, 3x3)",
		                               [KIR_WINOGRAD_4X4] = "F(4x4, 3x3)" };
	if (t->winograd == KIR_WINOGRAD_2X2 || t->winograd == KIR_WINOGRAD_4X4)
		fprintf(f, "; 3x3 stride-1 convolutions by Winograd %s", forced[t->winograd]);
	else if (t->winograd == KIR_WINOGRAD_CHOSEN && t->winograd_min_channels > 0)
		fprintf(f, "; 3x3 stride-1 convolutions by Winograd as tuned, else from %d channels",
		        t->winograd_min_channels);
	if (t->max_args > 0)
		fprintf(f, "; at most %d buffers a kernel", t->max_args);
	fputc('\n', f);
}
