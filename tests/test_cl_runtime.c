/* test_cl_runtime: the runtime's OpenCL device (runtime/cl.c, device.c)
 * on a hand-written program, without the compiler: a descriptor written
 * here and OpenCL C written here, run on the OpenCL device this machine
 * has (PoCL's CPU device in CI). Checks
 *   - the descriptor's "cl" launches and "fn": -1 parsed, malformed ones
 *     rejected with the JSON path;
 *   - a run: the arena temp, a const, an i32 input converted from f32, an
 *     output, a f32 param and an i32 counter updated in place;
 *   - the state stays on the device until rt_device_sync, and
 *     rt_device_invalidate uploads the host's values again;
 *   - the program binary cache: a file appears, a second open reads it
 *     (and leaves it as it was), a corrupt one is rebuilt;
 *   - tuning: a kernel's variants ("alts") timed, the fastest launched
 *     from then on and kept in a file the next open follows (only the
 *     parts its choices need are built); a damaged file is reported and
 *     ignored; a variant whose part does not build is left out of tune;
 *     tune stops at its time limit, times the kernels with the most
 *     FLOPs first, and the next tune times only those left;
 *   - errors: a source that does not build (the device named, the build
 *     log on stderr), bad specs, a program without OpenCL code, one
 *     without CPU code on "cpu", and no OpenCL platform at all (this
 *     program run again with OCL_ICD_VENDORS at an empty folder).
 * DDPMC_CL_CACHE points into a temporary folder; ctest sets POCL_CACHE_DIR. */
#include "testutil.h"

#include <sys/stat.h>

#include "device.h"
#include "program.h"

enum { N = 8 };

/* Buffers: 0 param w (4), 1 input a (N), 2 input k (N, i32), 3 temp t (N)
 * at arena offset 16, 4 output y (N), 5 const c (N) at data offset 4,
 * 6 param n (), i32.
 *   scale:  t = 2a + c + k        (work-groups of 4)
 *   add_w:  y = t + w[i % 4]       (t given as its offset, scale's fixed)
 *   update: w += 1; n += 1        (in place) */
#define PARAMS \
	"\"params\": [" \
	" {\"name\": \"w\", \"dtype\": \"F32\", \"shape\": [4], \"trainable\": true, \"init\": \"ones\"," \
	"  \"a\": 0, \"b\": 0, \"from\": null, \"index\": 0}," \
	" {\"name\": \"n\", \"dtype\": \"I32\", \"shape\": [], \"trainable\": false, \"init\": \"zeros\"," \
	"  \"a\": 0, \"b\": 0, \"from\": null, \"index\": 1}]"
#define BUFFERS \
	"\"buffers\": [" \
	" {\"kind\": \"param\", \"name\": \"w\", \"dtype\": \"F32\", \"shape\": [4]}," \
	" {\"kind\": \"input\", \"name\": \"a\", \"dtype\": \"F32\", \"shape\": [8]}," \
	" {\"kind\": \"input\", \"name\": \"k\", \"dtype\": \"I32\", \"shape\": [2, 4]}," \
	" {\"kind\": \"temp\", \"name\": \"\", \"dtype\": \"F32\", \"shape\": [8], \"offset\": 16}," \
	" {\"kind\": \"output\", \"name\": \"y\", \"dtype\": \"F32\", \"shape\": [8]}," \
	" {\"kind\": \"const\", \"name\": \"\", \"dtype\": \"F32\", \"shape\": [8], \"offset\": 4}," \
	" {\"kind\": \"param\", \"name\": \"n\", \"dtype\": \"I32\", \"shape\": []}]"
#define K_SCALE \
	"{\"fn\": -1, \"rows\": 8, \"name\": \"k0_scale\", \"flops\": 24," \
	" \"cl\": {\"name\": \"scale\", \"part\": 0, \"args\": [1, 5, 2], \"global\": 8, \"local\": 4}}"
#define K_UPDATE \
	"{\"fn\": -1, \"rows\": 4, \"name\": \"k2_update\", \"flops\": 4," \
	" \"cl\": {\"name\": \"update\", \"part\": 0, \"args\": [0, 6], \"global\": 4, \"local\": 4}}"
#define K_ADD \
	"{\"fn\": -1, \"rows\": 8, \"name\": \"k1_add\", \"flops\": 8," \
	" \"cl\": {\"name\": \"add_w\", \"part\": 0, \"args\": [3, 0, 4], \"global\": 8, \"local\": 8}}"

/* The descriptor with kernels 0 and 1 given (kernel 0 K_SCALE or one
 * with variants, 1 K_ADD or another). */
static void json_of(char *buf, size_t len, const char *kernel0, const char *kernel1)
{
	snprintf(buf, len,
	         "{\"model\": \"cl.lua\", \"meta\": {}, " PARAMS ", \"entries\": [{\"name\": \"step\","
	         " \"arena_bytes\": 48, " BUFFERS ", \"kernels\": [%s, %s, " K_UPDATE "]}]}",
	         kernel0, kernel1);
}

