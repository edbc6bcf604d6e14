/* test_runtime_exec: the runtime side of compiled executables, without a
 * code generator: hand-written C kernels stand in for generated ones.
 * Checks the program descriptor parser, binding by name, input dtype
 * conversion, the thread pool's row split, arena and output reuse, initial
 * state bit-identical to the interpreter's, the PNG grid writer, and the
 * train / sample / info commands end to end (exit codes, data order,
 * resume, EMA weights, DDPM/DDIM timesteps). */
#include "testutil.h"

#include <stdatomic.h>

#include <zlib.h>

#include "exec.h"
#include "image.h"
#include "philox.h"
#include "pool.h"
#include "program.h"
#include "safetensors.h"
#include "state.h"

/* The command line, compiled into this test (main.c is left out: it
 * needs a generated object). */
#include "../runtime/main/cli.c"
#include "../runtime/main/sample.c"
#include "../runtime/main/train.c"
#include "../runtime/main/export.c"
#include "../runtime/main/eval.c"
#include "../runtime/main/run.c"
#include "../runtime/main/tune.c"
#include "../runtime/main/progress.c"
#include "../runtime/main/metrics.c"
#include "../runtime/main/plot.c"
#include "../runtime/main/hyper.c"
#include "../runtime/main/rundir.c"
#include "../runtime/main/checkpoint.c"
#include "../runtime/main/dist.c"

/* --- a fake program ------------------------------------------------------- */

enum { N = 1000 };

/* Buffers: 0 param w (4), 1 input a (N), 2 temp t (N), 3 output y (N),
 * 4 output sum (), 5 const c (N). */
static void k_scale(void **b, int64_t r0, int64_t r1)         /* t = 2a + c */
{
	const float *a = b[1], *c = b[5];
	float *t = b[2];
	for (int64_t i = r0; i < r1; i++)
		t[i] = 2 * a[i] + c[i];
}

static void k_add_w(void **b, int64_t r0, int64_t r1)         /* y = t + w[i % 4] */
{
	const float *t = b[2], *w = b[0];
	float *y = b[3];
	for (int64_t i = r0; i < r1; i++)
		y[i] = t[i] + w[i % 4];
}

static void k_sum(void **b, int64_t r0, int64_t r1)           /* sum = sum y (one row) */
{
	const float *y = b[3];
	float s = 0;
	for (int64_t i = 0; i < N; i++)
		s += y[i];
	*(float *)b[4] = s;
	(void)r0, (void)r1;
}

static void k_update(void **b, int64_t r0, int64_t r1)        /* w += 1, in place */
{
	float *w = b[0];
	for (int64_t i = r0; i < r1; i++)
		w[i] += 1;
}

static void *seen_arena;
static void k_note_arena(void **b, int64_t r0, int64_t r1)
{
	seen_arena = b[2];
	(void)r0, (void)r1;
}

static const rt_kernel_fn fake_kernels[] = { k_scale, k_add_w, k_sum, k_update, k_note_arena };

static const char fake_json[] =
	"{\"model\": \"fake.lua\", \"meta\": {\"image\": [1, 2, 2], \"batch\": 3, \"timesteps\": 10,"
	" \"config\": {\"x\": 1}},"
	" \"params\": ["
	"  {\"name\": \"w\", \"dtype\": \"F32\", \"shape\": [4], \"trainable\": true, \"init\": \"ones\","
	"   \"a\": 0, \"b\": 0, \"from\": null, \"index\": 0},"
	"  {\"name\": \"ema.w\", \"dtype\": \"F32\", \"shape\": [4], \"trainable\": false,"
	"   \"init\": \"copy\", \"a\": 0, \"b\": 0, \"from\": \"w\", \"index\": 1}],"
	" \"entries\": [{\"name\": \"step\", \"arena_bytes\": 4000, \"buffers\": ["
	"   {\"kind\": \"param\", \"name\": \"w\", \"dtype\": \"F32\", \"shape\": [4], \"offset\": 0},"
	"   {\"kind\": \"input\", \"name\": \"a\", \"dtype\": \"F32\", \"shape\": [10, 100], \"offset\": 0},"
	"   {\"kind\": \"temp\", \"name\": \"\", \"dtype\": \"F32\", \"shape\": [1000], \"offset\": 0},"
	"   {\"kind\": \"output\", \"name\": \"y\", \"dtype\": \"F32\", \"shape\": [10, 100], \"offset\": 0},"
	"   {\"kind\": \"output\", \"name\": \"sum\", \"dtype\": \"F32\", \"shape\": [], \"offset\": 0},"
	"   {\"kind\": \"const\", \"name\": \"\", \"dtype\": \"F32\", \"shape\": [1000], \"offset\": 8}],"
	"  \"kernels\": [{\"fn\": 0, \"args\": [0, 1, 2, 3, 4, 5], \"rows\": 1000, \"name\": \"k0_scale\", \"flops\": 2000},"
	"   {\"fn\": 1, \"args\": [0, 1, 2, 3, 4, 5], \"rows\": 1000, \"name\": \"k1_add\", \"flops\": 1000},"
	"   {\"fn\": 2, \"args\": [0, 1, 2, 3, 4, 5], \"rows\": 1, \"name\": \"k2_sum\", \"flops\": 1000},"
	"   {\"fn\": 3, \"args\": [0, 1, 2, 3, 4, 5], \"rows\": 4, \"name\": \"k3_update\", \"flops\": 4},"
	"   {\"fn\": 4, \"args\": [0, 1, 2, 3, 4, 5], \"rows\": 1, \"name\": \"k4_note\", \"flops\": 0}]}]}";

static float fake_data[2 + N];  /* consts at byte 8: c[i] = i / 8 */

static void parse_fake(rt_program *p)
{
	char err[512];
	for (int i = 0; i < N; i++)
		fake_data[2 + i] = (float)i / 8;
	if (rt_program_parse(fake_json, strlen(fake_json), (const unsigned char *)fake_data,
	                     sizeof fake_data, fake_kernels, TU_LEN(fake_kernels), p, err,
	                     sizeof err) != RT_OK)
		fail_msg("rt_program_parse: %s", err);
}

static void test_parse(void **unused)
{
	rt_program p;
	parse_fake(&p);
	assert_string_equal(p.model, "fake.lua");
	assert_int_equal(p.image[0], 1);
	assert_int_equal(p.image[2], 2);
	assert_int_equal(p.batch, 3);
	assert_int_equal(p.timesteps, 10);
	assert_non_null(rt_json_get(p.meta, "config"));
	assert_int_equal(p.nparams, 2);
	assert_int_equal(p.params[1].init.kind, RT_INIT_COPY);
	assert_int_equal(p.params[1].from, 0);
	const rt_entry *e = rt_program_entry(&p, "step");
	assert_non_null(e);
	assert_null(rt_program_entry(&p, "nope"));
	assert_int_equal(e->nbuf, 6);
	assert_int_equal(e->nk, 5);
	assert_ptr_equal(e->k[3].fn, k_update);
	assert_string_equal(e->k[3].name, "k3_update");
	assert_int_equal(e->buf[1].kind, RT_BUF_INPUT);
	assert_int_equal(e->buf[1].numel, N);
	assert_int_equal(e->buf[4].rank, 0);
	assert_int_equal(e->buf[4].numel, 1);
	assert_true(e->flops == 4004);
	assert_ptr_equal(rt_entry_buffer(e, RT_BUF_OUTPUT, "sum"), &e->buf[4]);
	rt_program_free(&p);
}

