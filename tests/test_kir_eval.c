/* kir_eval: the kernel IR's reference evaluator held, as a backend, to the
 * cases of kernel_cases.h against the interpreter: lowering checked apart
 * from code generation, and ir_scalar's one meaning per op seen through
 * both evaluators. Then the schedule step (compiler/kir/schedule.c): its
 * decisions follow the target a backend describes, and every schedule
 * they can give matches the interpreter. Last, every value case lowered
 * under a limit of 4 buffers a kernel (kir_target.max_args, as OpenCL's
 * arguments impose): every kernel within it, the values unchanged. */
#include "kernel_cases.h"

#include "cl_render.h"

static const kir_target *schedule;      /* what the cases are lowered for (NULL: this host's CPU) */

static const kir_target *case_target(void)
{
	return schedule ? schedule : tu_cpu_target(NULL);
}

static void backend_run(ir_graph *g, kir_program *p, rt_tensorset *state, const rt_tensorset *inputs,
                        rt_tensorset *outputs)
{
	run_kir_eval(g, p, state, inputs, outputs, schedule ? schedule->max_args : 0);
}

/* --- the schedule, by target --------------------------------------------------------------------- */

/* The kernels of conv_lua's entry at dims d lowered for target t: their
 * count, and in *partials those over 5 vars (a weight gradient's partial
 * sums by image block). */
static int kernels_for(const kir_target *t, const int64_t *d, int *partials)
{
	char v[3][32];
	fe_option opts[3] = { { "n0", v[0] }, { "n1", v[1] }, { "n2", v[2] } };
	for (int i = 0; i < 3; i++)
		snprintf(v[i], sizeof v[i], "%lld", (long long)d[i]);
	ir_graph *g = load_script(conv_lua, opts, 3);
	kir_program *p = kir_lower(g, ir_entry_find(g, "main"), t);
	assert_non_null(p);
	int nk = p->nk;
	*partials = 0;
	for (int k = 0; k < p->nk; k++)
		*partials += p->k[k].rank == 5;
	kir_program_free(p);
	ir_free(g);
	return nk;
}

/* conv_lua at dims d against the interpreter, lowered for a, then b. */
static void conv_matches_interpreter_for(const kir_target *a, const kir_target *b, const int64_t *d)
{
	schedule = a;
	check_script(conv_lua, d, -1, 1, 1e-4);
	schedule = b;
	check_script(conv_lua, d, -1, 1, 1e-4);
	schedule = NULL;
}

/* Channels-last convolutions (a kernel computing T[n, y, x, o] and the
 * weight copy it reads) exist when the target's threshold admits conv_lua's
 * 48 channels, not when it does not; both schedules match the interpreter. */
static void channels_last_follows_the_target(void **state)
{
	static const int64_t d[3] = { 2, 3, 5 };
	kir_target wide = *tu_cpu_target(NULL), never = wide;
	wide.channels_last_min = 32, wide.channels_last_step = 16;
	never.channels_last_min = 1 << 30;
	int partials, with = kernels_for(&wide, d, &partials), without = kernels_for(&never, d, &partials);
	if (with <= without)
		fail_msg("channels-last from 32 channels: %d kernels, never: %d (expected more with)", with, without);
	conv_matches_interpreter_for(&wide, &never, d);
}

/* A weight gradient's reduction is split into one partials kernel per
 * weight gradient when the target's budget holds a block per image, and
 * not at all when it holds one block; both match the interpreter. */
static void weight_gradient_blocks_follow_the_target(void **state)
{
	static const int64_t d[3] = { 3, 2, 4 };
	kir_target many = *tu_cpu_target(NULL), one = many;
	many.partials_max_bytes = (int64_t)1 << 40;
	one.partials_max_bytes = 0;
	int split, unsplit;
	kernels_for(&many, d, &split);
	kernels_for(&one, d, &unsplit);
	if (split < 4 || unsplit != 0)
		fail_msg("partials kernels: %d with room for every block (want one per weight gradient, 4), "
		         "%d with room for none (want 0)", split, unsplit);
	conv_matches_interpreter_for(&many, &one, d);
}

/* Each backend describes its targets: AVX2 and AVX-512 code by their
 * vectors and registers, the OpenCL default by the H200's limits; every
 * threshold is set. */
