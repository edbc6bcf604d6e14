/* train_parity: the training step of tests/models/train_parity.lua, run by
 * the reference interpreter, against PyTorch (goldens from
 * tests/golden/make_train_golden.py: diffusers UNet2DModel, torch.optim.Adam,
 * clip_grad_norm_, LambdaLR warmup, EMA; CPU float32).
 *
 * Error measure, for every tensor T compared:
 *     err(T) = max_i |ours_i - torch_i| / scale(T),
 *     scale(T) = max(max_i |torch_i|, floor),
 *     floor = 1e-4 * (the largest max |torch| over all tensors of T's kind)
 * (kinds: gradients, weights, EMA, exp_avg, exp_avg_sq). The floor only
 * matters for tensors whose true value is zero (see below). Limit: 1e-4.
 *
 * Why 1e-4 holds through Adam: Adam divides m by sqrt(v) ~ |g|, so relative
 * gradient errors pass to the update unchanged, and the update (<= lr per
 * step) is small against the weights. The golden script measures torch's own
 * float32 error against a float64 run: <= 3e-6 for gradients and every
 * state tensor, except the four attention to_k.bias (below).
 *
 * Gradient-free parameters: the attention's key bias adds q.b_k to every
 * score of a query, and softmax ignores that, so d loss / d to_k.bias = 0
 * exactly; float32 leaves ~1e-10 of round-off, different in torch and here.
 * Adam's first steps turn such noise into steps lr*g/(|g| + eps), of either
 * sign and up to ~lr/10 here (torch float32 vs float64 differ by 3e-4 of the
 * tensor's max). A parameter whose torch step-1 gradient is below 1e-6 of the
 * largest gradient is treated as such: its gradient and moments are held to
 * the floor above (so they must be round-off), and its weights and EMA must
 * lie within sum(lr_t) = 2.5e-3 (the most Adam moves a weight in 3 steps) of
 * torch's. The test checks that exactly those four tensors are gradient-free. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frontend.h"
#include "interp.h"
#include "safetensors.h"
#include "testutil.h"

#define STEPS 3
#define REL_TOL 1e-4
#define FLOOR_FRAC 1e-4
#define GRAD_FREE_FRAC 1e-6
#define LR 1e-3
#define WARMUP 2

static const rt_tensor *need(const rt_tensorset *s, const char *what, const char *name)
{
	const rt_tensor *t = rt_set_find(s, name);
	if (!t)
		fail_msg("%s has no tensor '%s'", what, name);
	return t;
}

/* max |a - b| over the elements; the shapes must agree. */
static double max_diff(const char *name, const rt_tensor *got, const rt_tensor *want, int64_t *at)
{
	if (got->rank != want->rank || memcmp(got->shape, want->shape, sizeof(int64_t) * got->rank))
		fail_msg("%s: shape differs from torch's", name);
	double worst = 0;
	int64_t n = rt_numel(want->rank, want->shape);
	*at = 0;
	for (int64_t i = 0; i < n; i++) {
		double d = fabs(rt_load(got->dtype, got->data, i) - rt_load(want->dtype, want->data, i));
		if (!(d <= worst))                    /* NaN counts as the worst */
			worst = d, *at = i;
	}
	return worst;
}

/* One kind of tensor compared over every parameter. */
typedef struct {
	const char *kind;
	double floor;
	double worst, free_worst;               /* ordinary / gradient-free params */
	char worst_name[256], free_name[256];
	int failures;
} tally;

