/* opencl: the OpenCL renderer (compiler/codegen/opencl) on the OpenCL
 * device this machine has (PoCL's CPU device in CI), through the path a
 * compiled executable takes: the descriptor with its "cl" launches, parsed
 * by runtime/program.c, run by runtime/device.c.
 *
 *   - every case of kernel_cases.h against the interpreter, at its
 *     tolerances (the same as the LLVM backend's);
 *   - kernels within the argument limit: cl_tiny's every kernel takes at
 *     most 1024 bytes of arguments; under a limit of 8 buffers a batch of
 *     40 outputs and a joint reduction of 40 pieces split, and match the
 *     interpreter;
 *   - tests/models/cl_tiny.lua compiled with --target all: 3 train steps
 *     on --device opencl against --device cpu from the same seed. Every
 *     state tensor within 2e-4 absolute: the two backends sum in other
 *     orders (f32 rounding, ~1e-6 relative in a gradient), and Adam's
 *     first steps move a weight by about lr = 1e-3 times the sign of
 *     m / sqrt(v), so a gradient near zero may step differently; such
 *     flips are rare and the warmup keeps lr at 3e-4 or below in 3 steps.
 *     The losses of the steps agree to 1e-4 relative.
 *     The OpenCL side runs the executable's own GPU lowering, so the two
 *     devices run two programs; `info` lists both, and DDPMC_PROFILE
 *     reports the kernels the OpenCL device ran.
 *   - sampling (DDIM, 5 steps) from the CPU's checkpoint on both devices
 *     with the same seed: the same noise (Philox on both) and pixels that
 *     differ by at most 1 of 255 (rounding at quantisation).
 *   - RANDOM_SCRIPTS scripts made at random (random_graph.h): each with
 *     the compiler's choices for the default GPU, then for a GPU of 2
 *     compute units (larger micro-tiles) with every kernel's variant
 *     1 + seed % (CL_MAX_VARIANTS - 1) where it has one, as `tune` may
 *     choose, a third of them with the 3x3 convolutions by Winograd
 *     (F(2x2, 3x3) and F(4x4, 3x3) in turn), a third under a limit of 8
 *     buffers a kernel.
 * PoCL compiles each kernel at its first launch (about 0.1-0.2 s each), so
 * the whole-program cases dominate this test's time. */
#include "kernel_cases.h"
#include "random_graph.h"

#include "cl_render.h"
#include "data.h"
#include "device.h"
#include "program.h"

/* --- the kernel cases, through the runtime's OpenCL device ---------------- */

static const cl_target *target;         /* what backend_run renders for (NULL: the default) */
static int variant;     /* backend_run launches each kernel's variant `variant` where it has one */
static int swapped;     /* launches that ran a variant other than the compiler's */
static int widest;      /* of those, launches of 8 x 8 micro-tiles */
static int vectors;     /* and of tiles read as vectors */
static int largest;     /* and of reductions in work-groups of 1024 */
static int ran_split;   /* launches of reductions to one point split over work-groups */
static int ran_split_inner;     /* of those, with stores inside the loop (the MSE loss's gradient) */
static int ran_one;     /* and of such reductions in one work-group, a variant */
static int max_args;    /* > 0: the cases are lowered with this kir_target.max_args */

static void put_launch(rt_strbuf *b, int e, int k, void *ctx)
{
	cl_launch **l = ctx;
	cl_launch_json(b, &l[e][k]);
}

/* The cases are lowered for the GPU they are rendered for. */
static const kir_target *case_target(void)
{
	static kir_target t;
	cl_kir_target(target ? target : &cl_target_default, &t);
	if (max_args)
		t.max_args = max_args;
	return &t;
}

static void backend_run(ir_graph *g, kir_program *p, rt_tensorset *state, const rt_tensorset *inputs,
                        rt_tensorset *outputs)
{
	char err[2048];
	rt_strbuf src = { 0 }, json = { 0 }, data = { 0 };
	check_within_limit(p, max_args);
	cl_launch **l = cl_render(&p, 1, target, &src);
	assert_non_null(l);
	for (int i = 0; variant && i < p->nk; i++)
		if (l[0][i].nv > variant) {
			cl_variant t = l[0][i].v[0];
			l[0][i].v[0] = l[0][i].v[variant];
			l[0][i].v[variant] = t;
			swapped++;
			widest += strstr(l[0][i].v[0].name, "_m8x8") != NULL;
			vectors += strstr(l[0][i].v[0].name, "_vec") != NULL;
			largest += strstr(l[0][i].v[0].name, "_l1024") != NULL;
			ran_one += strstr(l[0][i].v[0].name, "_one") != NULL;
		}
	for (int i = 0; i < p->nk; i++) {
		ran_split += l[0][i].v[0].scratch > 0;
		for (int s = 0; s < p->k[i].nst && l[0][i].v[0].scratch > 0; s++)
			ran_split_inner += p->k[i].st[s].inner > 0;
	}
	kir_describe_opts opts = { 1, put_launch, l };
	kir_describe(g, "case.lua", &p, 1, &opts, &json, &data);
	rt_program prog;
	if (rt_program_parse(json.p, json.len, (const unsigned char *)data.p, (int64_t)data.len, NULL, 0,
	                     &prog, err, sizeof err) != RT_OK)
		fail_msg("%s", err);
	prog.cl_source = src.p;
	prog.cl_source_len = (int64_t)src.len;
	rt_device *d = rt_device_open(&prog, "opencl", 0, err, sizeof err);
	if (!d)
		fail_msg("%s", err);
	if (rt_device_run(d, &prog.entries[0], state, inputs, outputs, err, sizeof err) != RT_OK ||
	    rt_device_sync(d, state, err, sizeof err) != RT_OK)
		fail_msg("%s", err);
	rt_device_free(d);
	rt_program_free(&prog);
	cl_launches_free(l, &p, 1);
	rt_sb_free(&src);
	rt_sb_free(&json);
	rt_sb_free(&data);
}