/* fake_json with the first `from` replaced by `to`; parsing must fail
 * with a message containing `want`. */
static void parse_fails(const char *from, const char *to, int64_t nkernels, const char *want)
{
	char json[sizeof fake_json + 256], err[512];
	const char *at = strstr(fake_json, from);
	assert_non_null(at);
	snprintf(json, sizeof json, "%.*s%s%s", (int)(at - fake_json), fake_json, to, at + strlen(from));
	rt_program p;
	int rc = rt_program_parse(json, strlen(json), (const unsigned char *)fake_data,
	                          sizeof fake_data, fake_kernels, nkernels, &p, err, sizeof err);
	assert_int_equal(rc, RT_ERR);
	CONTAINS(err, want);
	assert_int_equal(p.nentries, 0);
}

static void test_parse_errors(void **unused)
{
	parse_fails("\"model\"", "\"model\" 1", 5, "malformed");
	parse_fails("\"offset\": 8", "\"offset\": 12", 5,
	            "entries[0] (step).buffers[5]: bytes [12, 4012) are outside the program data");
	parse_fails("\"arena_bytes\": 4000", "\"arena_bytes\": 3996", 5,
	            "entries[0] (step).buffers[2]: bytes [0, 4000) are outside the arena");
	parse_fails("\"kind\": \"temp\"", "\"kind\": \"scratch\"", 5, "unknown kind 'scratch'");
	parse_fails("\"fn\": 4", "\"fn\": 5", 5, "kernels[4]: fn 5 is outside the 5 compiled kernels");
	parse_fails("\"fn\": 1, \"args\": [0, 1, 2, 3, 4, 5]", "\"fn\": 1, \"args\": [0, 6]", 5,
	            "kernels[1]: args[1] must be a buffer index in [0, 6)");
	parse_fails("\"from\": \"w\"", "\"from\": \"ema.w\"", 5, "'ema.w' copies 'ema.w', which is not an earlier param");
	parse_fails("\"dtype\": \"F32\", \"shape\": [4], \"trainable\"", "\"dtype\": \"F8\", \"shape\": [4], \"trainable\"", 5,
	            "params[0]: dtype 'F8'");
	parse_fails("\"name\": \"y\"", "\"name\": \"sum\"", 5, "output 'sum' is also buffers[3]");
	parse_fails("{\"kind\": \"param\", \"name\": \"w\"", "{\"kind\": \"param\", \"name\": \"v\"", 5,
	            "'v' is not among the params");
	parse_fails("\"shape\": [10, 100]", "\"shape\": [10, -100]", 5, "shape[1] must be a non-negative");
	parse_fails("\"init\": \"ones\"", "\"init\": \"kaiming\"", 5, "unknown init 'kaiming'");
}

/* --- running entries ------------------------------------------------------- */

/* state {ema.w, w = 1}, inputs {other, a = i (as dt)}. */
static void fake_sets(const rt_program *p, rt_tensorset *state, rt_tensorset *in, rt_dtype dt)
{
	char err[512];
	int64_t shape[1] = { N }, two[1] = { 2 };
	assert_non_null(rt_set_add(in, "other", RT_F32, 1, two));
	rt_tensor *a = rt_set_add(in, "a", dt, 1, shape);
	for (int i = 0; i < N; i++)
		rt_store(dt, a->data, i, i % 7 - 3);
	if (rt_state_init(p, 1, NULL, NULL, state, err, sizeof err) != RT_OK)
		fail_msg("rt_state_init: %s", err);
}

/* y[i] = 2a + i/8 + w[i % 4]; checks y and sum against doubles. */
static void check_fake(const rt_tensorset *out, float w)
{
	const rt_tensor *y = rt_set_find(out, "y"), *sum = rt_set_find(out, "sum");
	assert_non_null(y);
	assert_non_null(sum);
	assert_int_equal(y->rank, 2);
	assert_int_equal(y->shape[1], 100);
	double total = 0;
	for (int i = 0; i < N; i++) {
		double want = 2.0 * (i % 7 - 3) + i / 8.0 + w;
		if (((float *)y->data)[i] != (float)want)
			fail_msg("y[%d]: expected %g, got %g", i, want, ((float *)y->data)[i]);
		total += want;
	}
	assert_true(fabs(*(float *)sum->data - total) < 1e-3 * fabs(total));
}

static void test_run_binds_by_name(void **unused)
{
	rt_program p;
	rt_tensorset state = { 0 }, in = { 0 }, out = { 0 };
	char err[512];
	parse_fake(&p);
	const rt_entry *e = &p.entries[0];
	fake_sets(&p, &state, &in, RT_F32);
	assert_int_equal(rt_entry_run(&p, e, &state, &in, &out, NULL, err, sizeof err), RT_OK);
	check_fake(&out, 1);
	/* the update happened in place, in the state; ema.w untouched */
	assert_true(((float *)rt_set_find(&state, "w")->data)[3] == 2);
	assert_true(((float *)rt_set_find(&state, "ema.w")->data)[3] == 1);
	/* second call: same arena, same output tensors, w = 2 now */
	void *arena = seen_arena, *y = rt_set_find(&out, "y")->data;
	assert_int_equal((uintptr_t)arena % 64, 0);
	assert_int_equal(rt_entry_run(&p, e, &state, &in, &out, NULL, err, sizeof err), RT_OK);
	check_fake(&out, 2);
	assert_ptr_equal(seen_arena, arena);
	assert_ptr_equal(rt_set_find(&out, "y")->data, y);
	assert_int_equal(out.n, 2);
	assert_int_equal(rt_exec_calls(e), 2);
	rt_set_free(&state);
	rt_set_free(&in);
	rt_set_free(&out);
	rt_program_free(&p);
}

static void test_run_converts_inputs(void **unused)
{
	static const rt_dtype dts[] = { RT_F64, RT_I32, RT_BF16, RT_F16, RT_I64 };
	for (int d = 0; d < TU_LEN(dts); d++) {
		rt_program p;
		rt_tensorset state = { 0 }, in = { 0 }, out = { 0 };
		char err[512];
		parse_fake(&p);
		fake_sets(&p, &state, &in, dts[d]);
		assert_int_equal(rt_entry_run(&p, &p.entries[0], &state, &in, &out, NULL, err, sizeof err),
		                 RT_OK);
		check_fake(&out, 1);
		rt_set_free(&state);
		rt_set_free(&in);
		rt_set_free(&out);
		rt_program_free(&p);
	}
}

