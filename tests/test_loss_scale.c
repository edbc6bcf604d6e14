/* loss_scale: dynamic loss scaling (torch GradScaler semantics, docs/semantics.md
 * §5) and the Adam step built by lua/ddpm/optim.lua, run by the reference
 * interpreter on tests/scripts/scale_adam.lua:
 *
 * - a step whose scaled gradient is inf (or NaN) changes no param, moment,
 *   EMA weight or step counter (byte for byte), halves optim.loss_scale and
 *   resets optim.growth_tracker;
 * - growth_interval (2000) clean steps in a row double the scale exactly
 *   once, and the tracker counts 1, 2, ... 1999 before that;
 * - clean steps apply Adam/AdamW + EMA as torch does, checked against the
 *   same recurrences computed here in double;
 * - with hp.grad_accum = 3 (what `train --grad-accum 3` sets), two calls
 *   only add their scaled gradients to optim.grad_sum.*, the third applies
 *   one Adam step to the mean gradient and zeroes the sums, and a NaN in
 *   any micro-batch skips its whole step. */
#include "testutil.h"

#include <time.h>

#define LR 1e-2
#define BETA1 0.9
#define BETA2 0.999
#define ADAM_EPS 1e-8
#define EMA 0.99

typedef struct {
	ir_graph *g;
	const ir_entry *e;
	rt_tensorset st;
} fixture;

static void fx_open(fixture *f)
{
	char path[1024], err[1024];
	f->g = fe_load(tu_script("scale_adam.lua", path, sizeof path), NULL, 0, err, sizeof err);
	if (!f->g)
		fail_msg("%s", err);
	f->e = ir_entry_find(f->g, "train_step");
	assert_non_null(f->e);
	memset(&f->st, 0, sizeof f->st);
	if (interp_init_state(f->g, 7, NULL, NULL, &f->st, err, sizeof err) < 0)
		fail_msg("%s", err);
}

static void fx_close(fixture *f)
{
	rt_set_free(&f->st);
	ir_free(f->g);
}

static const rt_tensor *state_of(const fixture *f, const char *name)
{
	const rt_tensor *t = rt_set_find(&f->st, name);
	if (!t)
		fail_msg("no state tensor '%s'", name);
	return t;
}

static double scalar(const fixture *f, const char *name)
{
	const rt_tensor *t = state_of(f, name);
	assert_int_equal(rt_numel(t->rank, t->shape), 1);
	return rt_load(t->dtype, t->data, 0);
}

/* One train_step on x (3) and y (2); the outputs land in *out when given. */
static void step(fixture *f, const double x[3], const double y[2], rt_tensorset *out)
{
	rt_tensorset in = { 0 }, scratch = { 0 };
	char err[1024];
	int64_t n3 = 3, n2 = 2;
	rt_tensor *tx = rt_set_add(&in, "x", RT_F32, 1, &n3);
	rt_tensor *ty = rt_set_add(&in, "y", RT_F32, 1, &n2);
	assert_non_null(tx);
	assert_non_null(ty);
	for (int i = 0; i < 3; i++)
		rt_store(RT_F32, tx->data, i, x[i]);
	for (int i = 0; i < 2; i++)
		rt_store(RT_F32, ty->data, i, y[i]);
	if (interp_run(f->g, f->e, &f->st, &in, out ? out : &scratch, err, sizeof err) < 0)
		fail_msg("train_step: %s", err);
	rt_set_free(&in);
	rt_set_free(&scratch);
}

static void snapshot(const rt_tensorset *from, rt_tensorset *to)
{
	memset(to, 0, sizeof *to);
	for (int i = 0; i < from->n; i++) {
		const rt_tensor *t = &from->t[i];
		rt_tensor *c = rt_set_add(to, t->name, t->dtype, t->rank, t->shape);
		assert_non_null(c);
		memcpy(c->data, t->data, (size_t)rt_numel(t->rank, t->shape) * rt_dtype_size(t->dtype));
	}
}

