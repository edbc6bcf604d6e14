/* testutil: helpers shared by the compiler tests (graph building, running
 * one node through the interpreter, comparing against literal expected
 * values, fixture paths, temporary script files, running the driver).
 *
 * Every tests/test_*.c is built as its own program, so everything here is
 * static inline; include it after <cmocka.h>'s prerequisites (it includes
 * them itself). */
#ifndef DDPMC_TESTUTIL_H
#define DDPMC_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zlib.h>

#include "frontend.h"
#include "interp.h"
#include "ir.h"
#include "llvm_backend.h"
#include "safetensors.h"

#define TU_LEN(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* A shape from a literal list of dims: SH(2, 3). SH0 is rank 0. */
#define SH(...) tu_shape_n(TU_LEN(((int64_t[]){ __VA_ARGS__ })), (int64_t[]){ __VA_ARGS__ })
#define SH0 ((ir_shape){ 0, { 0 } })

static inline ir_shape tu_shape_n(int rank, const int64_t *d)
{
	return ir_shape_of(rank, d);
}

/* Fails the test with the graph's message when a builder returned -1. */
static inline int tu_ok(const ir_graph *g, int id)
{
	if (id < 0)
		fail_msg("builder failed: %s", g->err);
	return id;
}

/* An input node `name` of dtype dt and shape s, and a tensor of the same
 * name in `set` holding vals (numel of s of them, stored in dt). */
static inline int tu_input(ir_graph *g, rt_tensorset *set, const char *name, rt_dtype dt,
                           ir_shape s, const double *vals)
{
	int id = tu_ok(g, ir_input(g, name, dt, &s, "test.lua:1"));
	rt_tensor *t = rt_set_add(set, name, dt, s.rank, s.d);
	assert_non_null(t);
	for (int64_t i = 0; i < ir_numel(&s); i++)
		rt_store(dt, t->data, i, vals[i]);
	return id;
}

/* ir_add that must succeed. */
static inline int tu_add(ir_graph *g, ir_opcode op, const int *in, int nin,
                         const ir_attrs *a, const ir_shape *shape, rt_dtype dt)
{
	return tu_ok(g, ir_add(g, op, in, nin, a, shape, dt, "test.lua:2"));
}

static inline int tu_unary(ir_graph *g, ir_opcode op, int a)
{
	return tu_add(g, op, &a, 1, NULL, NULL, RT_F32);
}

static inline int tu_binary(ir_graph *g, ir_opcode op, int a, int b)
{
	int in[2] = { a, b };
	return tu_add(g, op, in, 2, NULL, NULL, RT_F32);
}

/* Runs a fresh entry whose only output is `node` (no state), and returns
 * that output; it lives in *out, which the caller frees. */
static inline const rt_tensor *tu_run(ir_graph *g, int node, const rt_tensorset *inputs,
                                      rt_tensorset *out)
{
	char name[32], err[512];
	snprintf(name, sizeof name, "e%d", g->nentries);
	ir_binding b = { "y", node };
	tu_ok(g, ir_entry_add(g, name, &b, 1, NULL, 0, "test.lua:1"));
	if (ir_verify(g) < 0)
		fail_msg("ir_verify: %s", g->err);
	if (interp_run(g, ir_entry_find(g, name), NULL, inputs, out, err, sizeof err) < 0)
		fail_msg("interp_run: %s", err);
	const rt_tensor *t = rt_set_find(out, "y");
	assert_non_null(t);
	return t;
}

/* Number of elements of t that differ from want[] by more than
 * atol + rtol * |want| (NaN matches NaN, infinities match exactly); prints
 * the first few as "what[i]: expected E, got G (off by D)". A shape
 * mismatch counts as one difference. */