/* Compares one tensor; relative to scale(T) unless abs_tol >= 0. */
static void compare(tally *k, const char *name, const rt_tensor *got, const rt_tensor *want, double abs_tol,
                    int grad_free)
{
	int64_t at;
	double d = max_diff(name, got, want, &at);
	double scale = fmax(tu_max_abs(want), k->floor);
	double err = d / scale;
	int ok = abs_tol >= 0 ? d <= abs_tol : err <= REL_TOL;
	if (!ok) {
		print_message("FAIL %s %s: max |ours - torch| = %.3g at element %lld; %s %.3g (limit %.3g)\n",
		              k->kind, name, d, (long long)at, abs_tol >= 0 ? "absolute" : "relative",
		              abs_tol >= 0 ? d : err, abs_tol >= 0 ? abs_tol : REL_TOL);
		k->failures++;
	}
	if (abs_tol >= 0)
		return;
	if (grad_free && !(err <= k->free_worst)) {
		k->free_worst = err;
		snprintf(k->free_name, sizeof k->free_name, "%s", name);
	} else if (!grad_free && !(err <= k->worst)) {
		k->worst = err;
		snprintf(k->worst_name, sizeof k->worst_name, "%s", name);
	}
}

static void report(const tally *k)
{
	print_message("%-11s worst relative error %.3g (%s)", k->kind, k->worst, k->worst_name);
	if (k->free_name[0])
		print_message("; gradient-free params %.3g (%s)", k->free_worst, k->free_name);
	print_message("\n");
}

/* The largest max |torch| over `prefix`+param for every param of `weights`. */
static double kind_max(const rt_tensorset *golden, const rt_tensorset *weights, const char *prefix)
{
	char name[512];
	double m = 0;
	for (int i = 0; i < weights->n; i++) {
		snprintf(name, sizeof name, "%s%s", prefix, weights->t[i].name);
		m = fmax(m, tu_max_abs(need(golden, "golden", name)));
	}
	return m;
}

/* Adds rows[k] of a (STEPS, ...) tensor to `set` as `name`. */
static void add_row(rt_tensorset *set, const char *name, const rt_tensor *rows, int k)
{
	rt_tensor *t = rt_set_add(set, name, rows->dtype, rows->rank - 1, rows->shape + 1);
	assert_non_null(t);
	size_t bytes = (size_t)rt_numel(t->rank, t->shape) * rt_dtype_size(t->dtype);
	memcpy(t->data, (const char *)rows->data + bytes * k, bytes);
}

/* Marks the params whose step-1 torch gradient is round-off (see the top). */
static char *gradient_free(const rt_tensorset *grads, const rt_tensorset *weights, double gmax)
{
	char name[512];
	char *mask = calloc(weights->n, 1);
	int n = 0;
	for (int i = 0; i < weights->n; i++) {
		snprintf(name, sizeof name, "grad.%s", weights->t[i].name);
		if (tu_max_abs(need(grads, "train_grads", name)) <= GRAD_FREE_FRAC * gmax) {
			mask[i] = 1, n++;
			print_message("gradient-free (softmax shift invariance): %s\n", weights->t[i].name);
			if (!strstr(weights->t[i].name, "attentions.") || !strstr(weights->t[i].name, ".to_k.bias"))
				fail_msg("%s has a zero torch gradient but is not an attention key bias",
				         weights->t[i].name);
		}
	}
	assert_int_equal(n, 4);
	return mask;
}

static void run_entry(const ir_graph *g, const char *entry, rt_tensorset *st, const rt_tensorset *in,
                      rt_tensorset *out)
{
	char err[1024];
	const ir_entry *e = ir_entry_find(g, entry);
	if (!e)
		fail_msg("the model has no entry '%s'", entry);
	if (interp_run(g, e, st, in, out, err, sizeof err) < 0)
		fail_msg("%s: %s", entry, err);
}

static void init_state(const ir_graph *g, const rt_tensorset *weights, rt_tensorset *st)
{
	char err[1024];
	if (interp_init_state(g, 0, weights, "train_weights.safetensors", st, err, sizeof err) < 0)
		fail_msg("%s", err);
}

static double scalar(const rt_tensorset *s, const char *what, const char *name)
{
	const rt_tensor *t = need(s, what, name);
	assert_int_equal(rt_numel(t->rank, t->shape), 1);
	return rt_load(t->dtype, t->data, 0);
}