static int same_bytes(const rt_tensor *a, const rt_tensor *b)
{
	if (a->dtype != b->dtype || a->rank != b->rank ||
	    memcmp(a->shape, b->shape, (size_t)a->rank * sizeof a->shape[0]) != 0)
		return 0;
	return memcmp(a->data, b->data,
	              (size_t)rt_numel(a->rank, a->shape) * rt_dtype_size(a->dtype)) == 0;
}

/* The state a skipped step must leave untouched: everything but the scaler. */
static const char *const FROZEN[] = {
	"w", "b", "optim.step", "optim.exp_avg.w", "optim.exp_avg_sq.w", "optim.exp_avg.b",
	"optim.exp_avg_sq.b", "ema.w", "ema.b", "optim.ema_init_share",
};

/* Gradient accumulation's state: all zero except inside an accumulation. */
static const char *const ACCUM[] = { "optim.accum", "optim.grad_sum.w", "optim.grad_sum.b" };

static const double CLEAN_X[3] = { 0.5, -0.25, 1.0 }, CLEAN_Y[2] = { 0.5, 2.0 };

/* Every element of state tensor `name` is 0. */
static void all_zero(const fixture *f, const char *name)
{
	const rt_tensor *t = state_of(f, name);
	for (int64_t i = 0; i < rt_numel(t->rank, t->shape); i++)
		if (rt_load(t->dtype, t->data, i) != 0)
			fail_msg("'%s'[%lld] = %g, expected 0", name, (long long)i, rt_load(t->dtype, t->data, i));
}

/* Three clean steps (so moments, EMA and the counters are non-trivial),
 * then one step on (x, y), which must be skipped. */
static void check_skipped(const double x[3], const double y[2], const char *what)
{
	fixture f;
	fx_open(&f);
	for (int k = 0; k < 3; k++)
		step(&f, CLEAN_X, CLEAN_Y, NULL);
	assert_true(scalar(&f, "optim.growth_tracker") == 3);
	assert_true(scalar(&f, "optim.step") == 3);
	assert_true(scalar(&f, "optim.loss_scale") == 65536.0);

	rt_tensorset before, out = { 0 };
	snapshot(&f.st, &before);
	step(&f, x, y, &out);
	for (int i = 0; i < TU_LEN(FROZEN); i++) {
		const rt_tensor *was = rt_set_find(&before, FROZEN[i]), *now = state_of(&f, FROZEN[i]);
		assert_non_null(was);
		if (!same_bytes(was, now))
			fail_msg("%s: state '%s' changed on a skipped step", what, FROZEN[i]);
	}
	/* Every state tensor is accounted for: the frozen ones, the scaler and
	 * the hyperparameters hp.NAME, which no step writes. */
	int hyper = 0;
	for (int i = 0; i < f.st.n; i++)
		if (strncmp(f.st.t[i].name, "hp.", 3) == 0) {
			hyper++;
			if (!same_bytes(rt_set_find(&before, f.st.t[i].name), &f.st.t[i]))
				fail_msg("%s: hyperparameter '%s' changed", what, f.st.t[i].name);
		}
	assert_true(hyper > 0);
	assert_int_equal(f.st.n, TU_LEN(FROZEN) + 2 + hyper + TU_LEN(ACCUM));
	for (int i = 0; i < TU_LEN(ACCUM); i++)
		all_zero(&f, ACCUM[i]);
	if (scalar(&f, "optim.loss_scale") != 32768.0)
		fail_msg("%s: loss scale %.9g after a skipped step, expected 32768", what,
		         scalar(&f, "optim.loss_scale"));
	if (scalar(&f, "optim.growth_tracker") != 0)
		fail_msg("%s: growth tracker %g after a skipped step, expected 0", what,
		         scalar(&f, "optim.growth_tracker"));
	/* The outputs report the step: not finite, at the scale it ran with. */
	const rt_tensor *fin = rt_set_find(&out, "finite"), *ls = rt_set_find(&out, "loss_scale");
	assert_non_null(fin);
	assert_non_null(ls);
	assert_true(rt_load(fin->dtype, fin->data, 0) == 0);
	assert_true(rt_load(ls->dtype, ls->data, 0) == 65536.0);
	rt_set_free(&out);

	/* A second bad step halves again (inf: 1e34 * 32768 would be finite);
	 * a clean one then resumes counting and updates the params. */
	const double inf_x[3] = { INFINITY, 0, 0 };
	step(&f, inf_x, CLEAN_Y, NULL);
	assert_true(scalar(&f, "optim.loss_scale") == 16384.0);
	assert_true(scalar(&f, "optim.step") == 3);
	step(&f, CLEAN_X, CLEAN_Y, NULL);
	assert_true(scalar(&f, "optim.loss_scale") == 16384.0);
	assert_true(scalar(&f, "optim.growth_tracker") == 1);
	assert_true(scalar(&f, "optim.step") == 4);
	assert_false(same_bytes(rt_set_find(&before, "w"), state_of(&f, "w")));
	rt_set_free(&before);
	fx_close(&f);
}

