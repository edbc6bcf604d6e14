/* tuning: the tuning file (compiler/kir/tuning.c) and `ddpmc compile
 * --tune` (compiler/codegen/llvm/llvm_tune.c).
 *
 *   - results round-trip through the file, each machine's kept and only
 *     the loading machine's answered;
 *   - a file that is not a tuning file, or has a damaged line, is refused
 *     whole with PATH:LINE and what is wrong; compile then warns, uses the
 *     cost model and leaves the file as it was, even with --tune;
 *   - compile --tune=S writes the file, --report names the tuned tiles,
 *     and compiling again from that file gives the same executable;
 *   - --tune's value is checked;
 *   - compile --tune times each 3x3 convolution and both its gradients
 *     directly and by Winograd F(2x2, 3x3) and F(4x4, 3x3) and records
 *     the fastest; a compile from the file follows its choice for each;
 *   - compile --winograd 4x4 runs the 3x3 convolution and both its
 *     gradients by Winograd (--report's target line and kernels say so),
 *     and --tune times the tiles of their matmuls as of any contraction.
 * (That every candidate tile computes what the interpreter does is
 * test_llvm's every_tile_candidate_matches_interpreter.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kir.h"
#include "testutil.h"

static char dir[256], out[16384];

static int setup(void **state)
{
	(void)state;
	tu_tmpdir(dir, sizeof dir);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	tu_rmtree(dir);
	return 0;
}

#define run(...) tu_outputf(out, sizeof out, __VA_ARGS__)

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	char *b = calloc(1, 1 << 20);
	size_t n = fread(b, 1, (1 << 20) - 1, f);
	b[n] = 0;
	fclose(f);
	return b;
}

static void results_round_trip_per_machine(void **unused)
{
	(void)unused;
	char err[512];
	const char *path = tu_at(dir, "rt");
	kir_tuning *a = kir_tuning_new("host a code x");
	kir_tile t1 = { KIR_TILE_TUNED, { 2, -1 }, { 7, 1 }, 85.5 }, t2 = { KIR_TILE_TUNED, { 0, 1 }, { 4, 2 }, 12 };
	kir_tuning_put(a, 0x0123456789abcdefull, &t1);
	kir_tuning_put_algorithm(a, 0x0123456789abcdefull, KIR_ALGO_WINOGRAD4X4, 40);
	kir_tuning_put_algorithm(a, 0xfedcba9876543210ull, KIR_ALGO_DIRECT, 30);
	assert_int_equal(kir_tuning_save(a, path, err, sizeof err), 0);
	kir_tuning_free(a);
	kir_tuning *b = kir_tuning_load(path, "host b code x", err, sizeof err);
	assert_non_null(b);
	kir_tile got;
	assert_int_equal(kir_tuning_find(b, 0x0123456789abcdefull, &got), 0);     /* another machine's */
	kir_tuning_put(b, 0x0123456789abcdefull, &t2);
	assert_int_equal(kir_tuning_save(b, path, err, sizeof err), 0);
	kir_tuning_free(b);
	a = kir_tuning_load(path, "host a code x", err, sizeof err);
	assert_non_null(a);
	assert_int_equal(kir_tuning_find(a, 0x0123456789abcdefull, &got), 1);
	assert_true(got.source == KIR_TILE_TUNED && got.var[0] == 2 && got.var[1] == -1 &&
	            got.copies[0] == 7 && got.copies[1] == 1 && got.gflops == 85.5);
	/* an algorithm and a tile of one signature are two results */
	kir_algorithm algo;
	assert_int_equal(kir_tuning_find_algorithm(a, 0x0123456789abcdefull, &algo), 1);
	assert_int_equal(algo, KIR_ALGO_WINOGRAD4X4);
	assert_int_equal(kir_tuning_find_algorithm(a, 0xfedcba9876543210ull, &algo), 1);
	assert_int_equal(algo, KIR_ALGO_DIRECT);
	assert_int_equal(kir_tuning_find(a, 0xfedcba9876543210ull, &got), 0);
	kir_tuning_free(a);
	b = kir_tuning_load(path, "host b code x", err, sizeof err);
	assert_int_equal(kir_tuning_find(b, 0x0123456789abcdefull, &got), 1);
	assert_true(got.var[0] == 0 && got.copies[0] == 4 && got.copies[1] == 2);
	kir_tuning_free(b);
	/* a missing file is an empty set */
	a = kir_tuning_load(tu_at(dir, "none"), "host a code x", err, sizeof err);
	assert_non_null(a);
	assert_int_equal(kir_tuning_find(a, 0x0123456789abcdefull, &got), 0);
	kir_tuning_free(a);
}