static void test_run_errors(void **unused)
{
	rt_program p;
	rt_tensorset state = { 0 }, in = { 0 }, out = { 0 }, empty = { 0 };
	char err[512];
	int64_t s5[1] = { 5 }, s4x1[2] = { 4, 1 };
	parse_fake(&p);
	const rt_entry *e = &p.entries[0];
	fake_sets(&p, &state, &in, RT_F32);
	assert_int_equal(rt_entry_run(&p, e, &state, &empty, &out, NULL, err, sizeof err), RT_ERR);
	CONTAINS(err, "step: input 'a' is missing");
	assert_int_equal(rt_entry_run(&p, e, &empty, &in, &out, NULL, err, sizeof err), RT_ERR);
	CONTAINS(err, "step: the state has no 'w'");

	rt_tensorset bad_in = { 0 };
	rt_set_add(&bad_in, "a", RT_F32, 1, s5);
	assert_int_equal(rt_entry_run(&p, e, &state, &bad_in, &out, NULL, err, sizeof err), RT_ERR);
	CONTAINS(err, "step: input 'a' is F32 (5), the program expects F32 (10, 100)");

	rt_tensorset bad_state = { 0 };
	rt_set_add(&bad_state, "w", RT_F32, 2, s4x1);
	assert_int_equal(rt_entry_run(&p, e, &bad_state, &in, &out, NULL, err, sizeof err), RT_ERR);
	CONTAINS(err, "step: state 'w' is F32 (4, 1), the program expects F32 (4)");

	rt_tensorset bad_out = { 0 };
	rt_set_add(&bad_out, "sum", RT_I32, 0, s5);
	assert_int_equal(rt_entry_run(&p, e, &state, &in, &bad_out, NULL, err, sizeof err), RT_ERR);
	CONTAINS(err, "output 'sum' is I32 (), the program expects F32 ()");
	rt_set_free(&bad_in);
	rt_set_free(&bad_state);
	rt_set_free(&bad_out);
	rt_set_free(&state);
	rt_set_free(&in);
	rt_set_free(&out);
	rt_program_free(&p);
}

/* --- the pool ---------------------------------------------------------------- */

enum { COVER = 100003 };
static atomic_int cover[COVER];

static void k_cover(void **b, int64_t r0, int64_t r1)
{
	for (int64_t i = r0; i < r1; i++)
		atomic_fetch_add(&cover[i], 1);
	(void)b;
}

/* out[i] = a float function of i and its neighbours (order-sensitive if
 * rows were mixed up). */
static void k_stencil(void **b, int64_t r0, int64_t r1)
{
	const float *x = b[0];
	float *y = b[1];
	for (int64_t i = r0; i < r1; i++)
		y[i] = sinf(x[i]) * 0.5f + x[i > 0 ? i - 1 : 0] / 3.0f + x[i + 1 < COVER ? i + 1 : i];
}

static void test_pool_rows(void **unused)
{
	static const int threads[] = { 1, 2, 3, 5 };
	static const int64_t rows[] = { 0, 1, 2, 3, 4, 7, 1000, COVER };
	char err[256];
	for (int t = 0; t < TU_LEN(threads); t++) {
		rt_pool *pool = rt_pool_new(threads[t], err, sizeof err);
		assert_non_null(pool);
		assert_int_equal(rt_pool_threads(pool), threads[t]);
		for (int r = 0; r < TU_LEN(rows); r++)
			for (int rep = 0; rep < 3; rep++) {
				for (int i = 0; i < COVER; i++)
					atomic_store(&cover[i], 0);
				rt_pool_run(pool, k_cover, NULL, rows[r]);
				for (int64_t i = 0; i < COVER; i++)
					if (atomic_load(&cover[i]) != (i < rows[r]))
						fail_msg("%d threads, %lld rows: row %lld ran %d times", threads[t],
						         (long long)rows[r], (long long)i, atomic_load(&cover[i]));
			}
		rt_pool_free(pool);
	}
}

static void test_pool_matches_serial(void **unused)
{
	float *x = malloc(COVER * sizeof *x), *y1 = malloc(COVER * sizeof *y1),
	      *y2 = malloc(COVER * sizeof *y2);
	char err[256];
	rt_philox_normal(7, 0, 0, COVER, x);
	void *b1[2] = { x, y1 }, *b2[2] = { x, y2 };
	rt_pool *one = rt_pool_new(1, err, sizeof err), *two = rt_pool_new(2, err, sizeof err);
	rt_pool_run(one, k_stencil, b1, COVER);
	/* many launches in a row, some after the workers went to sleep */
	for (int rep = 0; rep < 2000; rep++) {
		memset(y2, 0, COVER * sizeof *y2);
		rt_pool_run(two, k_stencil, b2, rep % 2 ? COVER : 5);
		if (rep == 1000)
			usleep(20000);
	}
	rt_pool_run(two, k_stencil, b2, COVER);
	assert_memory_equal(y1, y2, COVER * sizeof *y1);
	/* the fake entry through a 2-thread pool equals the serial run */
	rt_program p;
	rt_tensorset state = { 0 }, in = { 0 }, out = { 0 };
	parse_fake(&p);
	fake_sets(&p, &state, &in, RT_F32);
	assert_int_equal(rt_entry_run(&p, &p.entries[0], &state, &in, &out, two, err, sizeof err),
	                 RT_OK);
	check_fake(&out, 1);
	rt_set_free(&state);
	rt_set_free(&in);
	rt_set_free(&out);
	rt_program_free(&p);
	rt_pool_free(one);
	rt_pool_free(two);
	free(x);
	free(y1);
	free(y2);
}

/* --- initial state ------------------------------------------------------------ */

/* The params of g as the compiler's descriptor spells them. */
static char *params_json(const ir_graph *g)
{
	static const char *const inits[] = { "zeros", "ones", "uniform", "normal", "copy" };
	rt_strbuf b = { 0 };
	rt_sb_puts(&b, "{\"model\": \"t\", \"params\": [");
	for (int i = 0; i < g->nparams; i++) {
		const ir_node *n = &g->nodes[g->params[i]];
		const ir_init *in = &n->a.param.init;
		rt_sb_printf(&b, "%s{\"name\": ", i ? ", " : "");
		rt_sb_json_string(&b, n->name);
		rt_sb_printf(&b, ", \"dtype\": \"%s\", \"shape\": [", rt_dtype_name(n->dtype));
		for (int k = 0; k < n->shape.rank; k++)
			rt_sb_printf(&b, "%s%lld", k ? ", " : "", (long long)n->shape.d[k]);
		rt_sb_printf(&b, "], \"trainable\": %s, \"init\": \"%s\", \"a\": %.17g, \"b\": %.17g, "
		             "\"from\": ", n->a.param.trainable ? "true" : "false", inits[in->kind],
		             in->a, in->b);
		if (in->kind == INIT_COPY)
			rt_sb_json_string(&b, g->nodes[in->from].name);
		else
			rt_sb_puts(&b, "null");
		rt_sb_printf(&b, ", \"index\": %d}", n->a.param.index);
	}
	rt_sb_puts(&b, "], \"entries\": []}");
	assert_false(b.oom);
	return b.p;
}

static void assert_sets_identical(const rt_tensorset *a, const rt_tensorset *b)
{
	assert_int_equal(a->n, b->n);
	for (int i = 0; i < a->n; i++) {
		const rt_tensor *x = &a->t[i], *y = &b->t[i];
		assert_string_equal(x->name, y->name);
		assert_int_equal(x->dtype, y->dtype);
		assert_int_equal(x->rank, y->rank);
		size_t bytes = (size_t)rt_numel(x->rank, x->shape) * rt_dtype_size(x->dtype);
		if (memcmp(x->data, y->data, bytes) != 0)
			fail_msg("state '%s' differs from the interpreter's", x->name);
	}
}