/* 1e34 is finite, but the scaled gradient 1e34 * 65536 overflows f32:
 * exactly the case GradScaler exists for. */
static void scaled_gradient_overflow_skips_the_step(void **state)
{
	(void)state;
	const double x[3] = { 1e34, 0.5, -0.25 };
	check_skipped(x, CLEAN_Y, "x = 1e34");
}

/* After one backoff the same input fits: 1e34 * 32768 = 3.3e38 < FLT_MAX,
 * so the overflow test is on the gradient at the current scale. */
static void halved_scale_lets_the_same_gradient_through(void **state)
{
	(void)state;
	fixture f;
	fx_open(&f);
	const double x[3] = { 1e34, 0.5, -0.25 };
	step(&f, x, CLEAN_Y, NULL);
	assert_true(scalar(&f, "optim.loss_scale") == 32768.0);
	assert_true(scalar(&f, "optim.step") == 0);
	const rt_tensor *w = state_of(&f, "w");
	double want[3];
	for (int i = 0; i < 3; i++)   /* Adam's first step: -lr * g / (|g| + eps) */
		want[i] = rt_load(w->dtype, w->data, i) - LR * (x[i] > 0 ? 1 : -1);
	step(&f, x, CLEAN_Y, NULL);
	assert_true(scalar(&f, "optim.loss_scale") == 32768.0);
	assert_true(scalar(&f, "optim.growth_tracker") == 1);
	assert_true(scalar(&f, "optim.step") == 1);
	/* w[0]'s g^2 = 1e68 overflows f32, so v = inf and it stays put, as in
	 * torch's f32 Adam; the others move by lr. */
	const rt_tensor *now = state_of(&f, "w");
	for (int i = 1; i < 3; i++)
		assert_true(fabs(rt_load(now->dtype, now->data, i) - want[i]) <= 1e-6);
	fx_close(&f);
}

static void inf_gradient_skips_the_step(void **state)
{
	(void)state;
	const double x[3] = { 0.5, -INFINITY, -0.25 };
	check_skipped(x, CLEAN_Y, "x = -inf");
}

/* The non-finite gradient is the second param's: every gradient is checked. */
static void inf_gradient_of_second_param_skips_the_step(void **state)
{
	(void)state;
	const double y[2] = { 0.5, 1e38 };
	check_skipped(CLEAN_X, y, "y = 1e38");
}

static void nan_gradient_skips_the_step(void **state)
{
	(void)state;
	const double x[3] = { 0.5, -0.25, NAN };
	check_skipped(x, CLEAN_Y, "x = NaN");
}

/* 1999 clean steps leave the scale at 65536 with the tracker at the step
 * count; the 2000th doubles it and resets the tracker; the next counts 1. */