static void backends_describe_their_targets(void **state)
{
	static const struct { const char *cpu; int lanes, registers; } x86[] = {
		{ "x86-64-v3", 8, 16 }, { "x86-64-v4", 16, 32 },
	};
	kir_target gpu;
	cl_kir_target(&cl_target_default, &gpu);
	for (int i = 0; i < TU_LEN(x86); i++) {
		const kir_target *t = tu_cpu_target(x86[i].cpu);
		if (t->lanes != x86[i].lanes || t->vector_registers != x86[i].registers)
			fail_msg("%s: %d lanes, %d vector registers; want %d, %d", x86[i].cpu, t->lanes,
			         t->vector_registers, x86[i].lanes, x86[i].registers);
		assert_true(t->channels_last_min > 0 && t->channels_last_step > 0 && t->partials_max_bytes > 0);
	}
	assert_int_equal(gpu.cores, cl_target_default.compute_units);
	assert_true(gpu.local_bytes > 0 && gpu.max_group > 0);
	assert_true(gpu.channels_last_min > 0 && gpu.channels_last_step > 0 && gpu.partials_max_bytes > 0);
}

/* --- the memory plan -------------------------------------------------------------------------------- */

/* Whether temporaries a and b of p are live at one kernel: from the first
 * that stores one to the last that loads it (stores only: the first). */
static int live_together(const kir_program *p, int a, int b)
{
	int first[2] = { -1, -1 }, last[2] = { -1, -1 }, buf[2] = { a, b };
	for (int n = 0; n < p->nk; n++)
		for (int j = 0; j < 2; j++) {
			for (int s = 0; s < p->k[n].nst; s++)
				if (p->k[n].st[s].buf == buf[j] && first[j] < 0)
					first[j] = n;
			for (int i = 0; i < p->k[n].nx; i++)
				if (p->k[n].x[i].kind == KX_LOAD && p->k[n].x[i].buf == buf[j])
					last[j] = n;
		}
	for (int j = 0; j < 2; j++)
		last[j] = last[j] < first[j] ? first[j] : last[j];
	return first[0] >= 0 && first[1] >= 0 && first[0] <= last[1] && first[1] <= last[0];
}

/* Every entry of a small diffusion program (train step, samplers):
 * temporaries live at the same time never share a byte, every one lies in
 * the arena, and the arena is no larger than the bytes of all of them. */
static void memory_plan_keeps_live_temporaries_apart(void **state)
{
	ir_graph *g = tu_load("tests/models/tiny_train.lua");
	for (int e = 0; e < g->nentries; e++) {
		kir_program *p = kir_lower(g, &g->entries[e], case_target());
		int64_t total = 0;
		for (int a = 0; a < p->nbuf; a++) {
			const kir_buffer *A = &p->buf[a];
			int64_t end_a = A->offset + A->numel * (int64_t)rt_dtype_size(A->dtype);
			if (A->kind != KB_TEMP || A->numel == 0)
				continue;
			total += (end_a - A->offset + 63) / 64 * 64;
			assert_true(A->offset >= 0 && A->offset % 64 == 0 && end_a <= p->arena_bytes);
			for (int b = a + 1; b < p->nbuf; b++) {
				const kir_buffer *B = &p->buf[b];
				int64_t end_b = B->offset + B->numel * (int64_t)rt_dtype_size(B->dtype);
				if (B->kind == KB_TEMP && B->numel > 0 && A->offset < end_b && B->offset < end_a &&
				    live_together(p, a, b))
					fail_msg("%s: temporaries %d and %d overlap while both live", g->entries[e].name, a, b);
			}
		}
		assert_true(p->arena_bytes <= total);
		kir_program_free(p);
	}
	ir_free(g);
}

/* A sum read through a reshape by an entry's output built long after it
 * (a bias gradient's (1, C, 1, 1) sum added to its gradient sum, the
 * train step's last nodes) can only be stored: forced when the nodes are
 * marked (force_unfusable_reductions), not found as a fusion conflict at
 * the output, which would build the 80 nodes between again. */
static const char *late_sum_lua =
	"local ddpm = require 'ddpm'\n"
	"local x = ddpm.input('x', { 4, 8, 6, 6 })\n"
	"local s = x:sum({ 0, 2, 3 }, true)\n"
	"local h = x\n"
	"for i = 1, 40 do h = (h * 1.5):sin() end\n"
	"ddpm.entry('main', { h = h, g = s:reshape { 8 } * 2 })\n";

static void unfusable_reductions_are_stored_without_rebuilds(void **state)
{
	ir_graph *g = load_script(late_sum_lua, NULL, 0);
	kir_program *p = kir_lower(g, ir_entry_find(g, "main"), case_target());
	print_message("    %lld nodes rebuilt after fusion conflicts\n", (long long)p->rebuilt);
	assert_int_equal(p->rebuilt, 0);
	kir_program_free(p);
	check_main(g);
}