static void test_state_matches_interp(void **unused)
{
	char err[1024];
	ir_graph *g = tu_load("tests/models/tiny_train.lua");
	/* every init kind and a low-precision dtype */
	ir_shape s = SH(3, 5);
	tu_ok(g, ir_param(g, "extra.normal", RT_F32, &s, (ir_init){ INIT_NORMAL, 0.5, 0.02, -1 }, 1, "t:1"));
	tu_ok(g, ir_param(g, "extra.bf16", RT_BF16, &s, (ir_init){ INIT_UNIFORM, -0.3, 0.3, -1 }, 1, "t:1"));
	int kinds[5] = { 0 };
	for (int i = 0; i < g->nparams; i++)
		kinds[g->nodes[g->params[i]].a.param.init.kind]++;
	for (int k = 0; k < 5; k++)
		assert_true(kinds[k] > 0);

	char *json = params_json(g);
	rt_program p;
	if (rt_program_parse(json, strlen(json), NULL, 0, NULL, 0, &p, err, sizeof err) != RT_OK)
		fail_msg("rt_program_parse: %s", err);
	rt_tensorset want = { 0 }, got = { 0 };
	assert_int_equal(interp_init_state(g, 1234, NULL, NULL, &want, err, sizeof err), 0);
	assert_int_equal(rt_state_init(&p, 1234, NULL, NULL, &got, err, sizeof err), RT_OK);
	assert_sets_identical(&want, &got);

	/* from weights: every trainable param given (some as F64), others initialised */
	rt_tensorset w = { 0 }, want2 = { 0 }, got2 = { 0 };
	for (int i = 0; i < want.n; i++) {
		const rt_tensor *t = &want.t[i];
		if (!rt_program_param(&p, t->name)->trainable)
			continue;
		rt_dtype dt = i % 2 ? RT_F64 : t->dtype;
		rt_tensor *c = rt_set_add(&w, t->name, dt, t->rank, t->shape);
		rt_tensor_convert(t, c);
	}
	assert_int_equal(interp_init_state(g, 99, &w, "w.safetensors", &want2, err, sizeof err), 0);
	assert_int_equal(rt_state_init(&p, 99, &w, "w.safetensors", &got2, err, sizeof err), RT_OK);
	assert_sets_identical(&want2, &got2);
	assert_sets_identical(&want, &got2);    /* weights equal to seed 1234's state */

	/* a wrong shape and a missing trainable param: clear messages */
	rt_tensorset got3 = { 0 }, got4 = { 0 };
	rt_tensor *t0 = &w.t[0];
	int64_t d0 = t0->shape[0];
	t0->shape[0] = 1;
	assert_int_equal(rt_state_init(&p, 1, &w, "w.safetensors", &got3, err, sizeof err), RT_ERR);
	char expect[256];
	snprintf(expect, sizeof expect, "w.safetensors: '%s' has shape (1", t0->name);
	CONTAINS(err, expect, "the model expects (");
	t0->shape[0] = d0;
	free(t0->name);
	t0->name = strdup("renamed");
	assert_int_equal(rt_state_init(&p, 1, &w, "w.safetensors", &got4, err, sizeof err), RT_ERR);
	CONTAINS(err, "w.safetensors: missing '");

	rt_set_free(&want);
	rt_set_free(&got);
	rt_set_free(&w);
	rt_set_free(&want2);
	rt_set_free(&got2);
	rt_set_free(&got3);
	rt_set_free(&got4);
	rt_program_free(&p);
	free(json);
	ir_free(g);
}

/* --- PNG ------------------------------------------------------------------------- */

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Reads a PNG this writer made: its size, colour type and raw scanlines. */
static unsigned char *read_png(const char *path, uint32_t *w, uint32_t *h, int *ctype,
                               size_t *rawlen)
{
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	static unsigned char buf[1 << 20];
	size_t n = fread(buf, 1, sizeof buf, f);
	fclose(f);
	static const unsigned char sig[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };
	assert_true(n > 8 + 25);
	assert_memory_equal(buf, sig, 8);
	assert_int_equal(be32(buf + 8), 13);
	assert_memory_equal(buf + 12, "IHDR", 4);
	assert_int_equal(be32(buf + 29), crc32(0, buf + 12, 17));
	*w = be32(buf + 16);
	*h = be32(buf + 20);
	*ctype = buf[25];
	size_t at = 33;
	assert_memory_equal(buf + at + 4, "IDAT", 4);
	uint32_t zlen = be32(buf + at);
	int channels = *ctype == 2 ? 3 : 1;
	uLongf len = (uLongf)(*h) * (1 + *w * (uLongf)channels);
	unsigned char *raw = malloc(len);
	assert_int_equal(uncompress(raw, &len, buf + at + 8, zlen), Z_OK);
	assert_memory_equal(buf + at + 12 + zlen + 4, "IEND", 4);
	*rawlen = len;
	return raw;
}

static void test_png_grid(void **unused)
{
	char dir[64], path[128], err[512];
	tu_tmpdir(dir, sizeof dir);
	snprintf(path, sizeof path, "%s/grid.png", dir);
	/* 5 grey images of 4 x 3: 3 columns, 2 rows */
	float x[5 * 4 * 3];
	for (int i = 0; i < TU_LEN(x); i++)
		x[i] = i == 0 ? -2.0f : i == 1 ? 1.0f : i == 2 ? 0.0f : i == 3 ? NAN : 0.5f;
	assert_int_equal(rt_png_write_grid(path, x, 5, 1, 4, 3, 1, err, sizeof err), RT_OK);
	uint32_t w, h;
	int ctype;
	size_t len;
	unsigned char *raw = read_png(path, &w, &h, &ctype, &len);
	assert_int_equal(w, 3 * (3 + 2) + 2);
	assert_int_equal(h, 2 * (4 + 2) + 2);
	assert_int_equal(ctype, 0);
	size_t stride = 1 + w;
	assert_int_equal(len, h * stride);
	/* image 0 starts at (2, 2): -2 -> 0, 1 -> 255, 0 -> 128, NaN -> 0, 0.5 -> 191 */
	const unsigned char *row2 = raw + 2 * stride + 1;
	assert_int_equal(row2[2], 0);
	assert_int_equal(row2[3], 255);
	assert_int_equal(row2[4], 128);
	assert_int_equal(row2[5], 0);           /* border between images */
	assert_int_equal((raw + 3 * stride + 1)[2], 0);         /* x[3] = NaN */
	assert_int_equal((raw + 3 * stride + 1)[3], 191);
	assert_int_equal(raw[0], 0);            /* filter byte */
	assert_int_equal((raw + 0 * stride + 1)[3], 0);         /* top border */
	free(raw);
	/* 3 RGB images of 2 x 2; a directory that does not exist fails cleanly */
	float rgb[3 * 3 * 2 * 2];
	for (int i = 0; i < TU_LEN(rgb); i++)
		rgb[i] = (float)i / TU_LEN(rgb);
	assert_int_equal(rt_png_write_grid(path, rgb, 3, 3, 2, 2, 1, err, sizeof err), RT_OK);
	raw = read_png(path, &w, &h, &ctype, &len);
	assert_int_equal(w, 2 * 4 + 2);
	assert_int_equal(h, 2 * 4 + 2);
	assert_int_equal(ctype, 2);
	/* pixel (0,0) of image 0: channels are planes 0, 4, 8 of the image */
	const unsigned char *px = raw + 2 * (1 + 3 * w) + 1 + 2 * 3;
	assert_int_equal(px[0], rt_quantise(rgb[0]));
	assert_int_equal(px[1], rt_quantise(rgb[4]));
	assert_int_equal(px[2], rt_quantise(rgb[8]));
	free(raw);
	snprintf(path, sizeof path, "%s/no/such/dir/grid.png", dir);
	assert_int_equal(rt_png_write_grid(path, rgb, 3, 3, 2, 2, 1, err, sizeof err), RT_ERR);
	CONTAINS(err, "grid.png: cannot create");
	assert_int_equal(rt_png_write_grid(path, rgb, 3, 2, 2, 2, 1, err, sizeof err), RT_ERR);
	CONTAINS(err, "1 or 3 channels");
	tu_rmtree(dir);
}

