/* compiled: the whole compiled path against the reference interpreter.
 *
 * tests/models/tiny_train.lua's train_step is lowered, compiled for this
 * host (LLVM JIT), described exactly as `ddpmc compile` embeds it, parsed by
 * the runtime and run by the runtime's executor on a 2-thread pool — the
 * code path of a generated executable but for the linker. Checked:
 *   - 3 steps match the interpreter: the losses to 1e-4 relative, and every
 *     state tensor to 1e-3 of its largest value (Adam divides by sqrt(v):
 *     where a gradient is ~0 its sign, and so a step of size ~lr, can flip
 *     on rounding, hence a looser bound than the losses');
 *   - the step compiled with Winograd convolutions (compile --winograd)
 *     gives the direct one's losses to 1e-5 relative;
 *   - two runs from the same seed give bit-identical state, whatever the
 *     thread count;
 *   - in the interpreter, train_grads (shard 0) then train_apply give the
 *     bytes of train_step: the data-parallel split changes nothing for one
 *     process. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exec.h"
#include "frontend.h"
#include "interp.h"
#include "kir.h"
#include "llvm_backend.h"
#include "philox.h"
#include "pool.h"
#include "program.h"
#include "state.h"
#include "testutil.h"

#define STEPS 3

typedef struct {
	ir_graph *g;
	kir_program *kp;
	llvm_jit *jit;
	rt_kernel_fn *fns;
	rt_program prog;
	rt_strbuf json, data;
} compiled;

/* Compiles `entry` for this host, its 3x3 convolutions as `winograd`
 * says (compile --winograd). */
static void compile_entry(compiled *c, const char *entry, kir_winograd winograd)
{
	char err[1024];
	kir_target t = *tu_cpu_target(NULL);
	t.winograd = winograd;
	c->g = tu_load("tests/models/tiny_train.lua");
	c->kp = kir_lower(c->g, ir_entry_find(c->g, entry), &t);
	llvm_kernel_fn *of_kernel = calloc((size_t)c->kp->nk + 1, sizeof *of_kernel);
	c->fns = calloc((size_t)c->kp->nk + 1, sizeof *c->fns);
	c->jit = llvm_jit_compile(c->kp, NULL, of_kernel, err, sizeof err);
	if (!c->jit)
		fail_msg("jit: %s", err);
	for (int k = 0; k < c->kp->nk; k++)         /* the descriptor's "fn": by function */
		c->fns[c->kp->k[k].fn] = (rt_kernel_fn)of_kernel[k];
	free(of_kernel);
	kir_describe(c->g, "tiny_train.lua", &c->kp, 1, NULL, &c->json, &c->data);
	rt_sb_put(&c->data, "", 1);
	if (rt_program_parse(c->json.p, c->json.len, (const unsigned char *)c->data.p,
	                     (int64_t)c->data.len, c->fns, c->kp->nk, &c->prog, err, sizeof err) != RT_OK)
		fail_msg("%s", err);
}

static void free_compiled(compiled *c)
{
	rt_program_free(&c->prog);
	llvm_jit_free(c->jit);
	kir_program_free(c->kp);
	free(c->fns);
	rt_sb_free(&c->json);
	rt_sb_free(&c->data);
	ir_free(c->g);
}

/* A fixed batch in [-1, 1]. */
static void make_inputs(rt_tensorset *in)
{
	int64_t shape[4] = { 2, 1, 16, 16 };
	rt_tensor *x = rt_set_add(in, "x0", RT_F32, 4, shape);
	assert_non_null(x);
	rt_philox_uniform(42, 0, 0, 512, x->data);
	for (int i = 0; i < 512; i++)
		((float *)x->data)[i] = 2 * ((float *)x->data)[i] - 1;
}

static void set_seed(rt_tensorset *state, int32_t seed)
{
	rt_tensor *t = rt_set_find(state, "rng.seed");
	assert_non_null(t);
	*(int32_t *)t->data = seed;
}

static float output(const rt_tensorset *out, const char *name)
{
	const rt_tensor *t = rt_set_find(out, name);
	assert_non_null(t);
	return ((const float *)t->data)[0];
}

/* Runs the compiled train_step STEPS times from seed 7; losses out. */
static void run_compiled(compiled *c, int threads, rt_tensorset *state, float *loss)
{
	char err[1024];
	rt_tensorset in = { 0 };
	make_inputs(&in);
	rt_pool *pool = rt_pool_new(threads, err, sizeof err);
	assert_non_null(pool);
	if (rt_state_init(&c->prog, 0, NULL, NULL, state, err, sizeof err) != RT_OK)
		fail_msg("%s", err);
	set_seed(state, 7);
	const rt_entry *e = rt_program_entry(&c->prog, "train_step");
	for (int s = 0; s < STEPS; s++) {
		rt_tensorset out = { 0 };
		if (rt_entry_run(&c->prog, e, state, &in, &out, pool, err, sizeof err) != RT_OK)
			fail_msg("step %d: %s", s, err);
		loss[s] = output(&out, "loss");
		rt_set_free(&out);
	}
	rt_pool_free(pool);
	rt_set_free(&in);
}

/* One step of the interpreter: train_step, or with split train_grads
 * (shard 0) then train_apply. */
static void interpret_step(ir_graph *g, int split, rt_tensorset *state, rt_tensorset *in,
                           rt_tensorset *out)
{
	char err[1024];
	const char *first = split ? "train_grads" : "train_step";
	if (interp_run(g, ir_entry_find(g, first), state, in, out, err, sizeof err) < 0)
		fail_msg("%s: %s", first, err);
	rt_tensorset none = { 0 }, applied = { 0 };
	if (split && interp_run(g, ir_entry_find(g, "train_apply"), state, &none, &applied, err,
	                        sizeof err) < 0)
		fail_msg("train_apply: %s", err);
	rt_set_free(&applied);
}