/* --- rendered programs --------------------------------------------------------- */

/* g's entry "main" lowered for target t (NULL: the default) into *p and
 * rendered into src; free with rendered_free. */
static cl_launch **render_main(ir_graph *g, const cl_target *t, kir_program **p, rt_strbuf *src)
{
	kir_target kt;
	cl_kir_target(t ? t : &cl_target_default, &kt);
	*p = kir_lower(g, ir_entry_find(g, "main"), &kt);
	assert_non_null(*p);
	cl_launch **l = cl_render(p, 1, t, src);
	assert_non_null(l);
	return l;
}

static void rendered_free(cl_launch **l, kir_program *p, rt_strbuf *src)
{
	cl_launches_free(l, &p, 1);
	rt_sb_free(src);
	kir_program_free(p);
}

/* --- the optimizer's batch ---------------------------------------------------- */

/* A copy of kernel `name`'s OpenCL C in src (up to its closing brace). */
static char *kernel_text(const char *src, const char *name)
{
	char head[128];
	snprintf(head, sizeof head, "/* %s: ", name);
	const char *at = strstr(src, head), *end = at ? strstr(at, "\n}\n") : NULL;
	if (!end)
		fail_msg("no kernel %s in the source", name);
	char *text = malloc((size_t)(end - at) + 1);
	assert_non_null(text);
	memcpy(text, at, (size_t)(end - at));
	text[end - at] = 0;
	return text;
}

static int occurrences(const char *text, const char *what)
{
	int n = 0;
	for (const char *at = strstr(text, what); at; at = strstr(at + 1, what))
		n++;
	return n;
}

/* Adam over two weights of one shape, w and v, and b, s of others; b
 * between w and v, so that their updates are not one kernel side by side
 * (merge.c) but segments of the batch. */
static const char *twin_adam_lua =
	"local ddpm = require 'ddpm'\n"
	"local optim = require 'ddpm.optim'\n"
	"local x = ddpm.input('x', { 6, 5 })\n"
	"local w = ddpm.param('w', { 3, 5 }, { init = 'normal', a = 0, b = 1 })\n"
	"local v = ddpm.param('v', { 3, 5 }, { init = 'normal', a = 0, b = 1 })\n"
	"local b = ddpm.param('b', { 3 }, { init = 'normal', a = 0, b = 1 })\n"
	"local s = ddpm.param('s', { 1 }, { init = 'uniform', a = 1, b = 2 })\n"
	"local y = (x:matmul(w:transpose(0, 1)) + (x * x):matmul(v:transpose(0, 1)) + b) * s\n"
	"local params = { { name = 'w', tensor = w }, { name = 'b', tensor = b }, { name = 'v', tensor = v },\n"
	"  { name = 's', tensor = s } }\n"
	"local opt = optim.Adam(params, { lr = 1e-2, clip = 0.5, warmup = 3, ema = 0.9, loss_scaling = true })\n"
	"local updates, info = opt:minimize((y * y):mean())\n"
	"ddpm.entry('main', { grad_norm = info.grad_norm, lr = info.lr, finite = info.finite }, updates)\n";

/* The optimizer's batch kernel writes w and v (one shape) with one form
 * of code, which each segment's range runs on the segment's buffers:
 * fewer forms than segments; and the step matches the interpreter's. */
static void batch_segments_of_one_shape_share_code(void **unused)
{
	ir_graph *g = load_script(twin_adam_lua, NULL, 0);
	kir_program *p;
	rt_strbuf src = { 0 };
	cl_launch **l = render_main(g, target, &p, &src);
	const kir_kernel *k = &p->k[p->nk - 1];
	assert_true(kir_is_batch(k));
	char *text = kernel_text(src.p, k->name);
	int forms = occurrences(text, "IDX at = -1;"), picks = occurrences(text, "if (gid >= ");
	print_message("    %s: %d segments, %d forms\n", k->name, k->nseg, forms);
	if (picks != k->nseg || forms < 1 || forms >= k->nseg || !strstr(text, "else if (gid >= "))
		fail_msg("%s: %d segments in %d forms, %d picked:\n%s", k->name, k->nseg, forms, picks, text);
	free(text);
	rendered_free(l, p, &src);
	check_main(g);
}

/* --- the index type ----------------------------------------------------------- */

/* A row at the far end of a buffer of 2^32 elements, and a small mean
 * (a reduction: a kernel of its own). */
static const char *far_row_lua =
	"local ddpm = require 'ddpm'\n"
	"local big = ddpm.input('big', { 65536, 65536 })\n"
	"local small = ddpm.input('small', { 4, 8 })\n"
	"ddpm.entry('main', { far = big:slice(0, 65535, 65536) * 2, near = (small * small):mean() })\n";

static int reads_buffer(const kir_program *p, const kir_kernel *k, const char *name)
{
	for (int i = 0; i < k->nx; i++)
		if (k->x[i].kind == KX_LOAD && p->buf[k->x[i].buf].name && !strcmp(p->buf[k->x[i].buf].name, name))
			return 1;
	return 0;
}

/* Each kernel indexes in int unless its own indices reach past int's
 * range (64-bit multiplication and division take several instructions
 * on a GPU): here only the kernel that reads the far row of `big`, whose
 * domain is small, takes long. Rendered, not run (`big` would take
 * 16 GiB). */