/* --- the command line ------------------------------------------------------------- */

/* A program of images 1 x 2 x 2, batch 3, T = 10. train_step logs which
 * images it was given (image k has every pixel 20k) and adds 1 to w and
 * train.iteration; the samplers log (t, s, w[0], rng.seed) per step and
 * halve x. */
enum { LOG = 4096 };
static int img_log[LOG], nimg;
static int step_log[LOG][6], nsteps;

static void c_train(void **b, int64_t r0, int64_t r1)
{
	/* 0 x0 (3,1,2,2), 1 w, 2 train.iteration, 3 loss, 4 lr */
	const float *x = b[0];
	float *w = b[1], loss = 0;
	for (int j = 0; j < 3 && nimg < LOG; j++)
		img_log[nimg++] = (int)lrint((x[j * 4] + 1) * 127.5 / 20);
	for (int i = 0; i < 12; i++)
		loss += x[i] * x[i];
	for (int i = 0; i < 4; i++)
		w[i] += 1;
	*(int32_t *)b[2] += 1;
	*(float *)b[3] = loss / 12;
	*(float *)b[4] = 1e-3f;
	(void)r0, (void)r1;
}

/* One sampler step into step_log: t, s, the weight w, rng.seed, eta x 100
 * (-1 for DDPM) and the clip range x 100 (-1 for +inf). */
static void record_step(void **b, int w, int seed, int eta)
{
	if (nsteps >= LOG)
		return;
	int *l = step_log[nsteps++];
	float clip = *(float *)b[3];
	l[0] = *(int32_t *)b[1];
	l[1] = *(int32_t *)b[2];
	l[2] = (int)((float *)b[w])[0];
	l[3] = *(int32_t *)b[seed];
	l[4] = eta < 0 ? -1 : (int)lrintf(*(float *)b[eta] * 100);
	l[5] = isinf(clip) ? -1 : (int)lrintf(clip * 100);
}

/* The step log holds exactly n steps t -> s as want says, each with
 * field `field` (eta or clip, x 100) equal to value. */
static void check_logged_steps(const int want[][2], int n, int field, int value)
{
	assert_int_equal(nsteps, n);
	for (int i = 0; i < n; i++) {
		assert_int_equal(step_log[i][0], want[i][0]);
		assert_int_equal(step_log[i][1], want[i][1]);
		assert_int_equal(step_log[i][field], value);
	}
}

static void c_ddpm_log(void **b, int64_t r0, int64_t r1)
{
	/* 0 sample.x, 1 sample.t, 2 sample.s, 3 sample.clip, 4 w, 5 rng.seed, 6 x_prev */
	record_step(b, 4, 5, -1);
	(void)r0, (void)r1;
}

static void c_ddpm_x(void **b, int64_t r0, int64_t r1)
{
	const float *x = b[0];
	float *y = b[6];
	for (int64_t i = r0; i < r1; i++)
		y[i] = x[i] * 0.5f;
}

static void c_ddim_log(void **b, int64_t r0, int64_t r1)
{
	/* 0 sample.x, 1 sample.t, 2 sample.s, 3 sample.clip, 4 sample.eta, 5 w, 6 rng.seed,
	 * 7 x_prev */
	record_step(b, 5, 6, 4);
	(void)r0, (void)r1;
}

static void c_ddim_x(void **b, int64_t r0, int64_t r1)
{
	const float *x = b[0];
	float *y = b[7];
	for (int64_t i = r0; i < r1; i++)
		y[i] = x[i] * 0.5f;
}

static const rt_kernel_fn cli_kernels[] = { c_train, c_ddpm_log, c_ddpm_x, c_ddim_log, c_ddim_x };

#define BUF(kind, name, dt, shape) "{\"kind\": \"" kind "\", \"name\": \"" name "\", \"dtype\": \"" \
	dt "\", \"shape\": " shape ", \"offset\": 0}"
#define PARAM(name, dt, shape, tr, init, from, idx) "{\"name\": \"" name "\", \"dtype\": \"" dt \
	"\", \"shape\": " shape ", \"trainable\": " tr ", \"init\": \"" init "\", \"a\": 0, \"b\": 0, " \
	"\"from\": " from ", \"index\": " idx "}"
#define X "[3, 1, 2, 2]"
/* The fake model's state, its weight w of shape w_shape. */
#define CLI_PARAMS(w_shape) \
	"\"params\": [" PARAM("rng.seed", "I32", "[]", "false", "zeros", "null", "0") ", " \
	PARAM("train.iteration", "I32", "[]", "false", "zeros", "null", "1") ", " \
	PARAM("w", "F32", w_shape, "true", "ones", "null", "2") ", " \
	PARAM("ema.w", "F32", w_shape, "false", "copy", "\"w\"", "3") ", " \
	PARAM("optim.ema_init_share", "F32", "[]", "false", "zeros", "null", "4") "]"
