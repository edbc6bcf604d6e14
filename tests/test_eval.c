/* test_eval: `OUT eval` of a diffusion program, end to end.
 *
 * tests/models/cli_tiny.lua (1x28x28: ddpm.program.diffusion adds the
 * Fashion-MNIST classifier's `features` entry, its shipped weights
 * compiled in) is compiled once, with small gzipped IDX sets beside each
 * other: train-images-idx3-ubyte.gz (NTRAIN images) and
 * t10k-images-idx3-ubyte.gz (NTEST: the first of the same pseudo-random
 * images). Checked:
 *   - eval --n N with DDIM in 2 steps prints FID, KID and the floor, the
 *     test set found beside --data, and the generated images (noise after
 *     2 steps of an untrained model) score far above the floor;
 *   - the floor of the whole training set against itself (--test the same
 *     file, --n all of it) is FID 0: the features entry is deterministic
 *     and rt_fid sees the same statistics;
 *   - the same seed gives the same figures;
 *   - train --eval-every 2 writes fid and kid on the metrics lines of
 *     steps 2 and 4 only;
 *   - an RGB program (tests/models/cl_tiny.lua --set channels=3) says the metric is not
 *     available and exits non-zero (eval, and train --eval-every before
 *     its first step); asking for the metric with RGB images
 *     fails at compile time naming the script line. */
#include <math.h>

#include "testutil.h"

enum { NTRAIN = 40, NTEST = 30, SIDE = 28 };

static char dir[64], exe[128], train[128], test[128];

static int setup(void **unused)
{
	(void)unused;
	tu_tmpdir(dir, sizeof dir);
	snprintf(exe, sizeof exe, "%s/tiny", dir);
	snprintf(train, sizeof train, "%s/train-images-idx3-ubyte.gz", dir);
	snprintf(test, sizeof test, "%s/t10k-images-idx3-ubyte.gz", dir);
	if (tu_compile("tests/models/cli_tiny.lua", "--target cpu", exe) ||
	    tu_write_idx(train, NTRAIN, SIDE))
		return -1;
	return tu_write_idx(test, NTEST, SIDE);
}

static int teardown(void **unused)
{
	(void)unused;
	tu_rmtree(dir);
	return 0;
}

/* The number after `key` in s (the first occurrence after `from`). */
static double figure(const char *s, const char *from, const char *key)
{
	const char *p = strstr(s, from);
	p = p ? strstr(p, key) : NULL;
	if (!p)
		fail_msg("no '%s' after '%s' in:\n%s", key, from, s);
	return strtod(p + strlen(key), NULL);
}

static int eval(char *out, size_t len, const char *flags)
{
	char cmd[1024];
	snprintf(cmd, sizeof cmd, "'%s' eval --threads 2 --sampler ddim --steps 2 --data '%s' %s", exe,
	         train, flags);
	return tu_output_of(cmd, out, len);
}

static void test_prints_fid_kid_and_floor(void **state)
{
	(void)state;
	char out[8192], again[8192];
	if (eval(out, sizeof out, "--n 12 --seed 3"))
		fail_msg("eval failed:\n%s", out);
	print_message("%s", out);
	double fid = figure(out, "\nFID", "FID "), kid = figure(out, "\nFID", "KID ");
	double floor_fid = figure(out, "floor:", "FID "), floor_kid = figure(out, "floor:", "KID ");
	assert_non_null(strstr(out, "12 samples vs 30 test images"));
	assert_true(isfinite(fid) && isfinite(kid) && isfinite(floor_fid) && isfinite(floor_kid));
	if (!(fid > 2 * floor_fid && kid > floor_kid))
		fail_msg("noise scores FID %g KID %g, not above the floor's FID %g KID %g", fid, kid,
		         floor_fid, floor_kid);
	assert_int_equal(eval(again, sizeof again, "--n 12 --seed 3"), 0);
	assert_true(figure(again, "\nFID", "FID ") == fid);
	assert_true(figure(again, "floor:", "KID ") == floor_kid);
}