/* A damaged tuning file and what loading it says: "PATH:LINE: why". */
#define NOT_A_RESULT "the tile is not four integers VAR0 COPIES0 VAR1 COPIES1 in range, nor an " \
	"algorithm (direct, winograd or winograd4x4)"
static const struct {
	const char *name, *text;
	int line;
	const char *why;
} damaged[] = {
	{ "foreign", "hello\n", 1, "not a ddpmc tuning file (no \"ddpmc-tuning 1\" line)" },
	{ "v2", "ddpmc-tuning 2\n", 1, "not a ddpmc tuning file (no \"ddpmc-tuning 1\" line)" },
	{ "fields", "ddpmc-tuning 1\nm\t0123456789abcdef\t0 4 1 2\n", 2,
	  "expected 4 fields separated by tabs" },
	{ "sig", "ddpmc-tuning 1\nm\t0123456789abcdef\t0 4 1 2\t1.0\nm\t12345\t0 4 1 2\t1.0\n", 3,
	  "the signature is not 16 hex digits" },
	{ "tile", "ddpmc-tuning 1\nm\t0123456789abcdef\t0 0 1 2\t1.0\n", 2,
	  NOT_A_RESULT },
	{ "var", "ddpmc-tuning 1\nm\t0123456789abcdef\t99 2 1 2\t1.0\n", 2, NOT_A_RESULT },
	{ "algorithm", "ddpmc-tuning 1\nm\t0123456789abcdef\tfft\t1.0\n", 2, NOT_A_RESULT },
	{ "gflops", "ddpmc-tuning 1\nm\t0123456789abcdef\t0 2 1 2\tfast\n", 2,
	  "the GFLOP/s is not a number" },
	{ "cut", "ddpmc-tuning 1\nm\t0123456789abcdef\t0 2 1 2\t1.0", 2, "line too long or not ended" },
};

static void damaged_files_are_refused_whole(void **unused)
{
	(void)unused;
	for (int i = 0; i < TU_LEN(damaged); i++) {
		char err[512], path[512], want[600];
		tu_write(dir, damaged[i].name, damaged[i].text, -1, path, sizeof path);
		kir_tuning *db = kir_tuning_load(path, "m", err, sizeof err);
		if (db)
			fail_msg("%s was accepted", damaged[i].name);
		snprintf(want, sizeof want, "%s:%d: %s", path, damaged[i].line, damaged[i].why);
		if (strcmp(err, want))
			fail_msg("%s: got '%s', want '%s'", damaged[i].name, err, want);
	}
}

static const char *model_lua =
	"local ddpm = require 'ddpm'\n"
	"local x = ddpm.param('x', { 2, 8, 10, 10 }, { init = 'normal', a = 0, b = 1 })\n"
	"local w = ddpm.param('w', { 16, 8, 3, 3 }, { init = 'normal', a = 0, b = 0.2 })\n"
	"local y = ddpm.conv2d(x, w, { padding = 1 })\n"
	"local g = ddpm.grad(y, { x, w }, ddpm.input('g', y:shape()))\n"
	"ddpm.entry('main', { y = y, gx = g[1], gw = g[2] })\n";

/* How many lines of s hold both a and b. */
static int count_lines_with(const char *s, const char *a, const char *b)
{
	int n = 0;
	for (const char *l = s; *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : l + strlen(l)) {
		const char *end = strchr(l, '\n'), *pa = strstr(l, a), *pb = strstr(l, b);
		n += pa && pb && (!end || (pa < end && pb < end));
	}
	return n;
}

/* How many times `needle` occurs in s. */
static int count(const char *s, const char *needle)
{
	int n = 0;
	for (const char *p = s; (p = strstr(p, needle)) != NULL; p++)
		n++;
	return n;
}

static const char *const algorithms[] = { "\tdirect\t", "\twinograd\t", "\twinograd4x4\t" };