static void growth_interval_clean_steps_double_the_scale_once(void **state)
{
	(void)state;
	fixture f;
	fx_open(&f);
	clock_t t0 = clock();
	for (int k = 1; k <= 1999; k++) {
		step(&f, CLEAN_X, CLEAN_Y, NULL);
		if (scalar(&f, "optim.loss_scale") != 65536.0 || scalar(&f, "optim.growth_tracker") != k)
			fail_msg("after %d clean steps: scale %.9g, tracker %g (expected 65536, %d)", k,
			         scalar(&f, "optim.loss_scale"), scalar(&f, "optim.growth_tracker"), k);
	}
	double ms = 1e3 * (double)(clock() - t0) / CLOCKS_PER_SEC / 1999;
	print_message("interpreter: %.3f ms per train_step\n", ms);
	step(&f, CLEAN_X, CLEAN_Y, NULL);
	assert_true(scalar(&f, "optim.loss_scale") == 131072.0);
	assert_true(scalar(&f, "optim.growth_tracker") == 0);
	assert_true(scalar(&f, "optim.step") == 2000);
	step(&f, CLEAN_X, CLEAN_Y, NULL);
	assert_true(scalar(&f, "optim.loss_scale") == 131072.0);
	assert_true(scalar(&f, "optim.growth_tracker") == 1);
	/* A skipped step at tracker 1 halves from the grown scale. */
	const double bad[3] = { INFINITY, 0, 0 };
	step(&f, bad, CLEAN_Y, NULL);
	assert_true(scalar(&f, "optim.loss_scale") == 65536.0);
	assert_true(scalar(&f, "optim.growth_tracker") == 0);
	fx_close(&f);
}

/* An overflow on the 2000th step: no growth, the scale halves instead. */
static void overflow_at_the_growth_step_halves_instead(void **state)
{
	(void)state;
	fixture f;
	fx_open(&f);
	for (int k = 1; k <= 1999; k++)
		step(&f, CLEAN_X, CLEAN_Y, NULL);
	assert_true(scalar(&f, "optim.growth_tracker") == 1999);
	const double bad[3] = { 1e34, 0, 0 };
	step(&f, bad, CLEAN_Y, NULL);
	assert_true(scalar(&f, "optim.loss_scale") == 32768.0);
	assert_true(scalar(&f, "optim.growth_tracker") == 0);
	assert_true(scalar(&f, "optim.step") == 1999);
	fx_close(&f);
}

/* Clean steps: torch.optim.Adam's recurrences and the EMA, in double, on
 * the interpreter's own initial params, compared after every step. The
 * gradients are d/dw = x and d/db = 2 b y (unscaled exactly: the scale is a
 * power of two). Tolerance: a few f32 roundings per step of values <= 1. */
