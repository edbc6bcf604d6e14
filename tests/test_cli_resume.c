/* cli_resume: a compiled executable's train and sample commands, end to end.
 *
 * tests/models/cli_tiny.lua (28x28x1, channels 8 and 16, batch 4, T = 100)
 * is compiled once with the built driver (DDPMC_BIN) into a temporary
 * folder, with a gzipped IDX file of 24 pseudo-random images as its data.
 * Checked:
 *   - 20 steps in one run and 10 + --resume 10 (with --flip, which the
 *     resumed half inherits; the first half drawing sample grids, the
 *     second on another thread count) end with
 *     byte-identical state tensors, and the run folder holds the
 *     checkpoint's metadata, metrics.jsonl, loss.png and the grids;
 *   - SIGTERM mid-run: exit status 0 and a checkpoint that loads and
 *     samples, its metadata agreeing with its step counter;
 *   - --resume without a checkpoint: one line on stderr, a non-zero exit,
 *     nothing written;
 *   - an image folder of 30x40 PNGs with --resize --crop random: 8 steps
 *     and 4 + --resume 4 (the resumed half inheriting the random crops)
 *     give byte-identical state, other than centre crops' state;
 *   - sample --out-dir: one 28x28 PNG per image; the same seed gives the
 *     same bytes, another seed other images;
 *   - sample --weights with a diffusers-style file (the parameters alone,
 *     by name, in another order) draws what --ckpt --no-ema draws;
 *   - a fresh train into a folder holding a run is refused unless
 *     --overwrite; numbered checkpoints rotate (--keep, --save-every,
 *     --save-minutes; the default policy on the startup line); unfinished
 *     saves of dead processes are removed at the start;
 *   - --resume refuses a checkpoint whose metadata numbers are out of
 *     range, whose weights are not finite or whose program configuration
 *     differs; a run whose state turns non-finite stops without saving. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <stb/stb_image_write.h>

#include "safetensors.h"
#include "testutil.h"

enum { NIMG = 24, SIDE = 28 };

static char dir[64], exe[128], data[128];

static int exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

/* Runs exe with the arguments; stdout discarded, stderr into err. */
static int run_exe(char *err, size_t errlen, const char *fmt, ...)
{
	char args[2048], cmd[2300], buf[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(args, sizeof args, fmt, ap);
	va_end(ap);
	snprintf(cmd, sizeof cmd, "'%s' %s", exe, args);
	return tu_stderr_of(cmd, err ? err : buf, err ? errlen : sizeof buf);
}

static int setup(void **unused)
{
	return tu_tiny_program("tests/models/cli_tiny.lua", "", dir, exe, data, NIMG, SIDE);
}

static int teardown(void **unused)
{
	tu_rmtree(dir);
	return 0;
}

/* Every tensor of a is in b with the same dtype, shape and bytes. */
static void same_tensors(const rt_tensorset *a, const rt_tensorset *b)
{
	assert_int_equal(a->n, b->n);
	for (int i = 0; i < a->n; i++) {
		const rt_tensor *x = &a->t[i], *y = rt_set_find(b, x->name);
		if (!y)
			fail_msg("'%s' is missing from the resumed run", x->name);
		size_t bytes = (size_t)rt_numel(x->rank, x->shape) * rt_dtype_size(x->dtype);
		if (y->dtype != x->dtype || y->rank != x->rank ||
		    memcmp(x->shape, y->shape, sizeof x->shape) != 0 || memcmp(x->data, y->data, bytes)) {
			size_t k = 0;
			while (k < bytes && ((char *)x->data)[k] == ((char *)y->data)[k])
				k++;
			fail_msg("'%s' differs between 20 steps and 10 + 10 (first at byte %zu of %zu)",
			         x->name, k, bytes);
		}
	}
}

static double scalar(const rt_tensorset *s, const char *name)
{
	const rt_tensor *t = rt_set_find(s, name);
	assert_non_null(t);
	return rt_load(t->dtype, t->data, 0);
}

static int count_lines(const char *path, char *last, size_t lastlen)
{
	FILE *f = fopen(path, "r");
	char line[1024];
	int n = 0;
	if (!f)
		fail_msg("%s is missing", path);
	while (fgets(line, sizeof line, f))
		n++, snprintf(last, lastlen, "%s", line);
	fclose(f);
	return n;
}

static void test_resume_bit_exact(void **unused)
{
	char a[128], b[128], path[256], err[4096], last[1024];
	snprintf(a, sizeof a, "%s/straight", dir);
	snprintf(b, sizeof b, "%s/resumed", dir);
	if (run_exe(err, sizeof err, "train --data '%s' --steps 20 --out '%s' --seed 3 --log-every 5 "
	            "--threads 2 --flip", data, a))
		fail_msg("20 steps: %s", err);
	if (run_exe(err, sizeof err, "train --data '%s' --steps 10 --out '%s' --seed 3 --log-every 5 "
	            "--threads 2 --sample-every 5 --n 4 --flip", data, b))
		fail_msg("10 steps: %s", err);
	if (run_exe(err, sizeof err, "train --data '%s' --steps 10 --out '%s' --resume --log-every 5 "
	            "--threads 1", data, b))
		fail_msg("--resume 10 steps: %s", err);

	rt_tensorset sa, sb;
	snprintf(path, sizeof path, "%s/checkpoint.safetensors", a);
	tu_read_st(path, &sa);
	snprintf(path, sizeof path, "%s/checkpoint.safetensors", b);
	tu_read_st(path, &sb);
	same_tensors(&sa, &sb);
	assert_true(scalar(&sb, "train.iteration") == 20);
	assert_string_equal(rt_get_meta(&sb, "step"), "20");
	assert_string_equal(rt_get_meta(&sb, "seed"), "3");
	assert_string_equal(rt_get_meta(&sb, "data_position"), "80");
	assert_string_equal(rt_get_meta(&sb, "data_images"), "24");
	assert_string_equal(rt_get_meta(&sb, "data_epoch"), "3");
	assert_string_equal(rt_get_meta(&sb, "data_flip"), "1");
	assert_non_null(strstr(rt_get_meta(&sb, "config"), "\"timesteps\": 100"));
	assert_string_equal(rt_get_meta(&sa, "config"), rt_get_meta(&sb, "config"));
	rt_set_free(&sa);
	rt_set_free(&sb);

	/* the run folder: metrics of steps 5, 10, 15, 20; the plot; the grids */
	snprintf(path, sizeof path, "%s/metrics.jsonl", b);
	assert_int_equal(count_lines(path, last, sizeof last), 4);
	tu_contains(last, "{\"step\": 20, \"loss\": ", "\"lr\": ", "\"loss_scale\": 1",
	            "\"images_per_s\": ", NULL);
	snprintf(path, sizeof path, "%s/loss.png", b);
	assert_true(exists(path));
	snprintf(path, sizeof path, "%s/samples/step_000005.png", b);
	assert_true(exists(path));
	snprintf(path, sizeof path, "%s/samples/step_000010.png", b);
	assert_true(exists(path));
	snprintf(path, sizeof path, "%s/samples/step_000015.png", b);
	assert_false(exists(path));
}

/* n grey PNGs of h x w, pseudo-random, in folder `sub` of dir. */
static void write_pngs(const char *sub, int n, int h, int w)
{
	char path[256];
	uint32_t r = 12345;
	uint8_t *px = malloc((size_t)(h * w));
	snprintf(path, sizeof path, "%s/%s", dir, sub);
	assert_int_equal(mkdir(path, 0755), 0);
	for (int i = 0; i < n; i++) {
		for (int k = 0; k < h * w; k++)
			r = r * 1103515245u + 12345u, px[k] = (uint8_t)(r >> 24);
		snprintf(path, sizeof path, "%s/%s/%02d.png", dir, sub, i);
		assert_true(stbi_write_png(path, w, h, 1, px, w));
	}
	free(px);
}

static void test_resume_random_crops(void **unused)
{
	char a[128], b[128], c[128], imgs[128], path[256], err[4096];
	write_pngs("crops", 6, 30, 40);
	snprintf(imgs, sizeof imgs, "%s/crops", dir);
	snprintf(a, sizeof a, "%s/crop-straight", dir);
	snprintf(b, sizeof b, "%s/crop-resumed", dir);
	snprintf(c, sizeof c, "%s/crop-center", dir);
	if (run_exe(err, sizeof err, "train --data '%s' --resize --crop random --steps 8 --out '%s' "
	            "--seed 5 --threads 2", imgs, a) ||
	    run_exe(err, sizeof err, "train --data '%s' --resize --crop random --steps 4 --out '%s' "
	            "--seed 5 --threads 2", imgs, b) ||
	    run_exe(err, sizeof err, "train --data '%s' --resize --steps 4 --out '%s' --resume "
	            "--threads 1", imgs, b) ||
	    run_exe(err, sizeof err, "train --data '%s' --resize --steps 8 --out '%s' --seed 5 "
	            "--threads 2", imgs, c))
		fail_msg("train on %s: %s", imgs, err);
	rt_tensorset sa, sb, sc;
	snprintf(path, sizeof path, "%s/checkpoint.safetensors", a);
	tu_read_st(path, &sa);
	snprintf(path, sizeof path, "%s/checkpoint.safetensors", b);
	tu_read_st(path, &sb);
	snprintf(path, sizeof path, "%s/checkpoint.safetensors", c);
	tu_read_st(path, &sc);
	same_tensors(&sa, &sb);
	assert_string_equal(rt_get_meta(&sb, "data_random_crop"), "1");
	assert_string_equal(rt_get_meta(&sc, "data_random_crop"), "0");
	int differ = 0;
	for (int i = 0; i < sa.n; i++) {
		const rt_tensor *x = &sa.t[i], *y = rt_set_find(&sc, x->name);
		size_t bytes = (size_t)rt_numel(x->rank, x->shape) * rt_dtype_size(x->dtype);
		differ += y && memcmp(x->data, y->data, bytes) != 0;
	}
	if (!differ)
		fail_msg("random crops trained the same state as centre crops");
	rt_set_free(&sa);
	rt_set_free(&sb);
	rt_set_free(&sc);
}

static void test_sigterm_saves(void **unused)
{
	char out[128], path[256], steps[32] = "1000000", line[512];
	int fds[2];
	snprintf(out, sizeof out, "%s/term", dir);
	assert_int_equal(pipe(fds), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(fds[1], 1);
		close(fds[0]);
		close(fds[1]);
		execl(exe, exe, "train", "--data", data, "--steps", steps, "--out", out, "--log-every",
		      "1", (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	FILE *f = fdopen(fds[0], "r");
	int sent = 0;
	while (fgets(line, sizeof line, f))     /* read to the end: the child never blocks */
		if (!sent && strncmp(line, "step 3 ", 7) == 0) {
			kill(pid, SIGTERM);
			sent = 1;
		}
	fclose(f);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(sent);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_msg("after SIGTERM: status 0x%x, want exit 0", status);

	rt_tensorset st;
	snprintf(path, sizeof path, "%s/checkpoint.safetensors", out);
	tu_read_st(path, &st);
	double it = scalar(&st, "train.iteration");
	assert_true(it >= 3 && it < 1000000);
	assert_int_equal(strtoll(rt_get_meta(&st, "step"), NULL, 10), (long long)it);
	rt_set_free(&st);
	char err[4096];
	if (run_exe(err, sizeof err, "sample --ckpt '%s' --n 1 --sampler ddim --steps 2 --out '%s/g.png'",
	            path, out))
		fail_msg("sampling the checkpoint saved at SIGTERM: %s", err);
}

static void test_resume_without_checkpoint(void **unused)
{
	char out[128], path[256], err[4096];
	snprintf(out, sizeof out, "%s/empty", dir);
	int rc = run_exe(err, sizeof err, "train --data '%s' --steps 2 --out '%s' --resume", data, out);
	if (rc == 0 || tu_lines(err) != 1 || !strstr(err, "--resume: no checkpoint at"))
		fail_msg("exit %d, stderr: %s", rc, err);
	assert_false(exists(out));
	(void)path;
}

/* PNG width and height (IHDR), or fails. */
static void png_size(const char *path, uint32_t *w, uint32_t *h)
{
	unsigned char b[24];
	FILE *f = fopen(path, "rb");
	if (!f || fread(b, 1, 24, f) != 24)
		fail_msg("%s: not readable", path);
	fclose(f);
	*w = (uint32_t)b[16] << 24 | (uint32_t)b[17] << 16 | (uint32_t)b[18] << 8 | b[19];
	*h = (uint32_t)b[20] << 24 | (uint32_t)b[21] << 16 | (uint32_t)b[22] << 8 | b[23];
}

/* The bytes of a file (malloc'd), its length in *len. */
static unsigned char *slurp(const char *path, long *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		fail_msg("%s is missing", path);
	fseek(f, 0, SEEK_END);
	*len = ftell(f);
	rewind(f);
	unsigned char *p = malloc((size_t)*len + 1);
	assert_non_null(p);
	assert_int_equal(fread(p, 1, (size_t)*len, f), (size_t)*len);
	fclose(f);
	return p;
}

/* Compares image_0000..image_{n-1} of two folders: returns how many differ. */
static int differing(const char *d1, const char *d2, int n)
{
	char p1[256], p2[256];
	int diff = 0;
	for (int i = 0; i < n; i++) {
		long l1, l2;
		snprintf(p1, sizeof p1, "%s/image_%04d.png", d1, i);
		snprintf(p2, sizeof p2, "%s/image_%04d.png", d2, i);
		unsigned char *a = slurp(p1, &l1), *b = slurp(p2, &l2);
		diff += l1 != l2 || memcmp(a, b, (size_t)l1) != 0;
		free(a);
		free(b);
	}
	return diff;
}

static void test_sample_same_seed(void **unused)
{
	char ckpt[256], s1[128], s2[128], s3[128], path[256], err[4096];
	snprintf(ckpt, sizeof ckpt, "%s/straight/checkpoint.safetensors", dir);
	snprintf(s1, sizeof s1, "%s/s1", dir);
	snprintf(s2, sizeof s2, "%s/s2", dir);
	snprintf(s3, sizeof s3, "%s/s3", dir);
	const char *flags = "--n 5 --sampler ddim --steps 5";
	if (run_exe(err, sizeof err, "sample --ckpt '%s' %s --seed 11 --out-dir '%s'", ckpt, flags, s1) ||
	    run_exe(err, sizeof err, "sample --ckpt '%s' %s --seed 11 --out-dir '%s' --threads 1", ckpt,
	            flags, s2) ||
	    run_exe(err, sizeof err, "sample --ckpt '%s' %s --seed 12 --out-dir '%s'", ckpt, flags, s3))
		fail_msg("%s", err);
	uint32_t w, h;
	snprintf(path, sizeof path, "%s/image_0004.png", s1);
	png_size(path, &w, &h);
	assert_int_equal(w, SIDE);
	assert_int_equal(h, SIDE);
	snprintf(path, sizeof path, "%s/image_0005.png", s1);
	assert_false(exists(path));
	snprintf(path, sizeof path, "%s/grid.png", s1);
	assert_false(exists(path));             /* --out-dir alone writes no grid */
	assert_int_equal(differing(s1, s2, 5), 0);
	assert_int_equal(differing(s1, s3, 5), 5);
}

/* The parameters alone (what diffusers saves), in reverse order. */
static void write_diffusers(const char *ckpt, const char *path)
{
	static const char *const state[] = { "ema.", "optim.", "rng.", "train." };
	rt_tensorset st, w = { 0 };
	char err[1024];
	tu_read_st(ckpt, &st);
	for (int i = st.n - 1; i >= 0; i--) {
		const rt_tensor *t = &st.t[i];
		int skip = 0;
		for (int k = 0; k < TU_LEN(state); k++)
			skip |= strncmp(t->name, state[k], strlen(state[k])) == 0;
		if (skip)
			continue;
		rt_tensor *c = rt_set_add(&w, t->name, t->dtype, t->rank, t->shape);
		assert_non_null(c);
		memcpy(c->data, t->data, (size_t)rt_numel(t->rank, t->shape) * rt_dtype_size(t->dtype));
	}
	assert_true(w.n > 100 && w.n < st.n);
	rt_set_meta(&w, "format", "pt");
	if (rt_st_write(path, &w, err, sizeof err) != RT_OK)
		fail_msg("%s", err);
	rt_set_free(&st);
	rt_set_free(&w);
}

static void test_sample_weights(void **unused)
{
	char ckpt[256], wfile[256], d1[128], d2[128], err[4096];
	snprintf(ckpt, sizeof ckpt, "%s/straight/checkpoint.safetensors", dir);
	snprintf(wfile, sizeof wfile, "%s/diffusion_pytorch_model.safetensors", dir);
	snprintf(d1, sizeof d1, "%s/w1", dir);
	snprintf(d2, sizeof d2, "%s/w2", dir);
	write_diffusers(ckpt, wfile);
	const char *flags = "--n 4 --sampler ddim --steps 4 --seed 2";
	if (run_exe(err, sizeof err, "sample --weights '%s' %s --out-dir '%s'", wfile, flags, d1) ||
	    run_exe(err, sizeof err, "sample --ckpt '%s' --no-ema %s --out-dir '%s'", ckpt, flags, d2))
		fail_msg("%s", err);
	assert_int_equal(differing(d1, d2, 4), 0);
	int rc = run_exe(err, sizeof err, "sample --weights '%s' --ckpt '%s'", wfile, ckpt);
	if (rc == 0 || tu_lines(err) != 1 || !strstr(err, "--ckpt and --weights"))
		fail_msg("exit %d, stderr: %s", rc, err);
}

/* DIR/RUN/checkpoint.safetensors: the straight run's checkpoint after
 * change(set) (NULL: as it is). */
static void derived_run(const char *run, void (*change)(rt_tensorset *))
{
	char path[256], err[1024];
	rt_tensorset st;
	snprintf(path, sizeof path, "%s/straight/checkpoint.safetensors", dir);
	tu_read_st(path, &st);
	if (change)
		change(&st);
	snprintf(path, sizeof path, "%s/%s", dir, run);
	mkdir(path, 0777);
	snprintf(path, sizeof path, "%s/%s/checkpoint.safetensors", dir, run);
	if (rt_st_write(path, &st, err, sizeof err) != RT_OK)
		fail_msg("%s", err);
	rt_set_free(&st);
}

/* `train --resume ARGS` into DIR/RUN must fail with one line holding want. */
static void resume_refused(const char *run, const char *args, const char *want)
{
	char err[4096];
	int rc = run_exe(err, sizeof err, "train --data '%s' --out '%s/%s' --resume %s", data, dir, run,
	                 args);
	if (rc == 0 || tu_lines(err) != 1 || !strstr(err, want))
		fail_msg("%s: exit %d, stderr: %s", run, rc, err);
}

static void far_position(rt_tensorset *st)
{
	rt_set_meta(st, "data_position", "9223372036854775000");
}

static void flip_two(rt_tensorset *st)
{
	rt_set_meta(st, "data_flip", "2");
}

static void cosine_schedule(rt_tensorset *st)
{
	char config[8192];
	snprintf(config, sizeof config, "%s", rt_get_meta(st, "config"));
	char *at = strstr(config, "\"schedule\": \"linear\"");
	assert_non_null(at);
	memcpy(at, "\"schedule\": \"cosine\"", 20);
	rt_set_meta(st, "config", config);
}

static void nan_weight(rt_tensorset *st)
{
	rt_tensor *t = st->t;
	while (t->dtype != RT_F32)
		t++;
	((float *)t->data)[0] = NAN;
}

/* Adam's second moments negative: finite on disk, NaN weights after a step. */
static void negative_moments(rt_tensorset *st)
{
	for (int i = 0; i < st->n; i++)
		if (strncmp(st->t[i].name, "optim.exp_avg_sq.", 17) == 0)
			for (int64_t k = 0; k < rt_numel(st->t[i].rank, st->t[i].shape); k++)
				((float *)st->t[i].data)[k] = -1;
}

static void test_resume_checks_checkpoint(void **unused)
{
	char path[256], err[4096];
	derived_run("far", far_position);
	resume_refused("far", "--steps 1", "far/checkpoint.safetensors: metadata data_position = "
	               "'9223372036854775000' is not an integer in [0, ");
	derived_run("flip2", flip_two);
	resume_refused("flip2", "--steps 1", "metadata data_flip = '2' is not an integer in [0, 1]");
	derived_run("cosine", cosine_schedule);
	resume_refused("cosine", "--steps 1", "cosine/checkpoint.safetensors was trained by a program "
	               "of another configuration: schedule is \"cosine\" there, \"linear\" here");
	derived_run("nan", nan_weight);
	resume_refused("nan", "--steps 1", "holds nan at element 0: the weights are not finite");
	snprintf(path, sizeof path, "%s/nan/checkpoint.safetensors", dir);
	int rc = run_exe(err, sizeof err, "sample --ckpt '%s' --n 1 --steps 2", path);
	if (rc == 0 || !strstr(err, "the weights are not finite"))
		fail_msg("sample --ckpt with a NaN weight: exit %d, stderr: %s", rc, err);
}

/* A step that makes the weights NaN: the save at the end is refused, and
 * the next step's loss stops the run; the checkpoint stays as it was. */
static void test_nonfinite_not_saved(void **unused)
{
	char path[256];
	long before, after;
	derived_run("poison", negative_moments);
	snprintf(path, sizeof path, "%s/poison/checkpoint.safetensors", dir);
	unsigned char *old = slurp(path, &before);
	resume_refused("poison", "--steps 1", "not saving step 21 (");
	resume_refused("poison", "--steps 3", "step 22: the loss is nan; stopping without saving");
	unsigned char *now = slurp(path, &after);
	assert_true(before == after && memcmp(old, now, (size_t)before) == 0);
	free(old);
	free(now);
}

static void test_refuses_existing_run(void **unused)
{
	char out[4096], cmd[1024], path[256], last[1024];
	snprintf(cmd, sizeof cmd, "'%s' train --data '%s' --steps 2 --out '%s/again'", exe, data, dir);
	if (tu_output_of(cmd, out, sizeof out))
		fail_msg("first run: %s", out);
	CONTAINS(out, "saving every 10 minutes, keeping the 3 newest as ");
	int rc = tu_stderr_of(cmd, out, sizeof out);
	if (rc == 0 || tu_lines(out) != 1)
		fail_msg("a second fresh run: exit %d, stderr: %s", rc, out);
	CONTAINS(out, "again already holds a run (", "again/checkpoint.safetensors):",
	         "--resume continues it, --overwrite replaces it");
	snprintf(cmd, sizeof cmd, "'%s' train --data '%s' --steps 3 --out '%s/again' --overwrite "
	         "--log-every 1", exe, data, dir);
	if (tu_stderr_of(cmd, out, sizeof out))
		fail_msg("--overwrite: %s", out);
	snprintf(path, sizeof path, "%s/again/metrics.jsonl", dir);
	assert_int_equal(count_lines(path, last, sizeof last), 3);
	snprintf(path, sizeof path, "%s/again/checkpoint-00000002.safetensors", dir);
	assert_false(exists(path));             /* the earlier run's */
}

static void test_keep_rotates(void **unused)
{
	char path[256], err[4096];
	if (run_exe(err, sizeof err, "train --data '%s' --steps 6 --out '%s/keep' --save-every 1 "
	            "--save-minutes 0 --keep 2", data, dir))
		fail_msg("%s", err);
	for (int step = 1; step <= 6; step++) {
		snprintf(path, sizeof path, "%s/keep/checkpoint-%08d.safetensors", dir, step);
		if (exists(path) != (step >= 5))
			fail_msg("%s: %s", path, step >= 5 ? "missing" : "not removed");
	}
	struct stat a, b;
	snprintf(path, sizeof path, "%s/keep/checkpoint.safetensors", dir);
	assert_int_equal(stat(path, &a), 0);
	snprintf(path, sizeof path, "%s/keep/checkpoint-00000006.safetensors", dir);
	assert_int_equal(stat(path, &b), 0);
	assert_true(a.st_ino == b.st_ino);      /* a hard link: no second copy */
	/* 1e-9 minutes pass during every step: a save after each */
	if (run_exe(err, sizeof err, "train --data '%s' --steps 2 --out '%s/keep' --resume "
	            "--save-minutes 1e-9", data, dir))
		fail_msg("%s", err);
	snprintf(path, sizeof path, "%s/keep/checkpoint-00000007.safetensors", dir);
	assert_true(exists(path));
}

/* A save's temporary file whose process is gone is removed at the start;
 * one of a live process is left alone. */
static void test_stale_temporary_removed(void **unused)
{
	char dead[256], live[256], out[4096], cmd[1024];
	pid_t child = fork();
	assert_true(child >= 0);
	if (child == 0)
		_exit(0);
	assert_int_equal(waitpid(child, NULL, 0), child);
	derived_run("stale", NULL);
	snprintf(dead, sizeof dead, "%s/stale/checkpoint.safetensors.tmp.%ld", dir, (long)child);
	snprintf(live, sizeof live, "%s/stale/checkpoint.safetensors.tmp.%ld", dir, (long)getpid());
	fclose(fopen(dead, "w"));
	fclose(fopen(live, "w"));
	snprintf(cmd, sizeof cmd, "'%s' train --data '%s' --steps 1 --out '%s/stale' --resume", exe,
	         data, dir);
	if (tu_output_of(cmd, out, sizeof out))
		fail_msg("%s", out);
	CONTAINS(out, "removed the unfinished save ", dead);
	assert_false(exists(dead));
	assert_true(exists(live));
	remove(live);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_resume_bit_exact),
		cmocka_unit_test(test_resume_random_crops),
		cmocka_unit_test(test_sigterm_saves),
		cmocka_unit_test(test_resume_without_checkpoint),
		cmocka_unit_test(test_sample_same_seed),
		cmocka_unit_test(test_sample_weights),
		cmocka_unit_test(test_resume_checks_checkpoint),
		cmocka_unit_test(test_nonfinite_not_saved),
		cmocka_unit_test(test_refuses_existing_run),
		cmocka_unit_test(test_keep_rotates),
		cmocka_unit_test(test_stale_temporary_removed),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