/* The descriptor with kernel 1 given (K_ADD, or a malformed variant). */
static void json_with(char *buf, size_t len, const char *kernel1)
{
	json_of(buf, len, K_SCALE, kernel1);
}

#define SCALE_SOURCE \
	"__kernel void scale(__global uchar *arena, __global const float *a,\n" \
	"                    __global const float *c, __global const int *k)\n" \
	"{\n" \
	"	size_t i = get_global_id(0);\n" \
	"	__global float *t = (__global float *)(arena + 16);\n" \
	"	t[i] = 2.0f * a[i] + c[i] + (float)k[i];\n" \
	"}\n"
/* add_w as kernel `name`, y = t + w[i % 4] + s: `extra` declares s */
#define ADD_W_SOURCE(name, extra) \
	"__kernel void " name "(__global uchar *arena, long t_at, __global const float *w,\n" \
	"                       __global float *y)\n" \
	"{\n" \
	"	size_t i = get_global_id(0);\n" \
	"	__global const float *t = (__global const float *)(arena + t_at);\n" extra \
	"	y[i] = t[i] + w[i % 4] + s;\n" \
	"}\n"
#define UPDATE_SOURCE \
	"__kernel void update(__global uchar *arena, __global float *w, __global int *n)\n" \
	"{\n" \
	"	size_t i = get_global_id(0);\n" \
	"	w[i] += 1.0f;\n" \
	"	if (i == 0)\n" \
	"		n[0] += 1;\n" \
	"}\n"
#define NO_EXTRA "	const float s = 0;\n"

static const char source[] = SCALE_SOURCE ADD_W_SOURCE("add_w", NO_EXTRA) UPDATE_SOURCE;

static float data[1 + N];       /* c at byte 4: c[i] = i / 8 */
static char cache_dir[128];

static int parse(const char *json, rt_program *p, char *err, size_t errlen)
{
	for (int i = 0; i < N; i++)
		data[1 + i] = (float)i / 8;
	return rt_program_parse(json, strlen(json), (const unsigned char *)data, sizeof data, NULL, 0,
	                        p, err, errlen);
}

/* The program of kernels 0 and 1 (json_of), with `src` as its OpenCL
 * source (NULL: none). */
static void load_kernels(rt_program *p, const char *kernel0, const char *kernel1, const char *src)
{
	char json[4096], err[512];
	json_of(json, sizeof json, kernel0, kernel1);
	if (parse(json, p, err, sizeof err) != RT_OK)
		fail_msg("rt_program_parse: %s", err);
	p->cl_source = src;
	p->cl_source_len = src ? (int64_t)strlen(src) : 0;
}

/* The program, with `src` as its OpenCL source (NULL: none). */
static void load(rt_program *p, const char *src)
{
	load_kernels(p, K_SCALE, K_ADD, src);
}

/* Element 0 of a state tensor. */
static double first(const rt_tensorset *s, const char *name)
{
	const rt_tensor *t = rt_set_find(s, name);
	assert_non_null(t);
	return rt_load(t->dtype, t->data, 0);
}

static rt_device *open_ok(const rt_program *p)
{
	char err[1024];
	rt_device *d = rt_device_open(p, "opencl", 0, err, sizeof err);
	if (!d)
		fail_msg("rt_device_open(opencl): %s", err);
	return d;
}

/* --- the descriptor ------------------------------------------------------------ */

static void test_parse_cl(void **unused)
{
	rt_program p;
	load(&p, NULL);
	const rt_entry *e = &p.entries[0];
	assert_int_equal(e->nk, 3);
	for (int k = 0; k < 3; k++) {
		assert_null(e->k[k].fn);
		assert_int_equal(e->k[k].fn_index, -1);
	}
	const rt_cl_launch *l = &e->k[0].cl;
	assert_string_equal(l->v[0].name, "scale");
	assert_int_equal(l->nargs, 3);
	assert_int_equal(l->args[0], 1);
	assert_int_equal(l->args[1], 5);
	assert_int_equal(l->args[2], 2);
	assert_int_equal(l->v[0].global, 8);
	assert_int_equal(l->v[0].local, 4);
	assert_string_equal(e->k[2].cl.v[0].name, "update");
	rt_program_free(&p);
}