static void index_type_follows_each_kernel(void **unused)
{
	ir_graph *g = load_script(far_row_lua, NULL, 0);
	kir_program *p;
	rt_strbuf src = { 0 };
	cl_launch **l = render_main(g, target, &p, &src);
	int wide = 0, narrow = 0;
	for (int i = 0; i < p->nk; i++) {
		const kir_kernel *k = &p->k[i];
		int far = reads_buffer(p, k, "big");
		const char *want = far ? "typedef long IDX;" : "typedef int IDX;";
		char *text = kernel_text(src.p, k->name);
		if (!strstr(text, want))
			fail_msg("%s: no %s in\n%s", k->name, want, text);
		wide += far;
		narrow += !far;
		free(text);
	}
	assert_int_equal(wide, 1);
	assert_true(narrow >= 1);
	rendered_free(l, p, &src);
	ir_free(g);
}

/* --- each target's own schedule ---------------------------------------------- */

/* A 3x3 convolution of 64 channels: the CPU's cost model runs it by
 * Winograd's algorithm, the GPU's schedule directly. */
static const char *wide_conv_lua =
	"local ddpm = require 'ddpm'\n"
	"local x = ddpm.input('x', { 2, 64, 8, 8 })\n"
	"local w = ddpm.param('w', { 64, 64, 3, 3 }, { init = 'normal', a = 0, b = 0.1 })\n"
	"ddpm.entry('main', { y = ddpm.conv2d(x, w, { padding = 1 }) })\n";

/* compile --target all lowers the entries for each target with its own
 * schedule (--report: each target's line, then its kernels): the CPU's
 * kernels of wide_conv_lua run Winograd's algorithm, the OpenCL kernels
 * (the program an OpenCL device runs) do not. */
static void target_all_schedules_each_target(void **unused)
{
	char tmp[64], script[256], out[1 << 16];
	tu_tmpdir(tmp, sizeof tmp);
	tu_write(tmp, "wide.lua", wide_conv_lua, -1, script, sizeof script);
	if (tu_outputf(out, sizeof out, "'%s' compile '%s' --target all --tuning '%s/none' --report -o '%s/wide'",
	               DDPMC_BIN, script, tmp, tmp))
		fail_msg("compile failed: %s", out);
	char *gpu = strstr(out, "target opencl:");
	if (!tu_starts(out, "target cpu") || !gpu)
		fail_msg("not a report of both targets, the CPU's first:\n%s", out);
	*gpu = 0;
	if (!strstr(out, "winograd") || strstr(gpu + 1, "winograd"))
		fail_msg("expected Winograd kernels for the CPU only:\n%s\n-- then --\n%s", out, gpu + 1);
	tu_rmtree(tmp);
}

/* --- weight gradients: a split reduction ------------------------------------ */

/* Odd sizes: 6 images of 7 channels, reductions of 11 x 13 and 6 x 6
 * pixels per image (not multiples of the tile's chunk of 16), 19 and 9
 * output channels. */
static const char *split_lua =
	"local ddpm = require 'ddpm'\n"
	"local x = ddpm.param('x', { 6, 7, 11, 13 }, { init = 'normal', a = 0, b = 1 })\n"
	"local w = ddpm.param('w', { 19, 7, 3, 3 }, { init = 'normal', a = 0, b = 0.5 })\n"
	"local w2 = ddpm.param('w2', { 9, 7, 2, 3 }, { init = 'normal', a = 0, b = 0.5 })\n"
	"local y = ddpm.conv2d(x, w, { padding = 1 })\n"
	"local y2 = ddpm.conv2d(x, w2, { stride = 2, padding = { 1, 0, 0, 1 } })\n"
	"local g = ddpm.grad(y, { w }, ddpm.input('seed', y:shape()))\n"
	"local g2 = ddpm.grad(y2, { w2 }, ddpm.input('seed2', y2:shape()))\n"
	"ddpm.entry('main', { gw = g[1], gw2 = g2[1] })\n";

/* The work-groups of every partials kernel of g's entry "main" rendered
 * for target t (groups[0..2)), each checked to be tiled with its image
 * blocks as the tiles' batches and one factor staged by reduction steps. */
static void split_groups(ir_graph *g, const cl_target *t, int64_t *groups)
{
	kir_program *p;
	rt_strbuf src = { 0 };
	cl_launch **l = render_main(g, t, &p, &src);
	int split = 0;
	for (int i = 0; i < p->nk; i++) {
		const kir_kernel *k = &p->k[i];
		if (!strstr(k->name, "grad_weight") || k->rank != 5)
			continue;
		char *text = kernel_text(src.p, k->name);
		assert_true(split < 2);
		groups[split] = l[0][i].v[0].global / l[0][i].v[0].local;
		print_message("    %s: %lld blocks, %lld work-groups for %d compute units x %d\n", k->name,
		              (long long)k->ext[0], (long long)groups[split], t->compute_units, t->groups_per_unit);
		if (k->ext[0] < 2 || !strstr(text, "__local float ta") || !strstr(text, "const IDX v0 = bat;") ||
		    groups[split] % k->ext[0])
			fail_msg("%s: the partials over %lld image blocks are not tiled with the blocks as batches",
			         k->name, (long long)k->ext[0]);
		if (!strstr(text, "[(lid % 16) * "))
			fail_msg("%s: no factor is staged by reduction steps", k->name);
		free(text);
		split++;
	}
	assert_int_equal(split, 2);
	rendered_free(l, p, &src);
}

/* The lowering splits a weight gradient's reduction over N x H x W into
 * image blocks: a partials kernel over (block, KH, KW, C, O), then a
 * kernel that sums the blocks in order. On OpenCL the partials are a
 * tiled contraction whose blocks number the tiles' batches (so every
 * block's tiles are work-groups of their own), its image operand staged
 * pixels first (neighbouring work-items read a row: coalesced), and the
 * result matches the interpreter: rendered for the default target (it
 * asks for more work-groups than these have: 1 x 1 points per
 * work-item) and for a GPU of 2 compute units (larger micro-tiles). */