/* (a) loss and every parameter's gradient at the initial weights. */
static void gradients_match_torch(void **state)
{
	ir_graph *g = tu_load("tests/models/train_parity.lua");
	rt_tensorset weights = { 0 }, io = { 0 }, grads = { 0 }, st = { 0 }, in = { 0 }, out = { 0 };
	tu_read_golden("train_weights.safetensors", &weights);
	tu_read_golden("train_io.safetensors", &io);
	tu_read_golden("train_grads.safetensors", &grads);
	init_state(g, &weights, &st);

	const rt_tensor *x0 = need(&io, "train_io", "x0");
	rt_tensor *t = rt_set_add(&in, "g.x0", x0->dtype, x0->rank, x0->shape);
	memcpy(t->data, x0->data, (size_t)rt_numel(x0->rank, x0->shape) * rt_dtype_size(x0->dtype));
	add_row(&in, "g.t", need(&io, "train_io", "t"), 0);
	add_row(&in, "g.noise", need(&io, "train_io", "noise"), 0);
	run_entry(g, "gradients", &st, &in, &out);

	/* one output per parameter and the loss, nothing else */
	assert_int_equal(out.n, weights.n + 1);
	assert_int_equal(grads.n, weights.n + 1);

	double want_loss = scalar(&grads, "train_grads", "loss1"), got_loss = scalar(&out, "output", "loss");
	double loss_err = fabs(got_loss - want_loss) / fabs(want_loss);
	print_message("loss: ours %.9g torch %.9g, relative error %.3g\n", got_loss, want_loss, loss_err);
	if (!(loss_err <= REL_TOL))
		fail_msg("loss: relative error %g (limit %g)", loss_err, REL_TOL);

	double gmax = kind_max(&grads, &weights, "grad.");
	char *free_mask = gradient_free(&grads, &weights, gmax);
	tally k = { .kind = "gradient", .floor = FLOOR_FRAC * gmax };
	char name[512];
	for (int i = 0; i < weights.n; i++) {
		snprintf(name, sizeof name, "grad.%s", weights.t[i].name);
		compare(&k, name, need(&out, "output", name), need(&grads, "train_grads", name), -1,
		        free_mask[i]);
	}
	report(&k);
	print_message("(largest gradient %.3g; floor %.3g)\n", gmax, k.floor);
	if (k.failures)
		fail_msg("%d gradients differ from torch (relative limit %g)", k.failures, REL_TOL);
	free(free_mask);
	rt_set_free(&weights);
	rt_set_free(&io);
	rt_set_free(&grads);
	rt_set_free(&st);
	rt_set_free(&in);
	rt_set_free(&out);
	ir_free(g);
}

/* (b) three calls of train_step_fixed: losses, and afterwards the weights,
 * EMA and Adam moments. State persists across interp_run calls. */