static void test_parse_cl_errors(void **unused)
{
	static const char *const bad[][2] = {
		{ "{\"fn\": -1, \"rows\": 8, \"name\": \"k1\"}", "fn -1 (no CPU code) and no 'cl' launch" },
		{ "{\"fn\": -2, \"rows\": 8, \"name\": \"k1\", \"cl\": {\"name\": \"add_w\", \"part\": 0, \"args\": [],"
		  " \"global\": 8, \"local\": 8}}", "'fn' must be an integer >= -1" },
		{ "{\"fn\": -1, \"rows\": 8, \"cl\": {\"name\": \"add_w\", \"part\": 0, \"args\": [0, 7], \"global\": 8,"
		  " \"local\": 8}}", "cl.args[1] must be a buffer index in [0, 7)" },
		{ "{\"fn\": -1, \"rows\": 8, \"cl\": {\"name\": \"add_w\", \"part\": 0, \"args\": [0], \"global\": 12,"
		  " \"local\": 8}}", "global 12 is not a multiple of local 8" },
		{ "{\"fn\": -1, \"rows\": 8, \"cl\": {\"name\": \"add_w\", \"part\": 0, \"args\": [0], \"global\": 8,"
		  " \"local\": 0}}", "'local' must be an integer >= 1" },
		{ "{\"fn\": -1, \"rows\": 8, \"cl\": {\"name\": \"\", \"part\": 0, \"args\": [0], \"global\": 8,"
		  " \"local\": 8}}", "the OpenCL kernel name is empty" },
		{ "{\"fn\": -1, \"rows\": 8, \"cl\": {\"name\": \"add_w\", \"args\": [0], \"global\": 8,"
		  " \"local\": 8}}", "'part' must be an integer >= 0" },
		{ "{\"fn\": -1, \"rows\": 8, \"cl\": {\"name\": \"add_w\", \"part\": 4096, \"args\": [0],"
		  " \"global\": 8, \"local\": 8}}", "part 4096 is not below 4096" },
		{ "{\"fn\": -1, \"rows\": 8, \"cl\": [1]}", "'cl' must be an object" },
		{ "{\"fn\": -1, \"rows\": 8, \"cl\": {\"name\": \"add_w\", \"part\": 0, \"args\": [0], \"global\": 8,"
		  " \"local\": 8, \"alts\": 3}}", "cl.alts must be an array" },
		{ "{\"fn\": -1, \"rows\": 8, \"cl\": {\"name\": \"add_w\", \"part\": 0, \"args\": [0], \"global\": 8,"
		  " \"local\": 8, \"alts\": [{\"name\": \"b\", \"part\": 1, \"global\": 8, \"local\": 3}]}}",
		  ".cl.alts[0]: global 8 is not a multiple of local 3" },
		{ "{\"fn\": -1, \"rows\": 8, \"cl\": {\"name\": \"add_w\", \"part\": 0, \"args\": [\"w\"], \"global\": 8,"
		  " \"local\": 8}}", "cl.args[0] must be a buffer index" },
		{ "{\"fn\": -1, \"rows\": 8, \"cl\": {\"name\": \"add_w\", \"part\": 0, \"args\": [0], \"global\": 8,"
		  " \"local\": 8, \"scratch\": -8}}", "'scratch' must be an integer >= 0" },
		{ "{\"fn\": -1, \"rows\": 8, \"cl\": {\"name\": \"add_w\", \"part\": 0, \"args\": [0], \"global\": 8,"
		  " \"local\": 8, \"scratch\": 99999999}}", "scratch 99999999 is above 16777216 bytes" },
	};
	for (int i = 0; i < TU_LEN(bad); i++) {
		char json[4096], err[512];
		rt_program p;
		json_with(json, sizeof json, bad[i][0]);
		int rc = parse(json, &p, err, sizeof err);
		if (rc != RT_ERR || !tu_starts(err, "program: entries[0] (step).kernels[1]") ||
		    !strstr(err, bad[i][1]))
			fail_msg("case %d: rc %d, message '%s', expected '%s'", i, rc, err, bad[i][1]);
	}
}

/* --- runs ------------------------------------------------------------------------ */

/* Inputs a[i] = i and k[i] = 10 i, given as F32 (converted to I32). */
static void make_inputs(rt_tensorset *in)
{
	int64_t s[1] = { N };
	rt_tensor *a = rt_set_add(in, "a", RT_F32, 1, s), *k = rt_set_add(in, "k", RT_F32, 1, s);
	assert_non_null(a);
	assert_non_null(k);
	a = rt_set_find(in, "a");
	for (int i = 0; i < N; i++) {
		((float *)a->data)[i] = (float)i;
		((float *)k->data)[i] = (float)(10 * i);
	}
}

static void make_state(const rt_program *p, rt_tensorset *state)
{
	char err[512];
	if (rt_state_init(p, 0, NULL, "", state, err, sizeof err) != RT_OK)
		fail_msg("rt_state_init: %s", err);
}

/* y[i] = 2 (i + da) + i/8 + 10i + w: inputs a[i] = i + da */
static void check_y_of(const rt_tensorset *out, float w, float da, const char *when)
{
	const rt_tensor *y = rt_set_find(out, "y");
	assert_non_null(y);
	for (int i = 0; i < N; i++) {
		float want = 2.0f * ((float)i + da) + (float)i / 8 + (float)(10 * i) + w;
		float got = ((const float *)y->data)[i];
		if (fabsf(got - want) > 1e-5f)
			fail_msg("%s: y[%d] = %g, expected %g (w = %g)", when, i, got, want, w);
	}
}

static void check_y(const rt_tensorset *out, float w, const char *when)
{
	check_y_of(out, w, 0, when);
}

static void run_ok(rt_device *d, const rt_program *p, rt_tensorset *state,
                   const rt_tensorset *in, rt_tensorset *out)
{
	char err[1024];
	if (rt_device_run(d, &p->entries[0], state, in, out, err, sizeof err) != RT_OK)
		fail_msg("rt_device_run: %s", err);
}