/* --- the builders' common-subexpression index ----------------------------------------------------- */

/* Equal expressions are built once, among thousands (the index grows) and
 * after entries added past it (as a merge copies a kernel's expressions),
 * the last of equal entries found, as before the index was dropped. */
static void equal_expressions_are_built_once(void **state)
{
	kir_kernel k = { .rank = 1, .ext = { 4 } };
	int v = kir_var(&k, 0), sums[3000];
	for (int i = 0; i < 3000; i++)
		sums[i] = kir_op(&k, KT_F32, OP_add, v, kir_const(&k, KT_F32, i), -1);
	for (int i = 0; i < 3000; i++)
		assert_int_equal(kir_op(&k, KT_F32, OP_add, v, kir_const(&k, KT_F32, i), -1), sums[i]);
	assert_int_equal(k.nx, 1 + 2 * 3000);
	k.x = realloc(k.x, (size_t)(k.nx + 1) * sizeof *k.x);      /* a copy of sums[7], added past the index */
	k.x[k.nx] = k.x[sums[7]];
	int copy = k.nx++;
	assert_int_equal(kir_op(&k, KT_F32, OP_add, v, kir_const(&k, KT_F32, 7), -1), copy);
	kir_drop_index(&k);
	assert_int_equal(kir_op(&k, KT_F32, OP_add, v, kir_const(&k, KT_F32, 7), -1), copy);
	assert_int_equal(k.nx, copy + 1);
	kir_kernel_free(&k);
}

/* --- index spans (range.c) ------------------------------------------------------------------------ */

static int idx_op(kir_kernel *k, ir_opcode op, int a, int b)
{
	return kir_op(k, KT_IDX, op, a, b, -1);
}

static int idx_const(kir_kernel *k, double v)
{
	return kir_const(k, KT_IDX, v);
}

/* k with its store s alone: the kernel's only index. */
static kir_kernel store_alone(const kir_kernel *k, int s)
{
	kir_kernel one = *k;
	one.st = k->st + s;
	one.nst = 1;
	return one;
}

/* The least and the most value of any index expression k evaluates
 * over its domain (rank 2), every point evaluated. */
static void index_extremes(const kir_kernel *k, int64_t *lo, int64_t *hi)
{
	int64_t at[KIR_MAXVAR] = { 0 }, *val = malloc((size_t)k->nx * sizeof *val);
	char *used = calloc((size_t)k->nx, 1);
	assert_true(val && used);
	kir_mark_used(k, used);
	*lo = INT64_MAX;
	*hi = INT64_MIN;
	for (at[0] = 0; at[0] < k->ext[0]; at[0]++)
		for (at[1] = 0; at[1] < k->ext[1]; at[1]++) {
			kir_index_values(k, at, val);
			for (int i = 0; i < k->nx; i++)
				if (used[i] && k->x[i].type == KT_IDX) {
					assert_true(val[i] != KIR_UNKNOWN);
					*lo = val[i] < *lo ? val[i] : *lo;
					*hi = val[i] > *hi ? val[i] : *hi;
				}
		}
	free(val);
	free(used);
}

/* kir_index_within against every value: each index below, the only
 * store of a kernel over 9 x 6 points, is within the least and most
 * value it or any of its operands takes, and (each var once on each
 * path, so the spans are exact) not within a range one narrower at
 * either end. Each is scaled by 2^20, so that its own span, not an
 * operand's, reaches the extremes: truncating
 * division of negatives, C's remainder, a select's two branches. An
 * index read from an int32 buffer spans int32 until a clamp bounds it;
 * one converted from f32 is unbounded, clamped or not (a backend's
 * conversion saturates at its own type's bounds). */