static void split_weight_gradient_matches_interpreter(void **unused)
{
	static const cl_target small = { .compute_units = 2, .groups_per_unit = 1 };
	ir_graph *g = load_script(split_lua, NULL, 0);
	int64_t many[2], few[2];
	split_groups(g, &cl_target_default, many);
	split_groups(g, &small, few);
	if (!(few[0] < many[0] && few[1] < many[1]))
		fail_msg("for 2 compute units the partials take %lld and %lld work-groups, not fewer than for %d",
		         (long long)few[0], (long long)few[1], cl_target_default.compute_units);
	rt_tensorset in = { 0 };
	random_inputs(g, &in, -1, 1, 1);
	print_message("    worst relative difference %.3g\n", check_entry(g, "main", &in, NULL, 1e-4));
	target = &small;
	print_message("    for 2 compute units: %.3g\n", check_entry(g, "main", &in, NULL, 1e-4));
	target = NULL;
	rt_set_free(&in);
	ir_free(g);
}

/* --- the variants tune chooses from ------------------------------------------- */

/* Contractions with sides of 130 and 135 points (micro-tiles up to 8 x 8),
 * a convolution and its gradients (the weight gradient's partials tiled
 * by image blocks), long reductions (work-group variants) and a long
 * elementwise kernel (67950 points: work-group sizes of its launch). */
static const char *variants_lua =
	"local ddpm = require 'ddpm'\n"
	"local a = ddpm.input('a', { 130, 37 })\n"
	"local b = ddpm.input('b', { 37, 135 })\n"
	"local x = ddpm.param('x', { 3, 5, 13, 11 }, { init = 'normal', a = 0, b = 1 })\n"
	"local w = ddpm.param('w', { 19, 5, 3, 3 }, { init = 'normal', a = 0, b = 0.5 })\n"
	"local y = ddpm.conv2d(x, w, { padding = 1 })\n"
	"local g = ddpm.grad(y, { x, w }, ddpm.input('seed', y:shape()))\n"
	"local long = ddpm.input('long', { 3, 150, 151 })\n"
	"local gw = ddpm.param('gw', { 3 }, { init = 'normal', a = 1, b = 0.5 })\n"
	"local gb = ddpm.param('gb', { 3 }, { init = 'normal', a = 0, b = 0.5 })\n"
	"ddpm.entry('main', { mm = a:matmul(b), tb = b:transpose(0, 1):matmul(a:transpose(0, 1)),\n"
	"  y = y, gx = g[1], gw = g[2], s = long:sigmoid() * 2, m = long:mean({ 1, 2 }),\n"
	"  v = long:var(-1), sall = long:sum(), vall = long:var(),\n"
	"  joint = ddpm.cat({ (long * long):reshape { -1 }, a:reshape { -1 } }, 0):sum():sqrt(),\n"
	"  jmax = ddpm.cat({ long:reshape { -1 }, b:reshape { -1 } }, 0):max(),\n"
	"  gn = ddpm.F.group_norm((long + 3):reshape { 1, 3, 150, 151 }, 1, gw, gb, 1e-6) })\n";

/* Every variant `tune` may launch computes what the compiler's choice
 * does: each kernel launches its variant v (where it has one) for v = 1,
 * 2, ... while one has it (at least 6), against the interpreter at the
 * contractions' tolerance; rendered for the default GPU (small
 * micro-tiles: few work-groups here) and for one of 2 compute units
 * (4 x 4 first, then up to 8 x 8); 8 x 8 micro-tiles, vector reads and
 * reductions in work-groups of 1024 (both targets' most) among them.
 * Sums and maxima of a whole tensor and of several (joint) run split
 * over work-groups (the compiler's choice) and in one (a variant); the
 * statistics of a GroupNorm of one group over a whole tensor (its sum of
 * squares reads the mean: a split group has only its share) never split. */
static void every_variant_matches_interpreter(void **unused)
{
	static const cl_target small = { .compute_units = 2, .groups_per_unit = 1, .max_group = 1024 };
	const cl_target *targets[] = { NULL, &small };
	ir_graph *g = load_script(variants_lua, NULL, 0);
	rt_tensorset in = { 0 };
	random_inputs(g, &in, -1, 1, 1);
	for (variant = 1; variant < CL_MAX_VARIANTS; variant++) {
		int before = swapped;
		for (int t = 0; t < 2; t++) {
			target = targets[t];
			double worst = check_entry(g, "main", &in, NULL, 1e-4);
			print_message("    variant %d for %d compute units: worst relative difference %.3g\n",
			              variant, (targets[t] ? targets[t] : &cl_target_default)->compute_units, worst);
		}
		if (swapped == before && variant <= 6)
			fail_msg("no kernel has a variant %d", variant);
		if (swapped == before)
			break;
	}
	variant = 0;
	target = NULL;
	if (!widest)
		fail_msg("no kernel ran 8 x 8 micro-tiles");
	if (!vectors)
		fail_msg("no kernel ran a tile read as vectors");
	if (!largest)
		fail_msg("no reduction ran in work-groups of 1024");
	if (!ran_split || !ran_one)
		fail_msg("reductions to one point ran split %d times, in one work-group %d times", ran_split, ran_one);
	rt_set_free(&in);
	ir_free(g);
}

/* The MSE loss of 67950 errors and its gradient, one kernel storing the
 * gradient inside the loop of the loss's sum: split over work-groups
 * (each stores the gradient of its share of the errors), and in one
 * work-group (a variant), as the interpreter computes them. */