static void test_run_and_coherence(void **unused)
{
	rt_program p;
	rt_tensorset state = { 0 }, in = { 0 }, out = { 0 };
	char err[1024];
	load(&p, source);
	make_state(&p, &state);
	make_inputs(&in);
	rt_device *d = open_ok(&p);
	CONTAINS(rt_device_name(d), "OpenCL 0.", ": ");
	assert_null(rt_device_pool(d));
	run_ok(d, &p, &state, &in, &out);
	check_y(&out, 1, "run 1");
	/* updated on the device only */
	assert_true(first(&state, "w") == 1);
	run_ok(d, &p, &state, &in, &out);
	check_y(&out, 2, "run 2 (w from the device's copy)");
	assert_true(first(&state, "w") == 1);
	assert_true(first(&state, "n") == 0);
	assert_int_equal(rt_device_sync(d, &state, err, sizeof err), RT_OK);
	for (int i = 0; i < 4; i++)
		assert_true(((float *)rt_set_find(&state, "w")->data)[i] == 3);
	assert_true(first(&state, "n") == 2);
	/* the host writes the state: invalidate uploads it again */
	for (int i = 0; i < 4; i++)
		((float *)rt_set_find(&state, "w")->data)[i] = 100;
	rt_device_invalidate(d, &state);
	run_ok(d, &p, &state, &in, &out);
	check_y(&out, 100, "run 3 (after invalidate)");
	assert_int_equal(rt_device_sync(d, &state, err, sizeof err), RT_OK);
	assert_true(first(&state, "w") == 101);
	assert_true(first(&state, "n") == 3);
	/* a missing input is exec.c's error, and nothing ran */
	rt_tensorset none = { 0 };
	assert_int_equal(rt_device_run(d, &p.entries[0], &state, &none, &out, err, sizeof err), RT_ERR);
	CONTAINS(err, "step: input 'a' is missing");
	rt_device_free(d);
	rt_set_free(&state);
	rt_set_free(&in);
	rt_set_free(&out);
	rt_program_free(&p);
}

/* Queued runs: each reads the inputs as they were when it was queued (the
 * host changes them at once), fills its own outputs by the wait, and the
 * runs update the state in turn. */
static void test_queued_runs(void **unused)
{
	enum { RUNS = 3 };
	rt_program p;
	rt_tensorset state = { 0 }, in = { 0 }, out[RUNS] = { { 0 } };
	char err[1024];
	load(&p, source);
	make_state(&p, &state);
	make_inputs(&in);
	rt_device *d = open_ok(&p);
	assert_true(rt_device_queues(d));
	float *a = rt_set_find(&in, "a")->data;
	for (int r = 0; r < RUNS; r++) {
		if (rt_device_submit(d, &p.entries[0], &state, &in, &out[r], err, sizeof err) != RT_OK)
			fail_msg("rt_device_submit: %s", err);
		for (int i = 0; i < N; i++)
			a[i] += 1;
	}
	assert_int_equal(rt_device_wait(d, err, sizeof err), RT_OK);
	for (int r = 0; r < RUNS; r++)
		check_y_of(&out[r], (float)(1 + r), (float)r, "queued run");
	assert_int_equal(rt_device_sync(d, &state, err, sizeof err), RT_OK);
	assert_true(first(&state, "n") == RUNS);
	rt_device_free(d);
	rt_set_free(&state);
	rt_set_free(&in);
	for (int r = 0; r < RUNS; r++)
		rt_set_free(&out[r]);
	rt_program_free(&p);
}

/* --- the binary cache ------------------------------------------------------------- */

/* The one cache file (its path in buf); fails unless there is exactly one. */
static void cache_file(char *buf, size_t len)
{
	char cmd[512];
	snprintf(cmd, sizeof cmd, "ls '%s'/cl-*.bin 2>/dev/null", cache_dir);
	FILE *f = popen(cmd, "r");
	assert_non_null(f);
	int n = 0;
	char line[1024];
	while (fgets(line, sizeof line, f)) {
		line[strcspn(line, "\n")] = 0;
		snprintf(buf, len, "%s", line);
		n++;
	}
	pclose(f);
	if (n != 1)
		fail_msg("%d program binaries in %s, expected 1", n, cache_dir);
}

/* A well-formed cache file: the magic and a binary behind it. */
static void check_cache_file(const char *path)
{
	char head[8];
	struct stat st;
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	assert_int_equal(fread(head, 1, 8, f), 8);
	fclose(f);
	assert_memory_equal(head, "DDPMCCL1", 8);
	assert_int_equal(stat(path, &st), 0);
	assert_true(st.st_size > 32);
}

static void open_and_run(const rt_program *p, float w)
{
	rt_tensorset state = { 0 }, in = { 0 }, out = { 0 };
	make_state(p, &state);
	make_inputs(&in);
	rt_device *d = open_ok(p);
	run_ok(d, p, &state, &in, &out);
	check_y(&out, w, "a run after reopening");
	rt_device_free(d);
	rt_set_free(&state);
	rt_set_free(&in);
	rt_set_free(&out);
}

