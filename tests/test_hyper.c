/* hyper: the optimizer's run-time hyperparameters (lua/ddpm/optim.lua,
 * runtime/main/hyper.c) through a compiled executable, compiled once.
 *
 * tests/models/cli_tiny.lua (lr 1e-3, warmup 10, clip 1, ema 0.99) is
 * compiled into a temporary folder; each case runs its `train` with flags
 * and reads what the compiled step reported (metrics.jsonl, one line per
 * step: lr and ema_decay are train_step's outputs) or the checkpoint.
 * Checked:
 *   - info lists the script's values by flag;
 *   - no flag: the script's values; --lr changes the step's lr;
 *   - --lr-schedule constant|linear|cosine with --warmup and --total-steps:
 *     the lr of every step is diffusers' get_scheduler lambda at that step
 *     (computed here), including past the total (0);
 *   - --ema-warmup power|ratio|none with --ema, --ema-inv-gamma,
 *     --ema-power, --ema-min-decay: the decay of every step is diffusers'
 *     EMAModel.get_decay (computed here), and the EMA weights of a resumed
 *     step are d ema + (1 - d) theta with it;
 *   - --resume keeps the checkpoint's values; a flag overrides them;
 *   - flags equal to the script's values give the same bytes, --clip and
 *     --weight-decay other values change the step;
 *   - --grad-accum 2 steps the optimizer every second call, and a run
 *     saved between two micro-batches resumes bit-exactly;
 *   - a bad value, or a flag the command does not take, is a one-line
 *     error and a non-zero exit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"
#include "testutil.h"

enum { NIMG = 24, SIDE = 28, MAXSTEP = 16 };

static char dir[64], exe[128], data[128];

static int setup(void **unused)
{
	return tu_tiny_program("tests/models/cli_tiny.lua", "--target cpu", dir, exe, data, NIMG, SIDE);
}

static int teardown(void **unused)
{
	tu_rmtree(dir);
	return 0;
}

/* `train` into DIR/out with the flags (printf-style); fails on an error. */
static void train(const char *out, const char *fmt, ...)
{
	char flags[1024], cmd[2048], err[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(flags, sizeof flags, fmt, ap);
	va_end(ap);
	snprintf(cmd, sizeof cmd, "'%s' train --data '%s' --out '%s/%s' --log-every 1 --threads 2 %s",
	         exe, data, dir, out, flags);
	if (tu_stderr_of(cmd, err, sizeof err) != 0)
		fail_msg("train %s: %s", flags, err);
}

/* The value of `key` in every line of DIR/out/metrics.jsonl: v[step - 1].
 * Returns the number of lines. */
static int metric(const char *out, const char *key, double v[MAXSTEP])
{
	char path[256], line[1024], pat[64];
	snprintf(path, sizeof path, "%s/%s/metrics.jsonl", dir, out);
	snprintf(pat, sizeof pat, "\"%s\": ", key);
	FILE *f = fopen(path, "r");
	int n = 0;
	if (!f)
		fail_msg("%s is missing", path);
	while (n < MAXSTEP && fgets(line, sizeof line, f)) {
		const char *at = strstr(line, pat);
		if (!at)
			fail_msg("%s: no %s in '%s'", path, key, line);
		v[n++] = strtod(at + strlen(pat), NULL);
	}
	fclose(f);
	return n;
}

static double scalar(const rt_tensorset *s, const char *name)
{
	const rt_tensor *t = rt_set_find(s, name);
	if (!t)
		fail_msg("the checkpoint has no '%s'", name);
	return rt_load(t->dtype, t->data, 0);
}

/* got against want at every step; relative to max(|want|, 1e-3). */
static void same_series(const char *what, const double *got, const double *want, int n, double tol)
{
	for (int k = 0; k < n; k++)
		if (!(fabs(got[k] - want[k]) <= tol * fmax(fabs(want[k]), 1e-3)))
			fail_msg("%s at step %d: the step reported %.9g, the formula gives %.9g", what, k + 1,
			         got[k], want[k]);
}

/* The lr train_step reported at each step of run `out` is want[]. */
static void lr_series(const char *out, const double *want, int n, double tol)
{
	double lr[MAXSTEP];
	char what[64];
	assert_int_equal(metric(out, "lr", lr), n);
	snprintf(what, sizeof what, "lr of run %s", out);
	same_series(what, lr, want, n, tol);
}

/* --- the learning rate ------------------------------------------------------ */

/* `info` lists the script's values by flag (the program's meta). */
static void info_lists_the_script_values(void **unused)
{
	char cmd[256], out[8192];
	snprintf(cmd, sizeof cmd, "'%s' info", exe);
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	size_t n = fread(out, 1, sizeof out - 1, p);
	out[n] = 0;
	assert_int_equal(pclose(p), 0);
	tu_contains(out, "hyperparameters (the script's values", "--lr             0.001\n",
	            "--warmup         10\n", "--lr-schedule    constant\n", "--clip           1\n",
	            "--grad-accum     1\n", "--ema            0.99\n", "--ema-warmup     none\n", NULL);
}

/* diffusers' get_scheduler lambdas at step t (1-based here, see optim.lua). */
static double lambda(const char *kind, double t, double w, double n)
{
	if (t < w)
		return t / fmax(1, w);
	double span = fmax(1, n - w);
	if (!strcmp(kind, "linear"))
		return fmax(0, (n - t) / span);
	if (!strcmp(kind, "cosine"))
		return fmax(0, 0.5 * (1 + cos(M_PI * (t - w) / span)));
	return 1;
}

static void script_values_and_lr_flag(void **unused)
{
	const double script[3] = { 1e-4, 2e-4, 3e-4 };    /* lr 1e-3, warmup 10 */
	const double flag[3] = { 0.0123, 0.0123, 0.0123 };
	train("plain", "--steps 3");
	lr_series("plain", script, 3, 1e-6);
	train("lr", "--steps 3 --lr 0.0123 --warmup 0");
	lr_series("lr", flag, 3, 1e-6);
}

static void lr_schedules_match_diffusers(void **unused)
{
	static const char *const kinds[] = { "constant", "linear", "cosine" };
	const int steps = 9, warmup = 3, total = 7;
	for (int i = 0; i < TU_LEN(kinds); i++) {
		double want[MAXSTEP];
		train(kinds[i], "--steps %d --lr 0.02 --warmup %d --total-steps %d --lr-schedule %s", steps,
		      warmup, total, kinds[i]);
		for (int k = 0; k < steps; k++)
			want[k] = 0.02 * lambda(kinds[i], k + 1, warmup, total);
		lr_series(kinds[i], want, steps, 1e-5);
		print_message("    %s: lr at steps 4..9 %.6g %.6g %.6g %.6g %.6g %.6g\n", kinds[i], want[3],
		              want[4], want[5], want[6], want[7], want[8]);
	}
}

/* Without --total-steps a decaying schedule ends at the run's last step. */
static void total_steps_defaults_to_the_run(void **unused)
{
	const double want[4] = { 0.015, 0.01, 0.005, 0 };
	train("lin_default", "--steps 4 --lr 0.02 --warmup 0 --lr-schedule linear");
	lr_series("lin_default", want, 4, 1e-5);
	rt_tensorset st;
	tu_read_checkpoint(dir, "lin_default", &st);
	assert_true(scalar(&st, "hp.total_steps") == 4);
	rt_set_free(&st);
}

/* --- EMA -------------------------------------------------------------------- */

typedef struct {
	int mode;                       /* 0 none, 1 power, 2 ratio */
	double max, min, inv_gamma, power;
} ema_cfg;

/* diffusers' EMAModel.get_decay(optimization_step = t). */
static double get_decay(const ema_cfg *c, int t)
{
	int s = t - 1;
	if (c->mode == 0)
		return c->max;
	if (s <= 0)
		return 0;
	double d = c->mode == 1 ? 1 - pow(1 + s / c->inv_gamma, -c->power) : (1.0 + s) / (10.0 + s);
	return fmax(fmin(d, c->max), c->min);
}

static void ema_decay_matches_diffusers(void **unused)
{
	static const char *const names[] = { "none", "power", "ratio" };
	const int steps = 7;
	for (int mode = 0; mode < 3; mode++) {
		ema_cfg c = { mode, 0.5, 0.3, 2, 0.75 };
		double d[MAXSTEP], want[MAXSTEP];
		char out[32], what[64];
		snprintf(out, sizeof out, "ema_%s", names[mode]);
		train(out, "--steps %d --ema %g --ema-min-decay %g --ema-inv-gamma %g --ema-power %g "
		      "--ema-warmup %s", steps, c.max, c.min, c.inv_gamma, c.power, names[mode]);
		assert_int_equal(metric(out, "ema_decay", d), steps);
		for (int k = 0; k < steps; k++)
			want[k] = get_decay(&c, k + 1);
		snprintf(what, sizeof what, "ema_decay (%s)", names[mode]);
		same_series(what, d, want, steps, 1e-5);
		print_message("    %s: decay at steps 1..7 %.4g %.4g %.4g %.4g %.4g %.4g %.4g\n", names[mode],
		              d[0], d[1], d[2], d[3], d[4], d[5], d[6]);
	}
}

/* One step, then one resumed step (no flags: the checkpoint's values): the
 * EMA weights after it are d ema + (1 - d) theta with d = get_decay(2). */
static void ema_weights_use_the_decay(void **unused)
{
	ema_cfg c = { 2, 0.999, 0, 1, 1 };         /* ratio: d(2) = 2 / 11 */
	rt_tensorset a, b;
	train("ema_w", "--steps 1 --ema-warmup ratio --ema 0.999");
	tu_read_checkpoint(dir, "ema_w", &a);
	train("ema_w", "--steps 1 --resume");
	tu_read_checkpoint(dir, "ema_w", &b);
	double d = get_decay(&c, 2), worst = 0;
	int checked = 0;
	for (int i = 0; i < b.n; i++) {
		const rt_tensor *e1 = &b.t[i];
		if (strncmp(e1->name, "ema.", 4) != 0)
			continue;
		const rt_tensor *e0 = rt_set_find(&a, e1->name), *theta = rt_set_find(&b, e1->name + 4);
		assert_non_null(e0);
		assert_non_null(theta);
		for (int64_t k = 0; k < rt_numel(e1->rank, e1->shape); k++) {
			double want = d * rt_load(e0->dtype, e0->data, k) +
			              (1 - d) * rt_load(theta->dtype, theta->data, k);
			worst = fmax(worst, fabs(rt_load(e1->dtype, e1->data, k) - want));
		}
		checked++;
	}
	print_message("    %d EMA tensors, max |ema - (d ema0 + (1 - d) theta)| = %.3g (d = %.6g)\n",
	              checked, worst, d);
	assert_true(checked > 100);
	if (!(worst <= 1e-6))
		fail_msg("the EMA weights differ from d ema + (1 - d) theta by %g", worst);
	assert_true(scalar(&b, "hp.ema_warmup") == 2);
	assert_true(scalar(&b, "optim.ema_init_share") == 0);   /* d(1) = 0: a copy */
	rt_set_free(&a);
	rt_set_free(&b);

	/* The initial weights' share in the EMA is the product of the decays:
	 * 0.5^3 after three steps of a constant 0.5, across a resume. */
	train("ema_share", "--steps 2 --ema-warmup none --ema 0.5");
	train("ema_share", "--steps 1 --resume");
	tu_read_checkpoint(dir, "ema_share", &b);
	assert_true(scalar(&b, "optim.ema_init_share") == 0.125);
	rt_set_free(&b);
}

/* --- resume, equality, effect --------------------------------------------------- */

static void resume_keeps_values_unless_flagged(void **unused)
{
	const double want[4] = { 0.005, 0.005, 0.005, 0.002 };
	train("res", "--steps 2 --lr 0.005 --warmup 0");
	train("res", "--steps 1 --resume");
	train("res", "--steps 1 --resume --lr 0.002");
	lr_series("res", want, 4, 1e-6);
	rt_tensorset st;
	tu_read_checkpoint(dir, "res", &st);
	assert_true(scalar(&st, "hp.lr") == (float)0.002);
	tu_contains(rt_get_meta(&st, "hyperparameters"), "\"lr\": 0.002", "\"warmup\": 0",
	            "\"lr_schedule\": \"constant\"", "\"ema\": 0.99", NULL);
	rt_set_free(&st);
}

/* Whether the trainable tensors of two checkpoints are byte-identical. */
static int same_weights(const char *out1, const char *out2)
{
	rt_tensorset a, b;
	tu_read_checkpoint(dir, out1, &a);
	tu_read_checkpoint(dir, out2, &b);
	int same = a.n == b.n;
	for (int i = 0; same && i < a.n; i++) {
		const rt_tensor *x = &a.t[i], *y = rt_set_find(&b, x->name);
		if (strncmp(x->name, "hp.", 3) == 0)
			continue;
		same = y && memcmp(x->data, y->data,
		                   (size_t)rt_numel(x->rank, x->shape) * rt_dtype_size(x->dtype)) == 0;
	}
	rt_set_free(&a);
	rt_set_free(&b);
	return same;
}

static void flags_change_the_step(void **unused)
{
	train("base", "--steps 2");
	train("same", "--steps 2 --lr 0.001 --warmup 10 --clip 1 --weight-decay 0 --ema 0.99 "
	      "--ema-warmup none --lr-schedule constant");
	train("clip", "--steps 2 --clip 0.001");
	train("noclip", "--steps 2 --clip 0");
	train("wd", "--steps 2 --weight-decay 0.5");
	if (!same_weights("base", "same"))
		fail_msg("flags equal to the script's values changed the state");
	if (same_weights("base", "clip"))
		fail_msg("--clip 0.001 did not change the step");
	if (same_weights("base", "wd"))
		fail_msg("--weight-decay 0.5 did not change the step");
	if (same_weights("clip", "noclip"))
		fail_msg("--clip 0 (off) and --clip 0.001 gave the same step");
}

/* --grad-accum 2: a step every second call (the odd calls report the
 * last step's lr), and a run saved inside an accumulation resumes exactly. */
static void grad_accum_steps_every_nth_call(void **unused)
{
	const double want[4] = { 0, 1e-4, 1e-4, 2e-4 };   /* t = 0, 1, 1, 2; warmup 10 */
	train("accum", "--steps 4 --grad-accum 2");
	lr_series("accum", want, 4, 1e-6);
	rt_tensorset st;
	tu_read_checkpoint(dir, "accum", &st);
	assert_true(scalar(&st, "optim.step") == 2);
	assert_true(scalar(&st, "train.iteration") == 4);
	assert_true(scalar(&st, "hp.grad_accum") == 2);
	rt_set_free(&st);

	train("accum6", "--steps 6 --grad-accum 2");
	train("accum3", "--steps 3 --grad-accum 2");
	tu_read_checkpoint(dir, "accum3", &st);
	assert_true(scalar(&st, "optim.accum") == 1);     /* saved inside a step */
	rt_set_free(&st);
	train("accum3", "--steps 3 --resume");
	if (!same_weights("accum6", "accum3"))
		fail_msg("--grad-accum 2: 3 + 3 resumed calls differ from 6");
}

static void bad_values_are_one_line_errors(void **unused)
{
	static const char *const bad[][3] = {
		{ "train", "--lr -1", "--lr: expected a number in [0, 1000], got '-1'" },
		{ "train", "--lr abc", "--lr: expected a number" },
		{ "train", "--warmup 2.5", "--warmup: expected an integer" },
		{ "train", "--lr-schedule step", "--lr-schedule: expected one of constant, linear, cosine, got 'step'" },
		{ "train", "--ema 1.5", "--ema: expected a number in [0, 1]" },
		{ "train", "--ema-warmup yes", "--ema-warmup: expected one of none, power, ratio" },
		{ "train", "--ema-inv-gamma 0", "--ema-inv-gamma: expected a number" },
		{ "train", "--grad-accum 0", "--grad-accum: expected an integer in [1, 1000000]" },
		{ "train", "--clip", "--clip needs a value" },
		{ "sample", "--lr 0.1", "sample: --lr is a flag of train, not of sample" },
	};
	for (int i = 0; i < TU_LEN(bad); i++) {
		char cmd[512], err[4096];
		snprintf(cmd, sizeof cmd, "'%s' %s --out '%s/bad' %s", exe, bad[i][0], dir, bad[i][1]);
		int rc = tu_stderr_of(cmd, err, sizeof err);
		if (rc == 0 || tu_lines(err) != 1 || !strstr(err, bad[i][2]))
			fail_msg("%s %s: exit %d, stderr '%s'; want one line with '%s'", bad[i][0], bad[i][1],
			         rc, err, bad[i][2]);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(info_lists_the_script_values),
		cmocka_unit_test(script_values_and_lr_flag),
		cmocka_unit_test(lr_schedules_match_diffusers),
		cmocka_unit_test(total_steps_defaults_to_the_run),
		cmocka_unit_test(ema_decay_matches_diffusers),
		cmocka_unit_test(ema_weights_use_the_decay),
		cmocka_unit_test(resume_keeps_values_unless_flagged),
		cmocka_unit_test(flags_change_the_step),
		cmocka_unit_test(grad_accum_steps_every_nth_call),
		cmocka_unit_test(bad_values_are_one_line_errors),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