static void mse_gradient_splits_over_groups(void **unused)
{
	ir_graph *g = load_script("local ddpm = require 'ddpm'\n"
	                          "local target = ddpm.input('target', { 3, 150, 151 })\n"
	                          "local pred = ddpm.param('pred', { 3, 150, 151 }, { init = 'normal', a = 0, b = 1 })\n"
	                          "local scale = ddpm.param('scale', {}, { init = 'uniform', a = 2, b = 3 })\n"
	                          "local mse = ((pred - target) * (pred - target)):mean()\n"
	                          "ddpm.entry('main', { mse = mse, g = ddpm.grad(mse * scale, { pred })[1] })\n",
	                          NULL, 0);
	rt_tensorset in = { 0 };
	random_inputs(g, &in, -1, 1, 1);
	int split = ran_split_inner, one = ran_one;
	check_entry(g, "main", &in, NULL, 1e-4);
	for (variant = 1; variant < CL_MAX_VARIANTS && ran_one == one; variant++)
		check_entry(g, "main", &in, NULL, 1e-4);
	variant = 0;
	if (ran_split_inner == split || ran_one == one)
		fail_msg("the MSE kernel ran split %d times, in one work-group %d times", ran_split_inner - split,
		         ran_one - one);
	rt_set_free(&in);
	ir_free(g);
}

/* --- kernels within the argument limit ---------------------------------------- */

/* Every kernel of entry `only` of g (NULL: of every entry) lowered for t
 * (kir_set_args): the most buffers one takes, and how many kernels are
 * chunks of a split. */
static int most_args(ir_graph *g, const char *only, const kir_target *t, int *chunks)
{
	int most = 0;
	*chunks = 0;
	for (int e = 0; e < g->nentries; e++) {
		if (only && strcmp(g->entries[e].name, only))
			continue;
		kir_program *p = kir_lower(g, &g->entries[e], t);
		for (int n = 0; n < p->nk; n++) {
			kir_set_args(&p->k[n]);
			most = p->k[n].narg > most ? p->k[n].narg : most;
			*chunks += strstr(p->k[n].name, "_c0") != NULL;
		}
		kir_program_free(p);
	}
	return most;
}

/* A device's kernel arguments may take as few as 1024 bytes (OpenCL's
 * least; Intel's GPUs 2048): 8 each for the arena, the scratch and every
 * buffer. cl_tiny's optimizer touches every parameter in one batch and
 * one joint reduction, over 450 buffers before they split. */
static void cl_tiny_within_argument_limit(void **unused)
{
	kir_target t;
	int chunks;
	cl_kir_target(&cl_target_default, &t);
	ir_graph *g = tu_load("tests/models/cl_tiny.lua");
	int most = most_args(g, NULL, &t, &chunks);
	print_message("    cl_tiny: at most %d buffers a kernel (%d bytes of arguments); %d kernels split\n", most,
	              8 * (most + 2), chunks);
	if (8 * (most + 2) > 1024 || chunks < 2)
		fail_msg("a kernel takes %d bytes of arguments (%d split)", 8 * (most + 2), chunks);
	ir_free(g);
}

/* Under a limit of 8 buffers a kernel, every kernel within it and every
 * output and parameter as the interpreter's: 40 parameters' doubles (an
 * elementwise kernel of 40 stores), 20 of other shapes tripled (a batch),
 * the root of the 40's sum of squares and the maximum of the 20 (joint
 * reductions of 40 and 20 pieces); and 12 triples (m, v, p) updated in
 * place as an optimizer does, p from the new m and v, in one kernel that
 * splits by triple (a part with p's store alone would read the m an
 * earlier part wrote). */
static void split_kernels_match_interpreter(void **unused)
{
	rt_strbuf lua = { 0 };
	rt_sb_puts(&lua, "local ddpm = require 'ddpm'\nlocal out, sq = {}, {}\n"
	                 "for i = 1, 40 do\n"
	                 "  local p = ddpm.param('p' .. i, { 5 }, { init = 'normal', a = 0, b = 1 })\n"
	                 "  out['d' .. i] = p * 2\n"
	                 "  sq[i] = (p * p):reshape { -1 }\n"
	                 "end\n"
	                 "out.norm = ddpm.cat(sq, 0):sum():sqrt()\n"
	                 "local flat = {}\n"
	                 "for i = 1, 20 do\n"
	                 "  local r = ddpm.param('r' .. i, { i, 2 }, { init = 'normal', a = 0, b = 1 })\n"
	                 "  out['t' .. i] = r * 3\n"
	                 "  flat[i] = r:reshape { -1 }\n"
	                 "end\n"
	                 "out.top = ddpm.cat(flat, 0):max()\n"
	                 "ddpm.entry('main', out)\n"
	                 "local up = {}\n"
	                 "for i = 1, 12 do\n"
	                 "  local m = ddpm.param('m' .. i, { 5 }, { init = 'normal', a = 0, b = 1 })\n"
	                 "  local v = ddpm.param('v' .. i, { 5 }, { init = 'normal', a = 0, b = 1 })\n"
	                 "  local p = ddpm.param('q' .. i, { 5 }, { init = 'normal', a = 0, b = 1 })\n"
	                 "  local m2, v2 = m * 0.9 + p, v * 0.5 + p * p\n"
	                 "  up['m' .. i], up['v' .. i], up['q' .. i] = m2, v2, p - m2 * v2\n"
	                 "end\n"
	                 "ddpm.entry('update', { n = up.q1:sum() }, up)\n");
	ir_graph *g = load_script(lua.p, NULL, 0);
	rt_sb_free(&lua);
	rt_tensorset in = { 0 };
	max_args = 8;
	int chunks, most = most_args(g, "main", case_target(), &chunks);
	int uchunks, umost = most_args(g, "update", case_target(), &uchunks);
	print_message("    at most %d buffers a kernel, %d kernels split; updates: %d, %d\n", most, chunks, umost,
	              uchunks);
	if (most > 8 || chunks < 4 || umost > 8 || uchunks < 1)
		fail_msg("under a limit of 8 buffers: a kernel takes %d, %d split; updates %d, %d", most, chunks, umost,
		         uchunks);
	double worst = check_entry(g, "main", &in, NULL, 1e-5);
	print_message("    worst relative difference %.3g\n", worst);
	worst = check_entry(g, "update", &in, NULL, 1e-5);
	print_message("    updates in place: worst relative difference %.3g\n", worst);
	max_args = 0;
	rt_set_free(&in);
	ir_free(g);
}