static void test_cache(void **unused)
{
	rt_program p;
	char path[1024];
	struct stat a, b;
	/* a source of its own, so that the earlier tests' file is not this one */
	static char src2[sizeof source + 32];
	snprintf(src2, sizeof src2, "/* cache test */\n%s", source);
	char cmd[512];
	snprintf(cmd, sizeof cmd, "rm -f '%s'/cl-*.bin", cache_dir);
	assert_int_equal(system(cmd), 0);
	load(&p, src2);
	open_and_run(&p, 1);
	cache_file(path, sizeof path);
	assert_int_equal(stat(path, &a), 0);
	assert_true(a.st_size > 32);
	/* read from the cache: the file is not written again */
	open_and_run(&p, 1);
	assert_int_equal(stat(path, &b), 0);
	assert_true(a.st_ino == b.st_ino && a.st_mtim.tv_sec == b.st_mtim.tv_sec &&
	            a.st_mtim.tv_nsec == b.st_mtim.tv_nsec);
	/* a corrupt header, then a corrupt binary behind a good header: rebuilt */
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	fputs("not a program binary", f);
	fclose(f);
	open_and_run(&p, 1);
	check_cache_file(path);
	f = fopen(path, "r+b");
	assert_non_null(f);
	fseek(f, 32, SEEK_SET);
	for (long i = 32; i < (long)a.st_size; i++)
		fputc(0x5a, f);
	fclose(f);
	open_and_run(&p, 1);
	check_cache_file(path);
	rt_program_free(&p);
}

/* --- tuning -------------------------------------------------------------------- */

/* stderr of rt_device_open(p, spec) into log; returns the device. */
static rt_device *open_capturing(const rt_program *p, const char *spec, char *err, size_t errlen,
                                 char *log, size_t loglen)
{
	tu_capture c = tu_capture_begin();
	rt_device *d = rt_device_open(p, spec, 0, err, errlen);
	tu_capture_end(&c, log, loglen);
	return d;
}

/* add_w in three variants: the compiler's choice (part 0) and one other
 * (part 1) slow, spinning on sin(); the fast one in part 1. The slow
 * other adds 1 to y, so that a run shows when a file chooses it. The
 * program launches it twice (one OpenCL kernel shared, as the compiler
 * shares one among kernels that differ only in their buffers): the
 * second launch's y is the one a run returns. */
#define K_ADD_VARIANTS \
	"{\"fn\": -1, \"rows\": 8, \"name\": \"k1_add\", \"flops\": 8," \
	" \"cl\": {\"name\": \"add_w_slow\", \"part\": 0, \"args\": [3, 0, 4], \"global\": 8, \"local\": 8," \
	" \"alts\": [{\"name\": \"add_w\", \"part\": 1, \"global\": 8, \"local\": 4}," \
	"  {\"name\": \"add_w_plus1\", \"part\": 1, \"global\": 8, \"local\": 8}]}}"
#define SPIN \
	"	float s = 0;\n" \
	"	for (int r = 0; r < 100000; r++)\n" \
	"		s += sin(s + t[i]) * 0.0f;\n"
static const char tuned_source[] =
	"/* tuning test */\n"
	"#ifdef DDPMC_PART_0\n" SCALE_SOURCE ADD_W_SOURCE("add_w_slow", SPIN) UPDATE_SOURCE "#endif\n"
	"#ifdef DDPMC_PART_1\n" ADD_W_SOURCE("add_w", NO_EXTRA) ADD_W_SOURCE("add_w_plus1", SPIN "	s += 1;\n")
	"#endif\n";

static void load_tuned(rt_program *p)
{
	load_kernels(p, K_SCALE, K_ADD_VARIANTS ", " K_ADD_VARIANTS, tuned_source);
}

/* Opens p (its stderr into log), runs it once and checks y for w = 1
 * plus `extra`. */
static void tuned_run(const rt_program *p, float extra, char *log, size_t len)
{
	rt_tensorset state = { 0 }, in = { 0 }, out = { 0 };
	char err[1024];
	make_state(p, &state);
	make_inputs(&in);
	rt_device *d = open_capturing(p, "opencl", err, sizeof err, log, len);
	if (!d)
		fail_msg("rt_device_open: %s", err);
	run_ok(d, p, &state, &in, &out);
	check_y(&out, 1 + extra, "a tuned run");
	rt_device_free(d);
	rt_set_free(&state);
	rt_set_free(&in);
	rt_set_free(&out);
}

/* The tuning file tune kept (its path from tune's log `tuned` into path)
 * and its one line for add_w_slow. */
static void tuning_line(const char *tuned, char *path, size_t len, char *line, size_t linelen)
{
	const char *kept = strstr(tuned, "tune: kept in ");
	char next[1024];
	int lines = 0;
	if (!kept)
		fail_msg("tune kept no file: %s", tuned);
	kept += strlen("tune: kept in ");
	snprintf(path, len, "%.*s", (int)strcspn(kept, "\n"), kept);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	while (fgets(next, sizeof next, f))
		if (strncmp(next, "add_w_slow\t", 11) == 0 && lines++ == 0)
			snprintf(line, linelen, "%s", next);
	fclose(f);
	if (lines != 1)
		fail_msg("%s has %d lines for add_w_slow, not one", path, lines);
}