static void clean_steps_apply_adam_and_ema(void **state)
{
	(void)state;
	fixture f;
	fx_open(&f);
	double w[3], b[2], mw[3] = { 0 }, vw[3] = { 0 }, mb[2] = { 0 }, vb[2] = { 0 }, ew[3], eb[2];
	const rt_tensor *tw = state_of(&f, "w"), *tb = state_of(&f, "b");
	for (int i = 0; i < 3; i++)
		ew[i] = w[i] = rt_load(tw->dtype, tw->data, i);
	for (int i = 0; i < 2; i++)
		eb[i] = b[i] = rt_load(tb->dtype, tb->data, i);
	/* The EMA starts as a copy of the params. */
	CHECK_PTR(state_of(&f, "ema.w"), SH(3), w, 0, 0);
	CHECK_PTR(state_of(&f, "ema.b"), SH(2), b, 0, 0);

	const double xs[4][3] = { { 0.5, -0.25, 1 }, { 2, 0.125, -1 }, { -0.75, 1.5, 0.25 }, { 1, 1, 1 } };
	const double ys[4][2] = { { 0.5, 2 }, { -1, 0.25 }, { 0.75, 0.5 }, { 1, -0.5 } };
	for (int k = 1; k <= 12; k++) {
		const double *x = xs[(k - 1) % 4], *y = ys[(k - 1) % 4];
		double gw[3], gb[2];
		for (int i = 0; i < 3; i++)
			gw[i] = x[i];
		for (int i = 0; i < 2; i++)
			gb[i] = 2 * b[i] * y[i];
		double bc1 = 1 - pow(BETA1, k), bc2 = 1 - pow(BETA2, k);
		for (int i = 0; i < 3; i++) {
			mw[i] = BETA1 * mw[i] + (1 - BETA1) * gw[i];
			vw[i] = BETA2 * vw[i] + (1 - BETA2) * gw[i] * gw[i];
			w[i] -= LR / bc1 * mw[i] / (sqrt(vw[i]) / sqrt(bc2) + ADAM_EPS);
			ew[i] = EMA * ew[i] + (1 - EMA) * w[i];
		}
		for (int i = 0; i < 2; i++) {
			mb[i] = BETA1 * mb[i] + (1 - BETA1) * gb[i];
			vb[i] = BETA2 * vb[i] + (1 - BETA2) * gb[i] * gb[i];
			b[i] -= LR / bc1 * mb[i] / (sqrt(vb[i]) / sqrt(bc2) + ADAM_EPS);
			eb[i] = EMA * eb[i] + (1 - EMA) * b[i];
		}
		rt_tensorset before;
		snapshot(&f.st, &before);
		step(&f, x, y, NULL);
		/* Every param, moment and EMA moves on a clean step. */
		for (int i = 0; i < TU_LEN(FROZEN); i++)
			if (same_bytes(rt_set_find(&before, FROZEN[i]), state_of(&f, FROZEN[i])))
				fail_msg("step %d: '%s' did not change on a clean step", k, FROZEN[i]);
		rt_set_free(&before);
		assert_true(scalar(&f, "optim.step") == k);
		assert_true(scalar(&f, "optim.growth_tracker") == k);
		assert_true(scalar(&f, "optim.loss_scale") == 65536.0);
		CHECK_PTR(state_of(&f, "w"), SH(3), w, 1e-5, 1e-6);
		CHECK_PTR(state_of(&f, "b"), SH(2), b, 1e-5, 1e-6);
		CHECK_PTR(state_of(&f, "optim.exp_avg.w"), SH(3), mw, 1e-5, 1e-7);
		CHECK_PTR(state_of(&f, "optim.exp_avg_sq.w"), SH(3), vw, 1e-5, 1e-9);
		CHECK_PTR(state_of(&f, "optim.exp_avg.b"), SH(2), mb, 1e-4, 1e-6);
		CHECK_PTR(state_of(&f, "optim.exp_avg_sq.b"), SH(2), vb, 1e-4, 1e-8);
		CHECK_PTR(state_of(&f, "ema.w"), SH(3), ew, 1e-5, 1e-6);
		CHECK_PTR(state_of(&f, "ema.b"), SH(2), eb, 1e-5, 1e-6);
	}
	fx_close(&f);
}

/* The state's tensors named in FROZEN are as in `before`. */
static void unchanged(const fixture *f, const rt_tensorset *before, const char *when)
{
	for (int i = 0; i < TU_LEN(FROZEN); i++)
		if (!same_bytes(rt_set_find(before, FROZEN[i]), state_of(f, FROZEN[i])))
			fail_msg("%s: '%s' changed", when, FROZEN[i]);
}