static void index_spans_bound_every_value(void **state)
{
	(void)state;
	kir_buffer buf[3] = { { .kind = KB_INPUT, .dtype = RT_I32, .numel = 1 },
	                      { .kind = KB_INPUT, .dtype = RT_F32, .numel = 1 },
	                      { .kind = KB_OUTPUT, .dtype = RT_F32, .numel = 1 } };
	kir_program p = { .buf = buf, .nbuf = 3 };
	kir_kernel k = { .rank = 2, .ext = { 9, 6 } };
	int v0 = kir_var(&k, 0), v1 = kir_var(&k, 1), zero = idx_const(&k, 0);
	int exact[] = {
		idx_op(&k, OP_sub, idx_op(&k, OP_add, idx_op(&k, OP_mul, v0, idx_const(&k, 7)), v1), idx_const(&k, 3)),
		idx_op(&k, OP_div, idx_op(&k, OP_sub, idx_const(&k, 5), idx_op(&k, OP_mul, v0, idx_const(&k, 7))),
		       idx_const(&k, 2)),
		kir_mod(&k, idx_op(&k, OP_add, idx_op(&k, OP_mul, v0, idx_const(&k, 6)), v1), idx_const(&k, 5)),
		kir_op(&k, KT_IDX, OP_select, idx_op(&k, OP_lt, v0, idx_const(&k, 3)),
		       idx_op(&k, OP_mul, v1, idx_const(&k, -100)), idx_op(&k, OP_neg, v1, -1)),
	};
	int n = (int)(sizeof exact / sizeof *exact);
	for (int i = 0; i < n; i++)     /* each a multiple larger than its operands: its span the extremes */
		exact[i] = idx_op(&k, OP_mul, exact[i], idx_const(&k, 1 << 20));
	int loaded = kir_cast(&k, KT_IDX, kir_load(&k, &p, 0, zero), RT_F32);
	int converted = kir_cast(&k, KT_IDX, kir_load(&k, &p, 1, zero), RT_F32);
	int clamped = idx_op(&k, OP_min, idx_op(&k, OP_max, loaded, zero), idx_const(&k, 40));
	int scaled = idx_op(&k, OP_mul, clamped, idx_const(&k, 1 << 25));   /* at most 40 << 25 */
	int clamped_f32 = idx_op(&k, OP_min, idx_op(&k, OP_max, converted, zero), idx_const(&k, 40));
	const int others[] = { loaded, scaled, clamped_f32 };
	for (int i = 0; i < n + 3; i++)
		kir_store_add(&k, 2, i < n ? exact[i] : others[i - n], kir_const(&k, KT_F32, 0));
	for (int i = 0; i < n; i++) {
		kir_kernel one = store_alone(&k, i);
		int64_t lo, hi;
		index_extremes(&one, &lo, &hi);
		print_message("    index %d: [%lld, %lld]\n", i, (long long)lo, (long long)hi);
		assert_true(kir_index_within(&one, lo, hi));
		assert_false(kir_index_within(&one, lo + 1, hi));
		assert_false(kir_index_within(&one, lo, hi - 1));
	}
	kir_kernel one = store_alone(&k, n);
	assert_true(kir_index_within(&one, INT32_MIN, INT32_MAX));
	assert_false(kir_index_within(&one, INT32_MIN, INT32_MAX - 1));
	one = store_alone(&k, n + 1);
	assert_true(kir_index_within(&one, INT32_MIN, INT32_MAX));
	one = store_alone(&k, n + 2);
	assert_false(kir_index_within(&one, INT32_MIN, INT32_MAX));
	assert_false(kir_index_within(&k, INT32_MIN, INT32_MAX));
	kir_kernel_free(&k);
}

/* The fusion cases' scripts against the interpreter, whatever kernels
 * the target makes of them: under a limit of 4 buffers the MSE loss and
 * its gradient (5 buffers as one kernel), GroupNorm and its gradient, and
 * the optimizer are kernels other than the ones those cases count. */
static void fusion_cases_match_interpreter(void **state)
{
	const char *scripts[] = { mse_lua, group_norm_lua, group_norm_grad_lua, adam_lua };
	for (int i = 0; i < TU_LEN(scripts); i++) {
		ir_graph *g = load_script(scripts[i], NULL, 0);
		check_main(g);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		KERNEL_CASES,
		cmocka_unit_test(channels_last_follows_the_target),
		cmocka_unit_test(weight_gradient_blocks_follow_the_target),
		cmocka_unit_test(backends_describe_their_targets),
		cmocka_unit_test(equal_expressions_are_built_once),
		cmocka_unit_test(index_spans_bound_every_value),
		cmocka_unit_test(memory_plan_keeps_live_temporaries_apart),
		cmocka_unit_test(unfusable_reductions_are_stored_without_rebuilds),
	};
	const struct CMUnitTest within_four[] = { KERNEL_VALUE_CASES,
	                                          cmocka_unit_test(fusion_cases_match_interpreter) };
	int failed = cmocka_run_group_tests(tests, NULL, NULL);
	kir_target four = *tu_cpu_target(NULL);
	four.max_args = 4;
	schedule = &four;
	return failed + cmocka_run_group_tests_name("every case within 4 buffers a kernel", within_four, NULL, NULL);
}