/* Opens p on OpenCL and tunes it from state: stderr into log, tune's own
 * lines into tuned. Returns the device, launching the tuned choices. */
static rt_device *tune_ok(const rt_program *p, rt_tensorset *state, double seconds, char *log, size_t loglen,
                          char *tuned, size_t tunedlen)
{
	char err[1024];
	rt_device *d = open_ok(p);
	FILE *f = tmpfile();
	assert_non_null(f);
	tu_capture c = tu_capture_begin();
	int rc = rt_device_tune(d, state, seconds, f, err, sizeof err);
	tu_capture_end(&c, log, loglen);
	if (rc != RT_OK)
		fail_msg("rt_device_tune: %s", err);
	rewind(f);
	tuned[fread(tuned, 1, tunedlen - 1, f)] = 0;
	fclose(f);
	print_message("    %s", tuned);
	return d;
}

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void test_tuning(void **unused)
{
	rt_program p;
	rt_tensorset state = { 0 }, in = { 0 }, out = { 0 };
	char log[8192], tuned[4096], path[1024], line[1024];
	load_tuned(&p);
	/* untuned: the compiler's choices, part 0 alone built */
	tuned_run(&p, 0, log, sizeof log);
	CONTAINS(log, "built 1 of 1 OpenCL programs");
	/* tune: the fast variant chosen, launched at once and kept */
	make_state(&p, &state);
	make_inputs(&in);
	rt_device *d = tune_ok(&p, &state, -1, log, sizeof log, tuned, sizeof tuned);
	CONTAINS(log, "built 1 of 1 OpenCL programs");
	CONTAINS(tuned, "tune: step: 1 kernels with variants not tuned before, 1 changed; their 2 launches");
	tuning_line(tuned, path, sizeof path, line, sizeof line);
	if (strncmp(line, "add_w_slow\t1\t", 13) != 0 || !strstr(line, "\tadd_w@4\n"))
		fail_msg("tuning chose other than the fast variant: %s", line);
	run_ok(d, &p, &state, &in, &out);
	check_y(&out, 2, "the run after tuning");
	rt_device_free(d);
	/* the next open follows the file: its choice 2 adds 1 */
	write_text(path, "# edited\nadd_w_slow\t2\t1 2 3\n");
	tuned_run(&p, 1, log, sizeof log);
	/* a damaged file: reported, ignored */
	write_text(path, "add_w_slow\t7\n");
	tuned_run(&p, 0, log, sizeof log);
	CONTAINS(log, "warning: OpenCL tuning file ", ".tune:1: 'add_w_slow' has variants 0 to 2, not 7; "
	         "ignored: every kernel runs the compiler's choice");
	write_text(path, "nothing here\n");
	tuned_run(&p, 0, log, sizeof log);
	CONTAINS(log, ".tune:1: expected a kernel's name, a tab and its variant");
	unlink(path);
	rt_set_free(&state);
	rt_set_free(&in);
	rt_set_free(&out);
	rt_program_free(&p);
}

/* A variant whose part does not build (as a device's compiler may refuse
 * one the compiler rendered): tune reports it, times the others and keeps
 * the fastest that launches; the next open does not try it again. */
#define K_ADD_BROKEN_VARIANT \
	"{\"fn\": -1, \"rows\": 8, \"name\": \"k1_add\", \"flops\": 8," \
	" \"cl\": {\"name\": \"add_w_slow\", \"part\": 0, \"args\": [3, 0, 4], \"global\": 8, \"local\": 8," \
	" \"alts\": [{\"name\": \"add_w_broken\", \"part\": 1, \"global\": 8, \"local\": 8}," \
	"  {\"name\": \"add_w\", \"part\": 2, \"global\": 8, \"local\": 4}]}}"
static const char broken_part_source[] =
	"/* a part that does not build */\n"
	"#ifdef DDPMC_PART_0\n" SCALE_SOURCE ADD_W_SOURCE("add_w_slow", SPIN) UPDATE_SOURCE "#endif\n"
	"#ifdef DDPMC_PART_1\n" ADD_W_SOURCE("add_w_broken", "	float s = undefined_function_xyz(t);\n")
	"#endif\n"
	"#ifdef DDPMC_PART_2\n" ADD_W_SOURCE("add_w", NO_EXTRA) "#endif\n";