static void three_train_steps_match_torch(void **state)
{
	ir_graph *g = tu_load("tests/models/train_parity.lua");
	rt_tensorset weights = { 0 }, io = { 0 }, grads = { 0 }, after = { 0 }, st = { 0 };
	tu_read_golden("train_weights.safetensors", &weights);
	tu_read_golden("train_io.safetensors", &io);
	tu_read_golden("train_grads.safetensors", &grads);
	tu_read_golden("train_after3.safetensors", &after);
	init_state(g, &weights, &st);

	const rt_tensor *x0 = need(&io, "train_io", "x0"), *ts = need(&io, "train_io", "t");
	const rt_tensor *noise = need(&io, "train_io", "noise");
	const rt_tensor *want_loss = need(&after, "train_after3", "loss");
	const rt_tensor *want_norm = need(&after, "train_after3", "grad_norm");
	const rt_tensor *want_lr = need(&after, "train_after3", "lr");
	double lr_sum = 0;
	int clipped = 0, unclipped = 0;
	for (int s = 0; s < STEPS; s++) {
		rt_tensorset in = { 0 }, out = { 0 };
		rt_tensor *t = rt_set_add(&in, "fixed.x0", x0->dtype, x0->rank, x0->shape);
		memcpy(t->data, x0->data, (size_t)rt_numel(x0->rank, x0->shape) * rt_dtype_size(x0->dtype));
		add_row(&in, "fixed.t", ts, s);
		add_row(&in, "fixed.noise", noise, s);
		run_entry(g, "train_step_fixed", &st, &in, &out);
		double loss = scalar(&out, "output", "loss"), norm = scalar(&out, "output", "grad_norm");
		double lr = scalar(&out, "output", "lr");
		double wl = rt_load(want_loss->dtype, want_loss->data, s);
		double wn = rt_load(want_norm->dtype, want_norm->data, s);
		double wlr = rt_load(want_lr->dtype, want_lr->data, s);
		double el = fabs(loss - wl) / fabs(wl), en = fabs(norm - wn) / fabs(wn), elr = fabs(lr - wlr) / wlr;
		print_message("step %d: loss %.9g (torch %.9g, rel %.2g), grad_norm %.7g (torch %.7g, rel %.2g), "
		              "lr %.6g (torch %.6g)\n", s + 1, loss, wl, el, norm, wn, en, lr, wlr);
		if (!(el <= REL_TOL))
			fail_msg("step %d: loss relative error %g (limit %g)", s + 1, el, REL_TOL);
		if (!(en <= REL_TOL))
			fail_msg("step %d: grad_norm relative error %g (limit %g)", s + 1, en, REL_TOL);
		if (!(elr <= 1e-6))
			fail_msg("step %d: lr %g, torch %g", s + 1, lr, wlr);
		assert_true(fabs(wlr - LR * fmin((s + 1.0) / WARMUP, 1.0)) <= 1e-9);
		lr_sum += wlr;
		if (wn > 1.5)
			clipped++;
		else
			unclipped++;
		rt_set_free(&in);
		rt_set_free(&out);
	}
	assert_true(clipped > 0 && unclipped > 0);   /* both sides of the clip are exercised */
	assert_int_equal((int)scalar(&st, "state", "optim.step"), STEPS);
	assert_int_equal((int)scalar(&st, "state", "train.iteration"), STEPS);

	double gmax = kind_max(&grads, &weights, "grad.");
	char *free_mask = gradient_free(&grads, &weights, gmax);
	tally kinds[4] = {
		{ .kind = "weights", .floor = FLOOR_FRAC * kind_max(&after, &weights, "") },
		{ .kind = "ema", .floor = FLOOR_FRAC * kind_max(&after, &weights, "ema.") },
		{ .kind = "exp_avg", .floor = FLOOR_FRAC * kind_max(&after, &weights, "optim.exp_avg.") },
		{ .kind = "exp_avg_sq", .floor = FLOOR_FRAC * kind_max(&after, &weights, "optim.exp_avg_sq.") },
	};
	const char *prefix[4] = { "", "ema.", "optim.exp_avg.", "optim.exp_avg_sq." };
	double free_worst = 0;
	char name[512];
	for (int i = 0; i < weights.n; i++) {
		for (int k = 0; k < 4; k++) {
			snprintf(name, sizeof name, "%s%s", prefix[k], weights.t[i].name);
			const rt_tensor *got = need(&st, "state", name), *want = need(&after, "train_after3", name);
			double abs_tol = free_mask[i] && k < 2 ? lr_sum : -1;
			compare(&kinds[k], name, got, want, abs_tol, free_mask[i]);
			if (abs_tol >= 0) {
				int64_t at;
				free_worst = fmax(free_worst, max_diff(name, got, want, &at));
			}
		}
	}
	int failures = 0;
	for (int k = 0; k < 4; k++) {
		report(&kinds[k]);
		failures += kinds[k].failures;
	}
	print_message("gradient-free weights/EMA: max |ours - torch| = %.3g (limit %.3g absolute)\n",
	              free_worst, lr_sum);
	if (failures)
		fail_msg("%d state tensors differ from torch after %d steps", failures, STEPS);
	free(free_mask);
	rt_set_free(&weights);
	rt_set_free(&io);
	rt_set_free(&grads);
	rt_set_free(&after);
	rt_set_free(&st);
	ir_free(g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(gradients_match_torch),
		cmocka_unit_test(three_train_steps_match_torch),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