static const char cli_json[] =
	"{\"model\": \"cli.lua\", \"meta\": {\"image\": [1, 2, 2], \"batch\": 3, \"timesteps\": 10,"
	" \"clip_sample_range\": 2}, " CLI_PARAMS("[4]") ","
	" \"entries\": ["
	"  {\"name\": \"train_step\", \"arena_bytes\": 0, \"buffers\": ["
	BUF("input", "x0", "F32", X) ", " BUF("param", "w", "F32", "[4]") ", "
	BUF("param", "train.iteration", "I32", "[]") ", " BUF("output", "loss", "F32", "[]") ", "
	BUF("output", "lr", "F32", "[]") "],"
	"   \"kernels\": [{\"fn\": 0, \"args\": [0, 1, 2, 3, 4], \"rows\": 1, \"name\": \"k0\", \"flops\": 1}]},"
	"  {\"name\": \"sample_ddpm\", \"arena_bytes\": 0, \"buffers\": ["
	BUF("input", "sample.x", "F32", X) ", " BUF("input", "sample.t", "I32", "[]") ", "
	BUF("input", "sample.s", "I32", "[]") ", " BUF("input", "sample.clip", "F32", "[]") ", "
	BUF("param", "w", "F32", "[4]") ", " BUF("param", "rng.seed", "I32", "[]") ", "
	BUF("output", "x_prev", "F32", X) "],"
	"   \"kernels\": [{\"fn\": 1, \"args\": [0, 1, 2, 3, 4, 5, 6], \"rows\": 1, \"name\": \"k0\", \"flops\": 1},"
	"                {\"fn\": 2, \"args\": [0, 1, 2, 3, 4, 5, 6], \"rows\": 12, \"name\": \"k1\", \"flops\": 1}]},"
	"  {\"name\": \"sample_ddim\", \"arena_bytes\": 0, \"buffers\": ["
	BUF("input", "sample.x", "F32", X) ", " BUF("input", "sample.t", "I32", "[]") ", "
	BUF("input", "sample.s", "I32", "[]") ", " BUF("input", "sample.clip", "F32", "[]") ", "
	BUF("input", "sample.eta", "F32", "[]") ", "
	BUF("param", "w", "F32", "[4]") ", " BUF("param", "rng.seed", "I32", "[]") ", "
	BUF("output", "x_prev", "F32", X) "],"
	"   \"kernels\": [{\"fn\": 3, \"args\": [0, 1, 2, 3, 4, 5, 6, 7], \"rows\": 1, \"name\": \"k0\", \"flops\": 1},"
	"                {\"fn\": 4, \"args\": [0, 1, 2, 3, 4, 5, 6, 7], \"rows\": 12, \"name\": \"k1\", \"flops\": 1}]}]}";

static const rt_embedded cli_emb = { .kernels = cli_kernels, .nkernels = TU_LEN(cli_kernels),
                                     .json = cli_json, .json_len = sizeof cli_json - 1,
                                     .build = "ddpmc 9.9.9, LLVM 1.2.3" };

static const rt_embedded *cli_program = &cli_emb;      /* what cli_argv runs */

/* Runs the command line on a NULL-terminated argument list; when errout
 * is given, stderr is captured into it. */
static int cli_argv(const char *const *args, char *errout, size_t errlen)
{
	char *argv[64] = { "fake-model" };
	int argc = 1;
	for (; args[argc - 1] && argc < 63; argc++)
		argv[argc] = (char *)args[argc - 1];
	tu_capture c;
	if (errout)
		c = tu_capture_begin();
	int rc = cli_run(argc, argv, cli_program);
	if (errout)
		tu_capture_end(&c, errout, errlen);
	return rc;
}
#define cli(...) cli_argv((const char *const[]){ __VA_ARGS__ }, NULL, 0)

/* A raw IDX file of 10 images 2 x 2, image k all 20k. */
static void write_idx(const char *path)
{
	unsigned char buf[16 + 40] = { 0, 0, 8, 3, 0, 0, 0, 10, 0, 0, 0, 2, 0, 0, 0, 2 };
	for (int k = 0; k < 10; k++)
		memset(buf + 16 + 4 * k, 20 * k, 4);
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(buf, 1, sizeof buf, f), sizeof buf);
	fclose(f);
}

/* Each epoch of the log (10 positions) is a permutation of 0..9. */
static void check_epochs(const int *log, int n)
{
	for (int e = 0; e + 10 <= n; e += 10) {
		int seen[10] = { 0 };
		for (int j = 0; j < 10; j++) {
			assert_in_range(log[e + j], 0, 9);
			seen[log[e + j]]++;
		}
		for (int k = 0; k < 10; k++)
			assert_int_equal(seen[k], 1);
	}
}

static void test_cli_train(void **unused)
{
	char dir[64], data[128], out[128], ckpt[160], err[512];
	tu_tmpdir(dir, sizeof dir);
	snprintf(data, sizeof data, "%s/images.idx", dir);
	snprintf(out, sizeof out, "%s/run", dir);
	snprintf(ckpt, sizeof ckpt, "%s/run/checkpoint.safetensors", dir);
	write_idx(data);

	/* 10 steps straight through = 30 images = 3 epochs */
	nimg = 0;
	assert_int_equal(cli("train", "--data", data, "--steps", "10", "--out", out, "--seed", "5",
	                     "--threads", "2", NULL), 0);
	int straight[30];
	assert_int_equal(nimg, 30);
	memcpy(straight, img_log, sizeof straight);
	check_epochs(straight, 30);
	int differs = 0;
	for (int j = 0; j < 10; j++)
		differs |= straight[j] != straight[10 + j];
	assert_true(differs);                   /* reshuffled per epoch */

	/* 7 steps, then --resume for 3 more: the same batches, the same state */
	nimg = 0;
	assert_int_equal(cli("train", "--data", data, "--steps", "7", "--out", out, "--seed", "5",
	                     "--overwrite", NULL), 0);
	assert_int_equal(cli("train", "--data", data, "--steps", "3", "--out", out, "--resume", NULL), 0);
	assert_int_equal(nimg, 30);
	assert_memory_equal(img_log, straight, sizeof straight);
	rt_tensorset st = { 0 };
	assert_int_equal(rt_st_read(ckpt, &st, err, sizeof err), RT_OK);
	assert_true(cli_scalar(&st, "train.iteration") == 10);
	assert_true(cli_scalar(&st, "rng.seed") == 5);
	assert_true(cli_scalar(&st, "w") == 11);
	assert_true(cli_scalar(&st, "ema.w") == 1);
	assert_int_equal(st.n, 5);
	rt_set_free(&st);

	/* sampling: DDPM t = 9..0 (s = t - 1) with the EMA weights, rounds of
	 * 3, x0 clipped to the program's range (meta.clip_sample_range 2) */
	char png[160];
	snprintf(png, sizeof png, "%s/grid.png", dir);
	nsteps = 0;
	assert_int_equal(cli("sample", "--ckpt", ckpt, "--n", "5", "--out", png, "--seed", "7", NULL), 0);
	assert_int_equal(nsteps, 20);
	for (int i = 0; i < 20; i++) {
		assert_int_equal(step_log[i][0], 9 - i % 10);
		assert_int_equal(step_log[i][1], 8 - i % 10);
		assert_int_equal(step_log[i][2], 1);            /* ema.w */
		assert_int_equal(step_log[i][3], 7 + i / 10);   /* rng.seed per round */
		assert_int_equal(step_log[i][5], 200);
	}
	uint32_t w, h;
	int ctype;
	size_t len;
	free(read_png(png, &w, &h, &ctype, &len));
	assert_int_equal(w, 3 * (2 * 32 + 2) + 2);     /* 2 x 2 images magnified 32 times */
	assert_int_equal(h, 2 * (2 * 32 + 2) + 2);
	assert_int_equal(cli("sample", "--ckpt", ckpt, "--n", "5", "--out", png, "--scale", "1", NULL), 0);
	free(read_png(png, &w, &h, &ctype, &len));
	assert_int_equal(w, 3 * 4 + 2);
	/* An EMA that still holds half the initial weights is not used */
	char young[160];
	snprintf(young, sizeof young, "%s/young.safetensors", dir);
	assert_int_equal(rt_st_read(ckpt, &st, err, sizeof err), RT_OK);
	cli_set_scalar(&st, "optim.ema_init_share", 0.5);
	assert_int_equal(rt_st_write(young, &st, err, sizeof err), RT_OK);
	rt_set_free(&st);
	nsteps = 0;
	assert_int_equal(cli("sample", "--ckpt", young, "--n", "1", "--out", png, NULL), 0);
	assert_int_equal(step_log[0][2], 11);
	/* --no-ema samples with the trained weights; --no-clip passes +inf */
	nsteps = 0;
	assert_int_equal(cli("sample", "--ckpt", ckpt, "--n", "1", "--out", png, "--no-ema",
	                     "--no-clip", NULL), 0);
	assert_int_equal(step_log[0][2], 11);
	assert_int_equal(step_log[0][5], -1);
	/* DDPM with 4 of 10 steps, trailing spacing (diffusers: 9, 7, 4, 1),
	 * each going to the next; --clip-range 0.5 */
	nsteps = 0;
	assert_int_equal(cli("sample", "--ckpt", ckpt, "--n", "1", "--out", png, "--steps", "4",
	                     "--spacing", "trailing", "--clip-range", "0.5", NULL), 0);
	static const int ddpm_want[4][2] = { { 9, 7 }, { 7, 4 }, { 4, 1 }, { 1, -1 } };
	check_logged_steps(ddpm_want, 4, 5, 50);
	/* DDIM, 4 of 10 steps: t = 6, 4, 2, 0 (leading spacing), s = t - 10/4 */
	nsteps = 0;
	assert_int_equal(cli("sample", "--ckpt", ckpt, "--n", "2", "--out", png, "--sampler", "ddim",
	                     "--steps", "4", "--eta", "0.5", NULL), 0);
	static const int want[4][2] = { { 6, 4 }, { 4, 2 }, { 2, 0 }, { 0, -1 } };
	check_logged_steps(want, 4, 4, 50);
	assert_int_equal(cli("info", NULL), 0);
	char err2[512];
	assert_int_equal(cli_argv((const char *const[]){ "train", "--help", NULL }, err2, sizeof err2), 0);
	tu_rmtree(dir);
}