static void test_tuning_leaves_out_broken_part(void **unused)
{
	rt_program p;
	rt_tensorset state = { 0 }, in = { 0 }, out = { 0 };
	char log[16384], tuned[4096], path[1024], line[1024];
	load_kernels(&p, K_SCALE, K_ADD_BROKEN_VARIANT, broken_part_source);
	make_state(&p, &state);
	make_inputs(&in);
	rt_device *d = tune_ok(&p, &state, -1, log, sizeof log, tuned, sizeof tuned);
	CONTAINS(log, "undefined_function_xyz", "warning: OpenCL program part 1 left out, its variants not timed",
	         "built 1 of 2 OpenCL programs", "the failed left out");
	CONTAINS(tuned, "tune: step: 1 kernels with variants not tuned before, 1 changed");
	tuning_line(tuned, path, sizeof path, line, sizeof line);
	if (strncmp(line, "add_w_slow\t2\t", 13) || !strstr(line, " -1.0 ") || !strstr(line, "\tadd_w@4\n"))
		fail_msg("expected add_w (2) chosen and add_w_broken (1) at -1: %s", line);
	run_ok(d, &p, &state, &in, &out);
	check_y(&out, 2, "the run after tuning");
	rt_device_free(d);
	tuned_run(&p, 0, log, sizeof log);
	if (strstr(log, "undefined_function_xyz"))
		fail_msg("the open after tuning built the broken part: %s", log);
	unlink(path);
	rt_set_free(&state);
	rt_set_free(&in);
	rt_set_free(&out);
	rt_program_free(&p);
}

/* scale with a variant in work-groups of 8, fewer FLOPs than add_w's */
#define K_SCALE_VARIANTS \
	"{\"fn\": -1, \"rows\": 8, \"name\": \"k0_scale\", \"flops\": 2," \
	" \"cl\": {\"name\": \"scale\", \"part\": 0, \"args\": [1, 5, 2], \"global\": 8, \"local\": 4," \
	" \"alts\": [{\"name\": \"scale\", \"part\": 0, \"global\": 8, \"local\": 8}]}}"

/* Tune with a time limit of 0 s times nothing and says so; the next tune
 * times both kernels, add_w (8 FLOPs, launched second) before scale (2);
 * the one after that finds both in the file and times neither, which
 * keeps their lines. */
static void test_tuning_time_limit_and_resume(void **unused)
{
	rt_program p;
	rt_tensorset state = { 0 }, in = { 0 }, out = { 0 };
	char log[8192], tuned[4096], path[1024], line[1024], file[4096];
	load_kernels(&p, K_SCALE_VARIANTS, K_ADD_VARIANTS, tuned_source);
	make_state(&p, &state);
	make_inputs(&in);
	rt_device_free(tune_ok(&p, &state, 0, log, sizeof log, tuned, sizeof tuned));
	CONTAINS(tuned, "tune: stopped at the time limit (0 s): 2 OpenCL kernels with variants left untimed");
	if (strstr(tuned, "tune: step:"))
		fail_msg("tune timed kernels after its time limit: %s", tuned);
	rt_device_free(tune_ok(&p, &state, -1, log, sizeof log, tuned, sizeof tuned));
	CONTAINS(tuned, "tune: step: 2 kernels with variants not tuned before");
	tuning_line(tuned, path, sizeof path, line, sizeof line);
	rt_device *d = tune_ok(&p, &state, -1, log, sizeof log, tuned, sizeof tuned);
	CONTAINS(tuned, "tune: step: every kernel with variants timed before");
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	file[fread(file, 1, sizeof file - 1, f)] = 0;
	fclose(f);
	const char *add = strstr(file, "\nadd_w_slow\t1\t"), *scale = strstr(file, "\nscale\t");
	if (!add || !scale || add > scale)
		fail_msg("expected add_w_slow's line (variant 1), then scale's: %s", file);
	run_ok(d, &p, &state, &in, &out);
	check_y(&out, 1, "the run after a tune that ran nothing");
	rt_device_free(d);
	unlink(path);
	rt_set_free(&state);
	rt_set_free(&in);
	rt_set_free(&out);
	rt_program_free(&p);
}

/* --- errors -------------------------------------------------------------------- */

static void test_build_failure(void **unused)
{
	static const char broken[] =
		"__kernel void scale(__global uchar *arena) { undefined_function_xyz(arena); }\n";
	rt_program p;
	char err[1024], log[8192];
	load(&p, broken);
	rt_device *d = open_capturing(&p, "opencl", err, sizeof err, log, sizeof log);
	if (d)
		fail_msg("a broken source built");
	CONTAINS(err, "OpenCL: the program does not build for OpenCL 0.", "CL_BUILD_PROGRAM_FAILURE",
	         "build log");
	CONTAINS(log, "OpenCL build log (OpenCL 0.", "undefined_function_xyz");
	rt_program_free(&p);
}

/* A kernel the source lacks, and one with another argument count. */
static void test_launch_mismatch(void **unused)
{
	rt_program p;
	char err[1024];
	load(&p, source);
	p.entries[0].k[1].cl.v[0].name = "nonexistent";
	assert_null(rt_device_open(&p, "opencl", 0, err, sizeof err));
	CONTAINS(err, "step kernel 1 (k1_add): no kernel of its name", "CL_INVALID_KERNEL_NAME");
	p.entries[0].k[1].cl.v[0].name = "update";
	assert_null(rt_device_open(&p, "opencl", 0, err, sizeof err));
	CONTAINS(err, "'update' takes 3 arguments, the launch gives 4");
	p.entries[0].k[1].cl.v[0].name = "add_w";
	p.entries[0].k[1].cl.nargs = 1;
	assert_null(rt_device_open(&p, "opencl", 0, err, sizeof err));
	CONTAINS(err, "'add_w' takes 4 arguments, the launch gives 2");
	p.entries[0].k[1].cl.nargs = 3;
	rt_program_free(&p);
}