/* Nodes that read more buffers than a kernel may take, each through one
 * kernel before the split: a concat of 130 parameters, one of 70
 * products of two (pieces of several buffers), and a sum of 140
 * parameters written as one chain. Lowered for PoCL's own limit (1024
 * bytes, as OpenCL's least) and for 8 buffers, every kernel keeps within
 * it and every output is the interpreter's. */
static void wide_nodes_match_interpreter(void **unused)
{
	ir_graph *g = load_script("local ddpm = require 'ddpm'\nlocal p, prod = {}, {}\n"
	                          "for i = 1, 140 do\n"
	                          "  p[i] = ddpm.param('p' .. i, { 2, 3 }, { init = 'normal', a = 0, b = 1 })\n"
	                          "end\n"
	                          "local sum = p[1]\n"
	                          "for i = 2, 140 do sum = sum + p[i] end\n"
	                          "for i = 1, 70 do prod[i] = p[i] * p[i + 70] end\n"
	                          "ddpm.entry('main', { cat = ddpm.cat({ table.unpack(p, 1, 130) }, 1) * 2,\n"
	                          "                     prod = ddpm.cat(prod, 0) - 1, sum = sum })\n",
	                          NULL, 0);
	rt_tensorset in = { 0 };
	const int limits[] = { 0, 8 };
	for (int i = 0; i < 2; i++) {
		max_args = limits[i];
		int chunks, most = most_args(g, "main", case_target(), &chunks);
		int allowed = case_target()->max_args;
		print_message("    limit %d buffers: at most %d a kernel\n", allowed, most);
		if (most > allowed)
			fail_msg("a kernel takes %d buffers, over the limit of %d", most, allowed);
		double worst = check_entry(g, "main", &in, NULL, 1e-5);
		print_message("    worst relative difference %.3g\n", worst);
	}
	max_args = 0;
	rt_set_free(&in);
	ir_free(g);
}

/* --- scripts made at random -------------------------------------------------- */

enum { RANDOM_SCRIPTS = 60 };

/* How a random script is lowered the second time, by seed: a third of
 * them with Winograd's algorithm (F(2x2, 3x3) and F(4x4, 3x3) in turn),
 * a third under a limit of 8 buffers a kernel (split kernels: chunks,
 * totals, parts of batches), a third as the target chooses. */
static const struct {
	const char *label;
	kir_winograd winograd;
	int max_args;
	double tol;
} second_lowering[] = {
	{ ", Winograd F(2x2, 3x3)", KIR_WINOGRAD_2X2, 0, 1e-4 },
	{ ", 8 buffers a kernel", KIR_WINOGRAD_CHOSEN, 8, 1e-4 },
	{ "", KIR_WINOGRAD_CHOSEN, 0, 1e-4 },
	{ ", Winograd F(4x4, 3x3)", KIR_WINOGRAD_4X4, 0, 2e-4 },      /* as test_llvm's */
};

/* The script's entry with the compiler's choices, then on a small GPU
 * with one of the variants, lowered as second_lowering[way] says. */
static void random_script_matches_interpreter(const char *script, uint64_t seed)
{
	static const cl_target small = { .compute_units = 2, .groups_per_unit = 1, .max_group = 1024 };
	static char stage[128];
	rt_tensorset in = { 0 };
	ir_graph *g = random_script_load(script, seed, &in);
	random_stage = "the compiler's choices";
	check_entry(g, "main", &in, NULL, 1e-4);
	int way = seed % 6 == 3 ? 3 : (int)(seed % 3);
	target = &small;
	variant = 1 + (int)(seed % (CL_MAX_VARIANTS - 1));
	max_args = second_lowering[way].max_args;
	kir_target t = *case_target();
	t.winograd = second_lowering[way].winograd;
	snprintf(stage, sizeof stage, "variant %d for 2 compute units%s", variant, second_lowering[way].label);
	random_stage = stage;
	check_entry_for(&t, g, "main", &in, NULL, second_lowering[way].tol);
	max_args = 0;
	target = NULL;
	variant = 0;
	rt_set_free(&in);
	ir_free(g);
}

/* --- a compiled executable on both devices --------------------------------- */

enum { NIMG = 24, SIDE = 16, NSAMPLE = 4 };

static char dir[64], exe[128], data[128];

static int run_exe(char *err, size_t errlen, const char *fmt, ...)
{
	char args[2048], cmd[2300];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(args, sizeof args, fmt, ap);
	va_end(ap);
	snprintf(cmd, sizeof cmd, "'%s' %s", exe, args);
	return tu_stderr_of(cmd, err, errlen);
}

static int compile_tiny(void **unused)
{
	/* PoCL compiles each of the program's hundreds of kernels at its first
	 * launch; unoptimised, in about half the time (the kernel cases above
	 * ran optimised) */
	setenv("DDPMC_CL_OPTIONS", "-cl-opt-disable", 1);
	return tu_tiny_program("tests/models/cl_tiny.lua", "--target all", dir, exe, data, NIMG, SIDE);
}