static void test_floor_of_a_set_against_itself(void **state)
{
	(void)state;
	char out[8192], flags[256];
	snprintf(flags, sizeof flags, "--n %d --test '%s'", NTRAIN, train);
	if (eval(out, sizeof out, flags))
		fail_msg("eval failed:\n%s", out);
	double floor_fid = figure(out, "floor:", "FID ");
	if (!(fabs(floor_fid) < 1e-3))
		fail_msg("the training set against itself: FID %g, want 0", floor_fid);
}

/* train --eval-every 2: the metrics lines of steps 2 and 4 carry fid and
 * kid, the others do not. */
static void test_train_eval_every(void **state)
{
	(void)state;
	char cmd[1024], out[8192], path[256], line[1024];
	snprintf(cmd, sizeof cmd, "'%s' train --threads 2 --steps 4 --log-every 1 --eval-every 2 "
	         "--n 8 --data '%s' --out '%s/run'", exe, train, dir);
	if (tu_output_of(cmd, out, sizeof out))
		fail_msg("train --eval-every failed:\n%s", out);
	tu_contains(out, "eval step 2: FID", "eval step 4: FID", NULL);
	snprintf(path, sizeof path, "%s/run/metrics.jsonl", dir);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	int lines = 0, with = 0;
	while (fgets(line, sizeof line, f)) {
		int step = atoi(strstr(line, "\"step\": ") + 8);
		int has = strstr(line, "\"fid\": ") && strstr(line, "\"kid\": ");
		if (has != (step % 2 == 0))
			fail_msg("step %d: fid and kid %s: %s", step, has ? "present" : "missing", line);
		if (has && !(atof(strstr(line, "\"fid\": ") + 7) > 0))
			fail_msg("step %d: FID not positive: %s", step, line);
		lines++, with += has;
	}
	fclose(f);
	assert_int_equal(lines, 4);
	assert_int_equal(with, 2);
}

static void test_rgb_refused(void **state)
{
	(void)state;
	char rgb[128], out[4096], path[256];
	snprintf(rgb, sizeof rgb, "%s/rgb", dir);
	if (tu_compile("tests/models/cl_tiny.lua", "--set channels=3 --target cpu", rgb))
		fail_msg("cl_tiny.lua --set channels=3 did not compile");
	char cmd[512];
	snprintf(cmd, sizeof cmd, "'%s' eval --n 4", rgb);
	int rc = tu_output_of(cmd, out, sizeof out);
	assert_int_not_equal(rc, 0);
	tu_contains(out, "not available", "3x16x16", NULL);
	snprintf(cmd, sizeof cmd, "'%s' train --steps 2 --eval-every 1 --data '%s' --out '%s/rgbrun'",
	         rgb, train, dir);
	assert_int_not_equal(tu_output_of(cmd, out, sizeof out), 0);
	tu_contains(out, "not available", NULL);
	/* asking for the metric on RGB images: a compile-time error at the script's line */
	tu_write(dir, "rgb_metric.lua",
	         "local ddpm = require 'ddpm'\n"
	         "local unet = ddpm.nn.Conv2d(3, 3, 1)\n"
	         "ddpm.program.diffusion { model = function(x, t) return unet(x) end,\n"
	         "  image = { 3, 28, 28 }, batch = 2, metric = 'fashion-mnist' }\n",
	         -1, path, sizeof path);
	snprintf(cmd, sizeof cmd, "'%s' compile '%s' -o '%s/never'", DDPMC_BIN, path, dir);
	assert_int_not_equal(tu_stderr_of(cmd, out, sizeof out), 0);
	tu_contains(out, "rgb_metric.lua:", "needs 1x28x28 images", "3x28x28", NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_prints_fid_kid_and_floor),
		cmocka_unit_test(test_floor_of_a_set_against_itself),
		cmocka_unit_test(test_train_eval_every),
		cmocka_unit_test(test_rgb_refused),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