static inline int tu_diff(const char *what, const rt_tensor *t, const ir_shape *shape,
                          const double *want, double rtol, double atol)
{
	ir_shape got = ir_shape_of(t->rank, t->shape);
	if (!ir_shape_eq(&got, shape)) {
		char a[128], b[128];
		print_error("%s: expected shape %s, got %s\n", what,
		            ir_shape_str(shape, a, sizeof a), ir_shape_str(&got, b, sizeof b));
		return 1;
	}
	int bad = 0;
	for (int64_t i = 0; i < ir_numel(shape); i++) {
		double g = rt_load(t->dtype, t->data, i), w = want[i];
		int same = (isnan(g) && isnan(w)) || g == w ||
		           (isfinite(g) && isfinite(w) && fabs(g - w) <= atol + rtol * fabs(w));
		if (same)
			continue;
		if (bad++ < 8)
			print_error("%s[%lld]: expected %.9g, got %.9g (off by %.3g)\n", what,
			            (long long)i, w, g, g - w);
	}
	if (bad > 8)
		print_error("%s: %d elements differ in all\n", what, bad);
	return bad;
}

/* Asserts that tensor t has shape s and the values want[] (an array whose
 * length must be the numel of s); CHECK_PTR takes a pointer instead. */
#define CHECK_VALUES(t, s, want, rtol, atol) do { \
	ir_shape s_ = (s); \
	assert_int_equal(ir_numel(&s_), TU_LEN(want)); \
	assert_int_equal(tu_diff(#t, (t), &s_, (want), (rtol), (atol)), 0); \
} while (0)
#define CHECK_PTR(t, s, want, rtol, atol) do { \
	ir_shape s_ = (s); \
	assert_int_equal(tu_diff(#t, (t), &s_, (want), (rtol), (atol)), 0); \
} while (0)

/* s starts with prefix. */
static inline int tu_starts(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Asserts `s` contains every one of the NULL-terminated substrings. */
static inline void tu_contains(const char *s, ...)
{
	va_list ap;
	va_start(ap, s);
	for (const char *sub; (sub = va_arg(ap, const char *)) != NULL;)
		if (!strstr(s, sub)) {
			va_end(ap);
			fail_msg("expected \"%s\" in: %s", sub, s);
		}
	va_end(ap);
}
#define CONTAINS(s, ...) tu_contains((s), __VA_ARGS__, (const char *)NULL)

/* The path of a fixture under tests/scripts. */
static inline const char *tu_script(const char *name, char *buf, size_t len)
{
	snprintf(buf, len, "%s/tests/scripts/%s", DDPMC_SOURCE_DIR, name);
	return buf;
}

/* dir/name, in one of a few rotating buffers (so that several can be
 * arguments of one call). */
static inline const char *tu_at(const char *dir, const char *name)
{
	static char bufs[8][512];
	static int k;
	char *b = bufs[k++ % 8];
	snprintf(b, sizeof bufs[0], "%s/%s", dir, name);
	return b;
}

/* A fresh temporary directory (removed by tu_rmtree). */
static inline void tu_tmpdir(char *buf, size_t len)
{
	snprintf(buf, len, "/tmp/ddpmc-test-XXXXXX");
	if (!mkdtemp(buf))
		fail_msg("mkdtemp failed");
}

/* Writes `len` bytes (or strlen(text) when len < 0) to dir/name; returns
 * the path in buf. */
static inline const char *tu_write(const char *dir, const char *name, const char *text,
                                   long len, char *buf, size_t buflen)
{
	snprintf(buf, buflen, "%s/%s", dir, name);
	FILE *f = fopen(buf, "wb");
	if (!f)
		fail_msg("cannot write %s", buf);
	size_t n = len < 0 ? strlen(text) : (size_t)len;
	assert_int_equal(fwrite(text, 1, n, f), n);
	fclose(f);
	return buf;
}

static inline void tu_rmtree(const char *dir)
{
	char cmd[1100];
	if (strncmp(dir, "/tmp/ddpmc-test-", 16) != 0)
		return;
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		print_error("could not remove %s\n", dir);
}

/* Runs `cmd` with a shell, its output redirected by `redirect`, and
 * captures what reaches the pipe into buf; returns the exit status (or -1
 * when it did not exit normally). */
static inline int tu_shell_output(const char *cmd, const char *redirect, char *buf, size_t len)
{
	char full[4096];
	snprintf(full, sizeof full, "%s %s", cmd, redirect);
	FILE *p = popen(full, "r");
	assert_non_null(p);
	size_t n = fread(buf, 1, len - 1, p);
	buf[n] = 0;
	int st = pclose(p);
	return st >= 0 && (st & 0x7f) == 0 ? (st >> 8) & 0xff : -1;
}

/* cmd's stderr into buf, stdout discarded. */
static inline int tu_stderr_of(const char *cmd, char *buf, size_t len)
{
	return tu_shell_output(cmd, "2>&1 >/dev/null", buf, len);
}

/* A gzipped IDX image file of n side x side images from an LCG (seeded
 * with 12345): a small data set for compiled executables. 0 or -1. */
static inline int tu_write_idx(const char *path, int n, int side)
{
	unsigned char head[16] = { 0, 0, 8, 3, 0, 0, (unsigned char)(n >> 8), (unsigned char)n, 0, 0, 0,
	                           (unsigned char)side, 0, 0, 0, (unsigned char)side };
	size_t count = (size_t)n * (size_t)side * (size_t)side;
	unsigned char *px = malloc(count);
	uint32_t r = 12345;
	for (size_t i = 0; px && i < count; i++)
		px[i] = (unsigned char)((r = r * 1664525u + 1013904223u) >> 24);
	gzFile f = px ? gzopen(path, "wb") : NULL;
	int ok = f && gzwrite(f, head, sizeof head) == (int)sizeof head &&
	         gzwrite(f, px, (unsigned)count) == (int)count;
	ok = f && gzclose(f) == Z_OK && ok;
	free(px);
	return ok ? 0 : -1;
}

/* A gzipped IDX labels file of n labels, label i = i % 10. 0 or -1. */
static inline int tu_write_labels(const char *path, int n)
{
	unsigned char head[8] = { 0, 0, 8, 1, 0, 0, (unsigned char)(n >> 8), (unsigned char)n };
	gzFile f = gzopen(path, "wb");
	int ok = f && gzwrite(f, head, sizeof head) == (int)sizeof head;
	for (int i = 0; ok && i < n; i++)
		ok = gzputc(f, i % 10) == i % 10;
	ok = f && gzclose(f) == Z_OK && ok;
	return ok ? 0 : -1;
}

/* Runs `cmd` with a shell and captures its stdout and stderr together into
 * buf; returns the exit status (or -1 when it did not exit normally). */
static inline int tu_output_of(const char *cmd, char *buf, size_t len)
{
	return tu_shell_output(cmd, "2>&1", buf, len);
}

/* The command made from fmt and its arguments, its stdout and stderr
 * into buf; returns its exit status. */
static inline int tu_outputf(char *buf, size_t len, const char *fmt, ...)
{
	char cmd[3072];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	return tu_output_of(cmd, buf, len);
}

/* The script at DDPMC_SOURCE_DIR/rel, run by the frontend (fails the test
 * with the frontend's message when it does not load). */
/* The lowering's target for the CPU code of `cpu` (NULL: this host's). */
static inline const kir_target *tu_cpu_target(const char *cpu)
{
	static kir_target t;
	char err[1024];
	if (llvm_kir_target(cpu, &t, err, sizeof err) < 0)
		fail_msg("%s", err);
	return &t;
}

static inline ir_graph *tu_load(const char *rel)
{
	char path[1024], err[1024];
	snprintf(path, sizeof path, "%s/%s", DDPMC_SOURCE_DIR, rel);
	ir_graph *g = fe_load(path, NULL, 0, err, sizeof err);
	if (!g)
		fail_msg("%s", err);
	return g;
}

/* The safetensors file at path into *set, emptied first (fails the test
 * when it cannot be read). */
static inline void tu_read_st(const char *path, rt_tensorset *set)
{
	char err[1024];
	memset(set, 0, sizeof *set);
	if (rt_st_read(path, set, err, sizeof err) != RT_OK)
		fail_msg("%s", err);
}

/* tests/golden/NAME into set. */
static inline void tu_read_golden(const char *name, rt_tensorset *set)
{
	char path[1024];
	snprintf(path, sizeof path, "%s/tests/golden/%s", DDPMC_SOURCE_DIR, name);
	tu_read_st(path, set);
}

/* DIR/RUN/checkpoint.safetensors (a train --out DIR/RUN) into set. */
static inline void tu_read_checkpoint(const char *dir, const char *run, rt_tensorset *set)
{
	char path[1024];
	snprintf(path, sizeof path, "%s/%s/checkpoint.safetensors", dir, run);
	tu_read_st(path, set);
}

/* max_i |t_i|. */
static inline double tu_max_abs(const rt_tensor *t)
{
	double m = 0;
	for (int64_t i = 0; i < rt_numel(t->rank, t->shape); i++)
		m = fmax(m, fabs(rt_load(t->dtype, t->data, i)));
	return m;
}

/* Every tensor of want is in got, its elements within tol x its largest
 * value (max |want|, at least 1e-3); otherwise fails naming the tensor and
 * `what` (the two runs). Prints the worst tensor. */
static inline void tu_close_state(const rt_tensorset *want, const rt_tensorset *got, double tol,
                                  const char *what)
{
	double worst = 0;
	const char *worst_name = "";
	for (int i = 0; i < want->n; i++) {
		const rt_tensor *w = &want->t[i], *g = rt_set_find(got, w->name);
		if (!g)
			fail_msg("%s: missing (%s)", w->name, what);
		double scale = fmax(tu_max_abs(w), 1e-3), d = 0;
		for (int64_t k = 0; k < rt_numel(w->rank, w->shape); k++)
			d = fmax(d, fabs(rt_load(g->dtype, g->data, k) - rt_load(w->dtype, w->data, k)));
		if (d / scale > worst)
			worst = d / scale, worst_name = w->name;
		if (!(d <= tol * scale))
			fail_msg("%s: %s differ by %g (largest value %g)", w->name, what, d, scale);
	}
	print_message("worst state tensor: %s, %.3g of its largest value\n", worst_name, worst);
}

/* What this process writes to stderr (tu_capture_begin) or to stdout
 * (tu_capture_stdout) until tu_capture_end, into buf (NUL-terminated). */
typedef struct {
	FILE *tmp;
	int fd, saved;
} tu_capture;

static inline tu_capture tu_capture_fd(int fd)
{
	tu_capture c;
	fflush(stdout);
	fflush(stderr);
	c.tmp = tmpfile();
	assert_non_null(c.tmp);
	c.fd = fd;
	c.saved = dup(fd);
	dup2(fileno(c.tmp), fd);
	return c;
}

static inline tu_capture tu_capture_begin(void)
{
	return tu_capture_fd(2);
}

static inline tu_capture tu_capture_stdout(void)
{
	return tu_capture_fd(1);
}

static inline void tu_capture_end(tu_capture *c, char *buf, size_t len)
{
	fflush(stdout);
	fflush(stderr);
	dup2(c->saved, c->fd);
	close(c->saved);
	rewind(c->tmp);
	size_t n = fread(buf, 1, len - 1, c->tmp);
	buf[n] = 0;
	fclose(c->tmp);
}

/* Compiles DDPMC_SOURCE_DIR/model with the built driver (and `flags`)
 * into exe; 0, or -1 after printing the driver's stderr. */
static inline int tu_compile(const char *model, const char *flags, const char *exe)
{
	char cmd[2048], err[4096];
	snprintf(cmd, sizeof cmd, "'%s' compile '%s/%s' %s -o '%s'", DDPMC_BIN, DDPMC_SOURCE_DIR, model,
	         flags, exe);
	if (tu_stderr_of(cmd, err, sizeof err) == 0)
		return 0;
	print_error("%s failed: %s\n", cmd, err);
	return -1;
}

/* What the tests of compiled executables start from: a fresh temporary
 * folder dir (64 bytes) holding exe = dir/tiny (128 bytes), compiled from
 * model with flags, and data = dir/images-idx3-ubyte.gz (128 bytes), n
 * side x side images from tu_write_idx. 0 or -1. */
static inline int tu_tiny_program(const char *model, const char *flags, char dir[64], char exe[128],
                                  char data[128], int n, int side)
{
	tu_tmpdir(dir, 64);
	snprintf(exe, 128, "%s/tiny", dir);
	if (tu_compile(model, flags, exe))
		return -1;
	snprintf(data, 128, "%s/images-idx3-ubyte.gz", dir);
	return tu_write_idx(data, n, side);
}

/* The number of newline-terminated lines in s. */
static inline int tu_lines(const char *s)
{
	int n = 0;
	for (; *s; s++)
		n += *s == '\n';
	return n;
}

#endif