static void test_cli_rejects(void **unused)
{
	char dir[64], data[128], err[2048], blocked[160];
	tu_tmpdir(dir, sizeof dir);
	snprintf(data, sizeof data, "%s/images.idx", dir);
	write_idx(data);
	snprintf(blocked, sizeof blocked, "%s/images.idx/run", dir);   /* under a file */
	const char *const bad[][10] = {
		{ "train", "--steps", "0" },
		{ "train", "--steps", "12x" },
		{ "train", "--threads", "-1" },
		{ "train", "--eta", "1" },
		{ "train", "--resume=1" },
		{ "train", "--data" },
		{ "train", "--batch", "4", "--data", data, "--out", dir },
		{ "train", "--data", "/nonexistent.idx", "--out", dir },
		{ "train", "--data", data, "--out", blocked },
		{ "sample", "--sampler", "euler" },
		{ "sample", "--spacing", "uniform" },
		{ "sample", "--sampler", "ddim", "--steps", "11" },
		{ "sample", "--seed", "-3" },
		{ "sample", "--n", "0" },
		{ "sample", "--eta", "nan", "--sampler", "ddim" },
		{ "sample", "--ckpt", "/nonexistent/ckpt.safetensors" },
		{ "sample", "--device", "opencl" },
		{ "sample", "--save-every", "3" },
		{ "sample", "--lr", "0.1" },
		{ "eval", "--out-dir", "x" },
		{ "train", "--n", "4" },
		{ "train", "--test", data },
		{ "train", "--frob" },
		{ "fly" },
		{ "train", "--crop", "middle" },
		{ "train", "--grey", "--rgb" },
		{ "sample", "--resize" },
	};
	static const char *const why[] = {
		"--steps: expected an integer in [1, ", "--steps: expected an integer",
		"--threads: expected an integer in [1, 1024], got '-1'",
		"train: --eta is a flag of sample and eval, not of train (see fake-model train --help)",
		"--resume takes no value", "--data needs a value",
		"train: --batch is fixed when the program is compiled: ddpmc compile MODEL.lua --set "
		"batch=N (fake-model info shows this one's)", "/nonexistent.idx",
		"images.idx/run: cannot create it in",
		"--sampler euler: expected ddpm or ddim",
		"--spacing uniform: expected leading, trailing or linspace",
		"--steps 11: at most 10", "--seed: expected an integer", "--n: expected an integer",
		"--eta: expected a number", "/nonexistent/ckpt.safetensors",
		"--device opencl: this executable was compiled for the CPU only",
		"sample: --save-every is a flag of train, not of sample",
		"sample: --lr is a flag of train, not of sample",
		"eval: --out-dir is a flag of sample, not of eval",
		"train: --n is the number of images of --sample-every and --eval-every",
		"train: --test is the test set of --eval-every",
		"train: unknown flag '--frob'",
		"unknown command 'fly'",
		"--crop middle: expected center or random",
		"--grey and --rgb exclude each other",
		"sample: --resize is a flag of train and eval, not of sample",
	};
	for (int i = 0; i < TU_LEN(bad); i++) {
		int rc = cli_argv(bad[i], err, sizeof err);
		if (rc == 0 || !tu_starts(err, "fake-model: ") || tu_lines(err) != 1 || !strstr(err, why[i]))
			fail_msg("case %d: exit %d, stderr: %s", i, rc, err);
	}
	tu_rmtree(dir);
}


/* Runs the command line with stdout captured into out. */
static int cli_stdout(const char *const *args, char *out, size_t len)
{
	tu_capture c = tu_capture_stdout();
	int rc = cli_argv(args, NULL, 0);
	tu_capture_end(&c, out, len);
	return rc;
}

/* Every flag line of one command's help has its meaning, valued flags
 * their default; the help ends with an example of that command. */
static void check_help(const char *cmd, const char *const *want)
{
	static char out[16384];
	assert_int_equal(cli_stdout((const char *const[]){ cmd, "--help", NULL }, out, sizeof out), 0);
	for (int i = 0; want[i]; i++)
		if (!strstr(out, want[i]))
			fail_msg("%s --help lacks '%s':\n%s", cmd, want[i], out);
	char example[64];
	snprintf(example, sizeof example, "  example: fake-model %s", cmd);
	CONTAINS(out, example);
	for (const char *l = strstr(out, "\n  -"); l; l = strstr(l + 1, "\n  -")) {
		char line[512];
		snprintf(line, sizeof line, "%.*s", (int)strcspn(l + 1, "\n"), l + 1);
		size_t name = strcspn(line + 2, " ");   /* "  NAME ARG   meaning": ARG after one space */
		int valued = line[2 + name] == ' ' && line[3 + name] != ' ';
		if (valued && !strstr(line, "(default: ") && !strstr(line, "(required)"))
			fail_msg("%s --help: a flag without its default: %s", cmd, line);
	}
}