static void run_interpreted(rt_tensorset *state, float *loss, int split)
{
	char err[1024];
	ir_graph *g = tu_load("tests/models/tiny_train.lua");
	rt_tensorset in = { 0 };
	make_inputs(&in);
	int64_t none[1] = { 0 };
	assert_non_null(rt_set_add(&in, "shard", RT_I32, 0, none));
	if (interp_init_state(g, 0, NULL, NULL, state, err, sizeof err) < 0)
		fail_msg("%s", err);
	set_seed(state, 7);
	for (int s = 0; s < STEPS; s++) {
		rt_tensorset out = { 0 };
		interpret_step(g, split, state, &in, &out);
		loss[s] = output(&out, "loss");
		rt_set_free(&out);
	}
	rt_set_free(&in);
	ir_free(g);
}

/* Compiled once for both tests (the JIT takes most of the time). */
static compiled shared;

static int compile_once(void **unused)
{
	compile_entry(&shared, "train_step", KIR_WINOGRAD_NONE);
	return 0;
}

static int free_once(void **unused)
{
	free_compiled(&shared);
	return 0;
}

/* The losses `got` within tol x |want| at every step (the names say whose). */
static void close_losses(const float *got, const char *got_name, const float *want, const char *want_name,
                         float tol)
{
	for (int s = 0; s < STEPS; s++) {
		print_message("step %d: loss %s %.7f, %s %.7f\n", s, got_name, got[s], want_name, want[s]);
		if (!(fabsf(got[s] - want[s]) <= tol * fabsf(want[s])))
			fail_msg("step %d: loss %.7f (%s) vs %.7f (%s)", s, got[s], got_name, want[s], want_name);
	}
}

static void train_step_matches_interpreter(void **unused)
{
	compiled *c = &shared;
	rt_tensorset ours = { 0 }, ref = { 0 };
	float lo[STEPS], lr[STEPS];
	run_compiled(c, 2, &ours, lo);
	run_interpreted(&ref, lr, 0);
	close_losses(lo, "compiled", lr, "interpreter", 1e-4f);
	tu_close_state(&ref, &ours, 1e-3, "the compiled step and the interpreter");
	rt_set_free(&ours);
	rt_set_free(&ref);
}

/* The train step compiled with its 3x3 convolutions (forward and both
 * gradients) by Winograd F(2x2, 3x3), then F(4x4, 3x3), against the
 * direct one: the losses of STEPS steps to 1e-5 relative (seen: 1e-7, an
 * f32 ulp), the state to 1e-3 of each tensor's largest value as above
 * (Adam's steps where a gradient is ~0; seen: 1.4e-5). */
static void winograd_train_step_matches_direct(void **unused)
{
	static const kir_winograd ways[] = { KIR_WINOGRAD_2X2, KIR_WINOGRAD_4X4 };
	for (int i = 0; i < 2; i++) {
		compiled w = { 0 };
		compile_entry(&w, "train_step", ways[i]);
		int products = 0;
		for (int k = 0; k < w.kp->nk; k++)
			products += strstr(w.kp->k[k].name, "winograd_products") != NULL;
		print_message("%s: %d Winograd convolutions\n", i ? "4x4" : "2x2", products);
		assert_true(products > 0);
		rt_tensorset direct = { 0 }, wino = { 0 };
		float ld[STEPS], lw[STEPS];
		run_compiled(&shared, 2, &direct, ld);
		run_compiled(&w, 2, &wino, lw);
		close_losses(lw, "Winograd", ld, "direct", 1e-5f);
		tu_close_state(&direct, &wino, 1e-3, "the direct and the Winograd step");
		rt_set_free(&direct);
		rt_set_free(&wino);
		free_compiled(&w);
	}
}

/* Every tensor of a has b's bytes; `how` names the two runs. */
static void same_bytes(const rt_tensorset *a, const rt_tensorset *b, const char *how)
{
	assert_int_equal(a->n, b->n);
	for (int i = 0; i < a->n; i++) {
		const rt_tensor *ta = &a->t[i], *tb = rt_set_find(b, ta->name);
		size_t bytes = (size_t)rt_numel(ta->rank, ta->shape) * rt_dtype_size(ta->dtype);
		if (!tb || memcmp(ta->data, tb->data, bytes) != 0)
			fail_msg("%s differs between %s", ta->name, how);
	}
}

static void same_seed_gives_identical_state(void **unused)
{
	rt_tensorset a = { 0 }, b = { 0 };
	float la[STEPS], lb[STEPS];
	run_compiled(&shared, 2, &a, la);
	run_compiled(&shared, 1, &b, lb);
	same_bytes(&a, &b, "two runs with the same seed (2 threads vs 1)");
	rt_set_free(&a);
	rt_set_free(&b);
}

static void split_step_equals_train_step(void **unused)
{
	rt_tensorset a = { 0 }, b = { 0 };
	float la[STEPS], lb[STEPS];
	run_interpreted(&a, la, 0);
	run_interpreted(&b, lb, 1);
	for (int s = 0; s < STEPS; s++)
		if (la[s] != lb[s])
			fail_msg("step %d: loss %.9g (train_step) vs %.9g (train_grads)", s, la[s], lb[s]);
	same_bytes(&a, &b, "train_step and train_grads + train_apply");
	rt_set_free(&a);
	rt_set_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(train_step_matches_interpreter),
		cmocka_unit_test(winograd_train_step_matches_direct),
		cmocka_unit_test(same_seed_gives_identical_state),
		cmocka_unit_test(split_step_equals_train_step),
	};
	return cmocka_run_group_tests(tests, compile_once, free_once);
}