/* The tuning file's algorithm results (fields hold no tabs: only the
 * third field can be a tab-enclosed word). */
static int algorithm_lines(const char *file)
{
	int n = 0;
	for (int a = 0; a < 3; a++)
		n += count(file, algorithms[a]);
	return n;
}

static void compile_tunes_and_reuses_the_file(void **unused)
{
	(void)unused;
	char model[512], exe[3][512];
	tu_write(dir, "conv.lua", model_lua, -1, model, sizeof model);
	const char *tuning = tu_at(dir, "tuning");
	for (int i = 0; i < 3; i++)
		snprintf(exe[i], sizeof exe[i], "%s/conv%d", dir, i);
	if (run("'%s' compile '%s' --target cpu --tune=60 --tuning '%s' -o '%s'", DDPMC_BIN, model,
	        tuning, exe[0]))
		fail_msg("compile --tune: %s", out);
	CONTAINS(out, "tuning: ", "GFLOP/s (", "tuning: conv2d (2, 8, 10, 10) -> (2, 16, 10, 10) ",
	         "tuning: conv2d_grad_input (2, 16, 10, 10) -> (2, 8, 10, 10) ",
	         "tuning: conv2d_grad_weight (2, 8, 10, 10) -> (16, 8, 3, 3) ", " ms, winograd 2x2 ", " ms, 4x4 ");
	char *file = slurp(tuning);
	assert_non_null(file);
	assert_true(tu_starts(file, "ddpmc-tuning 1\nhost "));
	assert_int_equal(algorithm_lines(file), 3);
	/* the file fixes the tiles: the report says so, the executables agree */
	if (run("'%s' compile '%s' --target cpu --tuning '%s' --report -o '%s'", DDPMC_BIN, model,
	        tuning, exe[1]))
		fail_msg("compile from the file: %s", out);
	CONTAINS(out, ": tuned, ");
	assert_null(strstr(out, "tuning: "));   /* nothing measured again */
	assert_int_equal(run("'%s' compile '%s' --target cpu --tuning '%s' -o '%s'", DDPMC_BIN,
	                     model, tuning, exe[2]), 0);
	assert_int_equal(run("cmp '%s' '%s' && cmp '%s' '%s'", exe[0], exe[1], exe[1], exe[2]), 0);
	free(file);
}

/* The tuning file at path with every algorithm result made `algorithm`. */
static void set_algorithms(const char *path, const char *algorithm)
{
	char *file = slurp(path), *fixed = calloc(1, strlen(file) + 4096), *o = fixed;
	for (char *l = strtok(file, "\n"); l; l = strtok(NULL, "\n")) {
		char *tab = strchr(l, '\t'), *field = tab ? strchr(tab + 1, '\t') : NULL;
		char *rest = field ? strchr(field + 1, '\t') : NULL;
		int known = 0;
		for (int a = 0; rest && a < 3; a++)
			known |= !strncmp(field, algorithms[a], strlen(algorithms[a]));
		if (known)
			o += sprintf(o, "%.*s\t%s%s\n", (int)(field - l), l, algorithm, rest);
		else
			o += sprintf(o, "%s\n", l);
	}
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(fixed, f);
	fclose(f);
	free(file);
	free(fixed);
}

/* compile follows the tuning file's algorithm for each convolution:
 * Winograd's kernels exactly where it says winograd or winograd4x4, with
 * that algorithm's products (--report's FLOPs of each products kernel:
 * 16 points x 2 x 5 x 5 tiles of 2x2, or 36 x 2 x 3 x 3 tiles of 4x4,
 * x 8 x 16 channels x 2). */