static void micro_batches_accumulate_into_one_step(void **state)
{
	(void)state;
	fixture f;
	fx_open(&f);
	rt_tensor *n = (rt_tensor *)state_of(&f, "hp.grad_accum");
	rt_store(n->dtype, n->data, 0, 3);
	const double xs[3][3] = { { 0.5, -0.25, 1 }, { 2, 0.125, -1 }, { -0.75, 1.5, 0.5 } };
	const double ys[3][2] = { { 0.5, 2 }, { -1, 0.25 }, { 0.75, 0.5 } };
	double w[3], b[2], sx[3] = { 0 }, sy[2] = { 0 }, ew[3];
	const rt_tensor *tw = state_of(&f, "w"), *tb = state_of(&f, "b");
	for (int i = 0; i < 3; i++)
		ew[i] = w[i] = rt_load(tw->dtype, tw->data, i);
	for (int i = 0; i < 2; i++)
		b[i] = rt_load(tb->dtype, tb->data, i);
	rt_tensorset before, out = { 0 };
	snapshot(&f.st, &before);
	for (int k = 0; k < 3; k++) {
		step(&f, xs[k], ys[k], k == 2 ? &out : NULL);
		for (int i = 0; i < 3; i++)
			sx[i] += xs[k][i];
		for (int i = 0; i < 2; i++)
			sy[i] += ys[k][i];
		if (k == 2)
			break;
		char when[64];
		snprintf(when, sizeof when, "micro-batch %d of 3", k + 1);
		unchanged(&f, &before, when);
		assert_true(scalar(&f, "optim.accum") == k + 1);
		assert_true(scalar(&f, "optim.loss_scale") == 65536.0);
		assert_true(scalar(&f, "optim.growth_tracker") == 0);
		double want[3];         /* scaled by 65536: exact in f32 */
		for (int i = 0; i < 3; i++)
			want[i] = 65536 * sx[i];
		CHECK_PTR(state_of(&f, "optim.grad_sum.w"), SH(3), want, 0, 0);
	}
	/* One Adam step (t = 1) on the mean gradient: m = (1 - b1) g,
	 * v = (1 - b2) g^2, so the step is lr * g / (|g| + eps'), and the EMA;
	 * grad_norm is the mean's (Adam alone would not tell a sum from it). */
	double norm2 = 0;
	for (int i = 0; i < 3; i++)
		norm2 += (sx[i] / 3) * (sx[i] / 3);
	for (int i = 0; i < 2; i++)
		norm2 += (2 * b[i] * sy[i] / 3) * (2 * b[i] * sy[i] / 3);
	const rt_tensor *gn = rt_set_find(&out, "grad_norm");
	assert_non_null(gn);
	if (!(fabs(rt_load(gn->dtype, gn->data, 0) - sqrt(norm2)) <= 1e-6 * sqrt(norm2)))
		fail_msg("grad_norm %.9g, the mean gradient's is %.9g", rt_load(gn->dtype, gn->data, 0),
		         sqrt(norm2));
	rt_set_free(&out);
	for (int i = 0; i < 3; i++) {
		double g = sx[i] / 3, m = (1 - BETA1) * g, v = (1 - BETA2) * g * g;
		w[i] -= LR / (1 - BETA1) * m / (sqrt(v) / sqrt(1 - BETA2) + ADAM_EPS);
		ew[i] = EMA * ew[i] + (1 - EMA) * w[i];
	}
	for (int i = 0; i < 2; i++) {
		double g = 2 * b[i] * sy[i] / 3, m = (1 - BETA1) * g, v = (1 - BETA2) * g * g;
		b[i] -= LR / (1 - BETA1) * m / (sqrt(v) / sqrt(1 - BETA2) + ADAM_EPS);
	}
	CHECK_PTR(state_of(&f, "w"), SH(3), w, 1e-5, 1e-6);
	CHECK_PTR(state_of(&f, "b"), SH(2), b, 1e-5, 1e-6);
	CHECK_PTR(state_of(&f, "ema.w"), SH(3), ew, 1e-5, 1e-6);
	assert_true(scalar(&f, "optim.step") == 1);
	assert_true(scalar(&f, "optim.growth_tracker") == 1);
	for (int i = 0; i < TU_LEN(ACCUM); i++)
		all_zero(&f, ACCUM[i]);
	rt_set_free(&before);

	/* A NaN in the middle micro-batch: the step is skipped, once. */
	const double nan_x[3] = { 0.5, NAN, 0 };
	snapshot(&f.st, &before);
	step(&f, CLEAN_X, CLEAN_Y, NULL);
	step(&f, nan_x, CLEAN_Y, NULL);
	step(&f, CLEAN_X, CLEAN_Y, NULL);
	unchanged(&f, &before, "a step with a NaN micro-batch");
	assert_true(scalar(&f, "optim.loss_scale") == 32768.0);
	assert_true(scalar(&f, "optim.growth_tracker") == 0);
	for (int i = 0; i < TU_LEN(ACCUM); i++)
		all_zero(&f, ACCUM[i]);
	rt_set_free(&before);
	fx_close(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(scaled_gradient_overflow_skips_the_step),
		cmocka_unit_test(halved_scale_lets_the_same_gradient_through),
		cmocka_unit_test(inf_gradient_skips_the_step),
		cmocka_unit_test(inf_gradient_of_second_param_skips_the_step),
		cmocka_unit_test(nan_gradient_skips_the_step),
		cmocka_unit_test(growth_interval_clean_steps_double_the_scale_once),
		cmocka_unit_test(overflow_at_the_growth_step_halves_instead),
		cmocka_unit_test(clean_steps_apply_adam_and_ema),
		cmocka_unit_test(micro_batches_accumulate_into_one_step),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