static int remove_tiny(void **unused)
{
	tu_rmtree(dir);
	return 0;
}

/* Trains 3 steps on device into run `out`, a metrics line every `every`
 * steps; its stderr into err. */
static void train(const char *device, const char *out, int every, char *err, size_t errlen)
{
	if (run_exe(err, errlen, "train --data '%s' --steps 3 --log-every %d --seed 5 --out '%s/%s' "
	            "--device %s", data, every, dir, out, device))
		fail_msg("train --device %s: %s", device, err);
}

/* The `key` of every line of run/metrics.jsonl. */
static int read_metric(const char *run, const char *key, double *v, int max)
{
	char path[256], line[1024], quoted[64];
	snprintf(path, sizeof path, "%s/%s/metrics.jsonl", dir, run);
	snprintf(quoted, sizeof quoted, "\"%s\": ", key);
	FILE *f = fopen(path, "r");
	int n = 0;
	if (!f)
		fail_msg("%s is missing", path);
	while (n < max && fgets(line, sizeof line, f)) {
		const char *at = strstr(line, quoted);
		if (at)
			v[n++] = strtod(at + strlen(quoted), NULL);
	}
	fclose(f);
	return n;
}

/* The OpenCL source comes in parts that build at once, several for a
 * train step: the first run says it built them all (sampling_matches_cpu
 * checks that a later run takes them from the cache). */
static void check_parts_built(const char *log)
{
	const char *at = strstr(log, "built ");
	int built = 0, parts = 0;
	if (!at || sscanf(at, "built %d of %d OpenCL programs", &built, &parts) != 2)
		fail_msg("the first OpenCL run does not say what it built: %s", log);
	print_message("    built %d of %d OpenCL programs\n", built, parts);
	if (!(built == parts && parts > 1))
		fail_msg("built %d of %d programs; expected all of several parts", built, parts);
}

/* The largest difference between the states of runs a and b; where: the
 * tensor it is in. */
static double state_difference(const char *run_a, const char *run_b, char *where, size_t len)
{
	rt_tensorset a, b;
	tu_read_checkpoint(dir, run_a, &a);
	tu_read_checkpoint(dir, run_b, &b);
	assert_int_equal(a.n, b.n);
	double worst = 0;
	snprintf(where, len, "-");
	for (int i = 0; i < a.n; i++) {
		const rt_tensor *x = &a.t[i], *y = rt_set_find(&b, x->name);
		assert_non_null(y);
		for (int64_t j = 0; j < rt_numel(x->rank, x->shape); j++) {
			double d = fabs(rt_load(x->dtype, x->data, j) - rt_load(y->dtype, y->data, j));
			if (!(d <= worst)) {
				worst = d;
				snprintf(where, len, "%s", x->name);
			}
		}
	}
	rt_set_free(&a);
	rt_set_free(&b);
	return worst;
}

/* Profiled runs report the kernels the OpenCL device ran (its own
 * program's, in a --target all executable): log holds entry's profile. */
static void check_profiled(const char *log, const char *entry)
{
	char want[128];
	snprintf(want, sizeof want, "profile %s: ", entry);
	CONTAINS(log, want, "by kind:");
}

/* Logging every 3 steps, steps 2 and 3 are queued without a wait between
 * them: the same state as waiting for each, and the line's loss_mean is
 * the mean of the three losses. The run is profiled (DDPMC_PROFILE=1),
 * which changes nothing it computes. */
static void check_queued_steps(void)
{
	char log[16384], where[256];
	setenv("DDPMC_PROFILE", "1", 1);
	train("opencl", "opencl-queued", 3, log, sizeof log);
	unsetenv("DDPMC_PROFILE");
	check_profiled(log, "train_step");
	double worst = state_difference("opencl", "opencl-queued", where, sizeof where);
	if (worst != 0)
		fail_msg("queued steps differ from waited ones by %g in %s", worst, where);
	double each[8], mean[8];
	assert_true(read_metric("opencl", "loss", each, 8) >= 3);
	assert_int_equal(read_metric("opencl-queued", "loss_mean", mean, 8), 1);
	double want = (each[0] + each[1] + each[2]) / 3;
	print_message("    queued: the same state; loss_mean %.9g, the three losses' mean %.9g\n",
	              mean[0], want);
	if (!(fabs(mean[0] - want) <= 1e-6 * fabs(want)))
		fail_msg("loss_mean %.9g, the three steps' mean %.9g", mean[0], want);
}

static void train_step_matches_cpu(void **unused)
{
	char log[4096], where[256];
	train("cpu", "cpu", 1, log, sizeof log);
	train("opencl", "opencl", 1, log, sizeof log);
	check_parts_built(log);
	double worst = state_difference("cpu", "opencl", where, sizeof where);
	print_message("    state after 3 steps: max |opencl - cpu| = %.3g (%s)\n", worst, where);
	if (!(worst <= 2e-4))
		fail_msg("state differs by %g in %s (limit 2e-4)", worst, where);
	double la[8], lb[8];
	int n = read_metric("cpu", "loss", la, 8);
	assert_int_equal(n, read_metric("opencl", "loss", lb, 8));
	assert_true(n >= 3);
	for (int i = 0; i < n; i++)
		if (!(fabs(la[i] - lb[i]) <= 1e-4 * fabs(la[i])))
			fail_msg("loss %d: cpu %.9g, opencl %.9g", i, la[i], lb[i]);
	check_queued_steps();
}