static void test_cli_help(void **unused)
{
	check_help("train", (const char *const[]){ "  --steps N ", "(default: 1000)",
	           "  --out DIR ", "(default: runs/latest)", "  --lr X ", "--set batch=N",
	           "(default: fashion-mnist)", "  --scale K ", NULL });
	check_help("sample", (const char *const[]){ "  --out FILE ", "(default: grid.png)",
	           "  --sampler ddpm|ddim ", "(default: ddpm)", "  --scale K ", NULL });
	check_help("eval", (const char *const[]){ "  --n N ", "  --test PATH ", NULL });
	check_help("export", (const char *const[]){ "  --out DIR ", "(required)", "  --no-ema ", NULL });
	check_help("info", (const char *const[]){ "fake-model info: ", NULL });
	static char out[65536];
	assert_int_equal(cli_stdout((const char *const[]){ "--help", NULL }, out, sizeof out), 0);
	CONTAINS(out, "fake-model train: ", "fake-model sample: ", "fake-model eval: ",
	         "fake-model export: ", "fake-model info: ", "  --save-every N ", "  --out-dir DIR ");
	assert_null(strstr(out, "--batch"));
}

static void test_cli_version(void **unused)
{
	char out[512], want[64];
	assert_int_equal(cli_stdout((const char *const[]){ "--version", NULL }, out, sizeof out), 0);
	uint64_t h = 14695981039346656037u;     /* FNV-1a 64 of the JSON, then the (no) data */
	for (size_t i = 0; i < sizeof cli_json - 1; i++)
		h = (h ^ (unsigned char)cli_json[i]) * 1099511628211u;
	snprintf(want, sizeof want, "(descriptor fnv1a64 %016llx)", (unsigned long long)h);
	CONTAINS(out, "ddpmc 9.9.9, LLVM 1.2.3\n", "model: cli.lua ", want);
}

/* An OpenCL program beside the CPU's, as --target all embeds: the same
 * entries and state, its kernels OpenCL launches (none here). */
#define CL_ENTRY(name) "{\"name\": \"" name "\", \"arena_bytes\": 0, \"buffers\": [], \"kernels\": []}"
#define CL_PROGRAM(w_shape) \
	"{\"model\": \"cli.lua\", \"meta\": {}, " CLI_PARAMS(w_shape) ", \"entries\": [" \
	CL_ENTRY("train_step") ", " CL_ENTRY("sample_ddpm") ", " CL_ENTRY("sample_ddim") "]}"

/* info lists both programs' entries; an OpenCL program whose state is
 * not the CPU program's is refused before any command runs. */
static void test_cli_opencl_program(void **unused)
{
	static const char same[] = CL_PROGRAM("[4]"), other[] = CL_PROGRAM("[5]");
	static char out[16384];
	char err[1024];
	static rt_embedded emb;
	emb = cli_emb;
	cli_program = &emb;
	emb.cl_json = same;
	emb.cl_json_len = sizeof same - 1;
	assert_int_equal(cli_stdout((const char *const[]){ "info", NULL }, out, sizeof out), 0);
	CONTAINS(out, "entries on OpenCL (lowered for a GPU):\n  train_step ");
	emb.cl_json = other;
	emb.cl_json_len = sizeof other - 1;
	assert_int_equal(cli_argv((const char *const[]){ "info", NULL }, err, sizeof err), 1);
	CONTAINS(err, "the OpenCL program's entries or state are not the CPU program's");
}

static int restore_cli_program(void **unused)
{
	cli_program = &cli_emb;
	return 0;
}

/* Unwritable outputs are refused before anything is sampled or trained. */
static void test_cli_outputs_checked_first(void **unused)
{
	char dir[64], file[128], bad[160], out[4096], err[1024];
	tu_tmpdir(dir, sizeof dir);
	tu_write(dir, "file", "x", -1, file, sizeof file);
	snprintf(bad, sizeof bad, "%s/file/g.png", dir);
	const char *const cases[][6] = {
		{ "sample", "--out", "/nonexistent/g.png" },
		{ "sample", "--out", bad },
		{ "sample", "--out", dir },
		{ "sample", "--out-dir", bad },
		{ "train", "--out", bad, "--steps", "1" },
		{ "export", "--out", bad },
	};
	static const char *const why[] = {
		"--out /nonexistent/g.png: cannot write in /nonexistent: No such file or directory",
		"/file/g.png: cannot write in ", ": is a folder", "/file/g.png: cannot create it in",
		"/file/g.png: cannot create it in", "/file/g.png: cannot create it in",
	};
	for (int i = 0; i < TU_LEN(cases); i++) {
		nsteps = 0;
		nimg = 0;
		tu_capture c = tu_capture_stdout();
		int rc = cli_argv(cases[i], err, sizeof err);
		tu_capture_end(&c, out, sizeof out);
		if (rc == 0 || tu_lines(err) != 1 || !strstr(err, why[i]))
			fail_msg("case %d: exit %d, stderr: %s", i, rc, err);
		if (out[0] || nsteps || nimg)
			fail_msg("case %d: work started before the refusal: %s", i, out);
	}
	tu_rmtree(dir);
}

/* 16 Fashion-MNIST-sized images: 4 x 4 of 28 x 28 magnified 3 times. */
static void test_grid_scale(void **unused)
{
	char dir[64], path[128], err[512];
	static float x[16 * 28 * 28];
	tu_tmpdir(dir, sizeof dir);
	snprintf(path, sizeof path, "%s/grid.png", dir);
	assert_int_equal(rt_grid_scale(28, 28), 3);
	assert_int_equal(rt_grid_scale(32, 32), 2);
	assert_int_equal(rt_grid_scale(64, 64), 1);
	assert_int_equal(rt_grid_scale(256, 256), 1);
	for (int i = 0; i < TU_LEN(x); i++)
		x[i] = (float)(i % 28) / 14 - 1;        /* image columns ramp */
	assert_int_equal(rt_png_write_grid(path, x, 16, 1, 28, 28, 0, err, sizeof err), RT_OK);
	uint32_t w, h;
	int ctype;
	size_t len;
	unsigned char *raw = read_png(path, &w, &h, &ctype, &len);
	assert_int_equal(w, 4 * (3 * 28 + 2) + 2);      /* 346 */
	assert_int_equal(h, 4 * (3 * 28 + 2) + 2);
	/* nearest neighbour: pixel columns 2..4 of the grid are image column 0 */
	const unsigned char *row = raw + 5 * (1 + w) + 1;
	assert_int_equal(row[2], row[4]);
	assert_int_equal(row[4], rt_quantise(x[0]));
	assert_int_equal(row[5], rt_quantise(x[1]));
	free(raw);
	tu_rmtree(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_run_binds_by_name),
		cmocka_unit_test(test_run_converts_inputs),
		cmocka_unit_test(test_run_errors),
		cmocka_unit_test(test_pool_rows),
		cmocka_unit_test(test_pool_matches_serial),
		cmocka_unit_test(test_state_matches_interp),
		cmocka_unit_test(test_png_grid),
		cmocka_unit_test(test_cli_train),
		cmocka_unit_test(test_cli_rejects),
		cmocka_unit_test(test_cli_help),
		cmocka_unit_test(test_cli_version),
		cmocka_unit_test_teardown(test_cli_opencl_program, restore_cli_program),
		cmocka_unit_test(test_cli_outputs_checked_first),
		cmocka_unit_test(test_grid_scale),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