static void test_bad_specs(void **unused)
{
	rt_program p;
	char err[1024];
	load(&p, source);
	assert_null(rt_device_open(&p, "opencl:9.9", 0, err, sizeof err));
	CONTAINS(err, "no OpenCL platform 9", "platforms 0 to", "--device list");
	assert_null(rt_device_open(&p, "opencl:0.99", 0, err, sizeof err));
	CONTAINS(err, "platform 0 has no device 99", "devices 0 to");
	static const char *const bad[] = { "gpu", "opencl:", "opencl:-1.0", "opencl:0.x",
	                                   "cpu:1", "list", "" };
	for (int i = 0; i < TU_LEN(bad); i++) {
		if (rt_device_open(&p, bad[i], 0, err, sizeof err))
			fail_msg("'%s' opened", bad[i]);
		CONTAINS(err, "unknown device", "expected cpu, opencl, opencl:N, opencl:P.D");
	}
	rt_device *d = rt_device_open(&p, "opencl:0.0", 0, err, sizeof err);
	if (!d)
		fail_msg("opencl:0.0: %s", err);
	CONTAINS(rt_device_name(d), "OpenCL 0.0: ");
	rt_device_free(d);
	/* no CPU code (every fn is -1) */
	assert_null(rt_device_open(&p, "cpu", 0, err, sizeof err));
	CONTAINS(err, "compiled for OpenCL only");
	rt_program_free(&p);
	/* no OpenCL code */
	load(&p, NULL);
	assert_null(rt_device_open(&p, "opencl", 0, err, sizeof err));
	CONTAINS(err, "compiled for the CPU only: recompile with ddpmc compile --target all");
	p.cl_source = "";
	assert_null(rt_device_open(&p, "opencl", 0, err, sizeof err));
	CONTAINS(err, "compiled for the CPU only");
	rt_program_free(&p);
}

static void test_list(void **unused)
{
	char buf[8192];
	FILE *f = tmpfile();
	assert_non_null(f);
	assert_int_equal(rt_device_list(f), RT_OK);
	rewind(f);
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	buf[n] = 0;
	fclose(f);
	CONTAINS(buf, "OpenCL platform 0: ", "opencl:0.0  ", "compute units", " GB, kernel arguments up to ", "\ncpu ");
}

/* This program again, with the ICD loader looking in an empty folder:
 * the loader reads its vendors once, at the first OpenCL call, so it has
 * to be a fresh process. */
static void test_no_platform(void **unused)
{
	char dir[64], exe[1024], cmd[2048], out[4096];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	assert_true(n > 0);
	exe[n] = 0;
	tu_tmpdir(dir, sizeof dir);
	snprintf(cmd, sizeof cmd, "OCL_ICD_VENDORS='%s' '%s' --no-platform", dir, exe);
	int rc = tu_stderr_of(cmd, out, sizeof out);
	tu_rmtree(dir);
	if (rc != 0)
		fail_msg("without a platform: exit %d, stderr: %s", rc, out);
	CONTAINS(out, "no OpenCL platform found (is an ICD installed? see /etc/OpenCL/vendors)");
}

/* The child of test_no_platform: open and list, report on stderr. */
static int no_platform_child(void)
{
	rt_program p;
	char err[1024];
	load(&p, source);
	rt_device *d = rt_device_open(&p, "opencl", 0, err, sizeof err);
	rt_device_list(stderr);
	fprintf(stderr, "open: %s\n", d ? "succeeded" : err);
	int ok = !d && strstr(err, "no OpenCL platform found");
	rt_device_free(d);
	rt_program_free(&p);
	return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--no-platform") == 0)
		return no_platform_child();
	const char *pocl = getenv("POCL_CACHE_DIR");
	tu_tmpdir(cache_dir, sizeof cache_dir);
	setenv("DDPMC_CL_CACHE", cache_dir, 1);
	if (!pocl || !*pocl)    /* never the user's ~/.cache/pocl */
		setenv("POCL_CACHE_DIR", cache_dir, 1);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_cl),
		cmocka_unit_test(test_parse_cl_errors),
		cmocka_unit_test(test_run_and_coherence),
		cmocka_unit_test(test_queued_runs),
		cmocka_unit_test(test_cache),
		cmocka_unit_test(test_tuning),
		cmocka_unit_test(test_tuning_leaves_out_broken_part),
		cmocka_unit_test(test_tuning_time_limit_and_resume),
		cmocka_unit_test(test_build_failure),
		cmocka_unit_test(test_launch_mismatch),
		cmocka_unit_test(test_bad_specs),
		cmocka_unit_test(test_list),
		cmocka_unit_test(test_no_platform),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	tu_rmtree(cache_dir);
	return rc;
}