/* `info` of a --target all executable lists the entries of both programs. */
static void info_lists_both_programs(void **unused)
{
	char cmd[512], out[16384];
	snprintf(cmd, sizeof cmd, "'%s' info", exe);
	if (tu_output_of(cmd, out, sizeof out))
		fail_msg("info: %s", out);
	const char *cpu = strstr(out, "entries:\n"), *gpu = strstr(out, "entries on OpenCL (lowered for a GPU):\n");
	const char *cpu_step = cpu ? strstr(cpu, "\n  train_step ") : NULL;
	if (!gpu || !cpu_step || cpu_step > gpu || !strstr(gpu, "\n  train_step "))
		fail_msg("info should list train_step in both programs: %s", gpu ? gpu : out);
}

/* opencl:N counts the devices `opencl` chooses from modulo their number
 * (MPI rank r takes opencl:r): PoCL shows two CPU devices when asked. */
static void device_index_counts_modulo_the_devices(void **unused)
{
	char out[4096];
	const char *want[] = { "OpenCL 0.0", "OpenCL 0.1", "OpenCL 0.0" };
	setenv("POCL_DEVICES", "pthread pthread", 1);
	for (int n = 0; n < 3; n++) {
		char cmd[2300];
		snprintf(cmd, sizeof cmd, "'%s' sample --ckpt '%s/cpu/checkpoint.safetensors' --n 1 "
		         "--sampler ddim --steps 1 --out '%s/one.png' --device opencl:%d", exe, dir, dir, n);
		if (tu_output_of(cmd, out, sizeof out))
			fail_msg("--device opencl:%d: %s", n, out);
		if (!strstr(out, want[n]))
			fail_msg("--device opencl:%d should take %s: %s", n, want[n], out);
	}
	unsetenv("POCL_DEVICES");
}

/* Samples on device into folder `out`; its stderr into err. */
static void sample(const char *device, const char *out, char *err, size_t errlen)
{
	if (run_exe(err, errlen, "sample --ckpt '%s/cpu/checkpoint.safetensors' --n %d --sampler ddim "
	            "--steps 5 --seed 9 --out-dir '%s/%s' --device %s", dir, NSAMPLE, dir, out, device))
		fail_msg("sample --device %s: %s", device, err);
}

static void sampling_matches_cpu(void **unused)
{
	char p1[256], p2[256], err[16384];
	sample("cpu", "scpu", err, sizeof err);
	setenv("DDPMC_PROFILE", "1", 1);
	sample("opencl", "scl", err, sizeof err);
	unsetenv("DDPMC_PROFILE");
	if (strstr(err, "OpenCL program"))
		fail_msg("the programs the train step built were built again: %s", err);
	check_profiled(err, "sample_ddim");
	int worst = 0, differ = 0;
	for (int i = 0; i < NSAMPLE; i++) {
		uint8_t *a = NULL, *b = NULL;
		int64_t h, w;
		snprintf(p1, sizeof p1, "%s/scpu/image_%04d.png", dir, i);
		snprintf(p2, sizeof p2, "%s/scl/image_%04d.png", dir, i);
		if (rt_image_read(p1, 1, SIDE, SIDE, NULL, &a, &h, &w, err, sizeof err) != RT_OK ||
		    rt_image_read(p2, 1, SIDE, SIDE, NULL, &b, &h, &w, err, sizeof err) != RT_OK)
			fail_msg("%s", err);
		for (int j = 0; j < SIDE * SIDE; j++) {
			int d = abs((int)a[j] - (int)b[j]);
			worst = d > worst ? d : worst;
			differ += d != 0;
		}
		free(a);
		free(b);
	}
	print_message("    %d images: %d of %d pixels differ, by at most %d/255\n", NSAMPLE, differ,
	              NSAMPLE * SIDE * SIDE, worst);
	assert_true(worst <= 1);
}

int main(void)
{
	char cache[64];
	tu_tmpdir(cache, sizeof cache);         /* the program cache writes nowhere else */
	setenv("DDPMC_CL_CACHE", cache, 1);
	/* DDPMC_TEST_FILTER=conv2d* runs the cases whose names match (cmocka's
	 * * and ? wildcards), DDPMC_TEST_SKIP those that do not: the whole
	 * test takes many minutes on PoCL, and ctest runs the random scripts
	 * (seed *) as a test of their own beside the rest */
	if (getenv("DDPMC_TEST_FILTER"))
		cmocka_set_test_filter(getenv("DDPMC_TEST_FILTER"));
	if (getenv("DDPMC_TEST_SKIP"))
		cmocka_set_skip_filter(getenv("DDPMC_TEST_SKIP"));
	const struct CMUnitTest tests[] = {
		KERNEL_CASES,
		cmocka_unit_test(split_weight_gradient_matches_interpreter),
		cmocka_unit_test(every_variant_matches_interpreter),
		cmocka_unit_test(mse_gradient_splits_over_groups),
		cmocka_unit_test(batch_segments_of_one_shape_share_code),
		cmocka_unit_test(index_type_follows_each_kernel),
		cmocka_unit_test(target_all_schedules_each_target),
		cmocka_unit_test(cl_tiny_within_argument_limit),
		cmocka_unit_test(split_kernels_match_interpreter),
		cmocka_unit_test(wide_nodes_match_interpreter),
		cmocka_unit_test_setup_teardown(train_step_matches_cpu, compile_tiny, NULL),
		cmocka_unit_test(info_lists_both_programs),
		cmocka_unit_test(device_index_counts_modulo_the_devices),
		cmocka_unit_test_teardown(sampling_matches_cpu, remove_tiny),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	rc += run_random_graphs(RANDOM_SCRIPTS, random_script_matches_interpreter);
	tu_rmtree(cache);
	return rc;
}