static void compile_follows_the_files_algorithms(void **unused)
{
	(void)unused;
	char model[512];
	tu_write(dir, "conv.lua", model_lua, -1, model, sizeof model);
	const char *tuning = tu_at(dir, "algo-tuning"), *exe = tu_at(dir, "conv-algo");
	if (run("'%s' compile '%s' --target cpu --tune=60 --tuning '%s' -o '%s'", DDPMC_BIN, model,
	        tuning, exe))
		fail_msg("compile --tune: %s", out);
	static const char *const ways[] = { "winograd", "winograd4x4", "direct" };
	static const char *const products[] = { " 0.2048 MFLOP", " 0.1659 MFLOP" };
	for (int i = 0; i < 3; i++) {
		set_algorithms(tuning, ways[i]);
		char *file = slurp(tuning);
		char word[32];
		snprintf(word, sizeof word, "\t%s\t", ways[i]);
		assert_int_equal(count(file, word), 3);
		free(file);
		if (run("'%s' compile '%s' --target cpu --tuning '%s' --report -o '%s'", DDPMC_BIN, model,
		        tuning, exe))
			fail_msg("compile from the file: %s", out);
		assert_int_equal(count(out, "_winograd_products "), i < 2 ? 3 : 0);
		if (i < 2)
			assert_int_equal(count_lines_with(out, "_winograd_products ", products[i]), 3);
		assert_null(strstr(out, "tuning: "));   /* nothing measured again */
	}
}

static void damaged_file_is_left_alone(void **unused)
{
	(void)unused;
	char model[512], bad[512];
	tu_write(dir, "conv.lua", model_lua, -1, model, sizeof model);
	const char *text = "ddpmc-tuning 1\nbroken line\n";
	tu_write(dir, "bad-tuning", text, -1, bad, sizeof bad);
	if (run("'%s' compile '%s' --target cpu --tune=5 --tuning '%s' --report -o '%s'", DDPMC_BIN,
	        model, bad, tu_at(dir, "conv-bad")))
		fail_msg("compile with a damaged tuning file: %s", out);
	CONTAINS(out, "warning: tuning file ", "bad-tuning:2: expected 4 fields separated by tabs; "
	         "ignored: the cost model picks the tiles and algorithms and --tune leaves the file as it is");
	char *now = slurp(bad);
	assert_string_equal(now, text);
	free(now);
}

static void compile_winograd_tunes_its_products(void **unused)
{
	(void)unused;
	char model[512];
	tu_write(dir, "conv.lua", model_lua, -1, model, sizeof model);
	if (run("'%s' compile '%s' --target cpu --winograd 4x4 --tune=30 --tuning '%s' --report -o '%s'", DDPMC_BIN,
	        model, tu_at(dir, "wino-tuning"), tu_at(dir, "conv-wino")))
		fail_msg("compile --winograd: %s", out);
	CONTAINS(out, "; 3x3 stride-1 convolutions by Winograd F(4x4, 3x3)", "_winograd_input",
	         "_winograd_output", "_winograd_products");
	int timed = 0;          /* tuner lines "tuning: k3_winograd_products   tile ..." */
	for (const char *l = out; (l = strstr(l, "tuning: k")) != NULL; l++)
		timed += !strncmp(strchr(l, '_'), "_winograd_products ", 19);
	assert_int_equal(timed, 3);     /* the convolution's and both gradients' */
	/* F(4x4, 3x3)'s products: 36 points x 2 x 3 x 3 tiles x 8 x 16 channels x 2 */
	assert_int_equal(count_lines_with(out, "_winograd_products ", " 0.1659 MFLOP"), 3);
}

static void tune_value_is_checked(void **unused)
{
	(void)unused;
	char model[512];
	tu_write(dir, "conv.lua", model_lua, -1, model, sizeof model);
	assert_int_not_equal(run("'%s' compile '%s' --tune=0", DDPMC_BIN, model), 0);
	CONTAINS(out, "--tune wants an integer from 1 to 86400, got '0'");
	assert_int_not_equal(run("'%s' compile '%s' --report=1", DDPMC_BIN, model), 0);
	CONTAINS(out, "--report takes no value");
	/* a tuning file where none can be written: said before any executable */
	assert_int_not_equal(run("'%s' compile '%s' --target cpu --tune=5 --tuning /proc/none/t -o '%s'",
	                         DDPMC_BIN, model, tu_at(dir, "unwritten")), 0);
	CONTAINS(out, "--tune: cannot create the folder of /proc/none/t: ");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(results_round_trip_per_machine),
		cmocka_unit_test(damaged_files_are_refused_whole),
		cmocka_unit_test(compile_tunes_and_reuses_the_file),
		cmocka_unit_test(damaged_file_is_left_alone),
		cmocka_unit_test(compile_winograd_tunes_its_products),
		cmocka_unit_test(compile_follows_the_files_algorithms),
		cmocka_unit_test(tune_value_is_checked),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
