/* test_safetensors: round trips through rt_st_write / rt_st_read, files laid
 * out the way torch writes them, every malformed header the reader must
 * reject (in memory and from a file, checking the message), and writes
 * that fail without leaving a temporary file or touching the old file;
 * checksums that find a flipped bit; 100,000 tensors read in linear time. */
#define _GNU_SOURCE     /* memmem */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "safetensors.h"

static char tmpdir[] = "/tmp/ddpmc_st_XXXXXX";

/* ---- helpers ---- */

static void path_in(char *buf, size_t n, const char *name)
{
	snprintf(buf, n, "%s/%s", tmpdir, name);
}

/* A file image: u64 length prefix, header, data. *len gets its size. */
static unsigned char *image(const char *header, const void *data, size_t dlen,
                            size_t *len)
{
	size_t hlen = strlen(header);
	unsigned char *b = malloc(8 + hlen + dlen + 1);
	assert_non_null(b);
	for (int k = 0; k < 8; k++)
		b[k] = (unsigned char)((uint64_t)hlen >> (8 * k));
	memcpy(b + 8, header, hlen);
	if (dlen)
		memcpy(b + 8 + hlen, data, dlen);
	*len = 8 + hlen + dlen;
	return b;
}

static void write_bytes(const char *path, const void *b, size_t n)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(b, 1, n, f), n);
	assert_int_equal(fclose(f), 0);
}

/* Reads a whole file; returns NULL when it does not exist. */
static unsigned char *read_bytes(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	*n = 0;
	if (!f)
		return NULL;
	unsigned char *b = malloc(1 << 20);
	assert_non_null(b);
	*n = fread(b, 1, 1 << 20, f);
	fclose(f);
	return b;
}

/* Number of entries of dir whose name contains ".tmp.". */
static int count_temp_files(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;
	assert_non_null(d);
	while ((e = readdir(d)))
		n += strstr(e->d_name, ".tmp.") != NULL;
	closedir(d);
	return n;
}

/* The message must start with "what: " and contain want. */
static void check_message(const char *err, const char *what, const char *want)
{
	size_t n = strlen(what);
	if (strncmp(err, what, n) != 0 || strncmp(err + n, ": ", 2) != 0)
		fail_msg("message does not start with '%s: ': %s", what, err);
	if (!strstr(err, want))
		fail_msg("message lacks '%s': %s", want, err);
	if (strchr(err, '\n'))
		fail_msg("message is not one line: %s", err);
}

static void check_empty(const rt_tensorset *s)
{
	if (s->n || s->t || s->nmeta || s->meta)
		fail_msg("failed read left %d tensors, %d metadata pairs", s->n, s->nmeta);
}

/* buf must be rejected by rt_st_parse and, written to a file, by
 * rt_st_read, both with a message naming the file and containing want. */
static void expect_reject(const char *name, const unsigned char *buf, size_t len,
                          const char *want)
{
	rt_tensorset s = {0};
	char err[512], path[256];
	if (rt_st_parse(buf, len, "mem.safetensors", &s, err, sizeof err) != RT_ERR)
		fail_msg("case %s: accepted by rt_st_parse", name);
	check_message(err, "mem.safetensors", want);
	check_empty(&s);
	snprintf(path, sizeof path, "%s/%s.safetensors", tmpdir, name);
	write_bytes(path, buf, len);
	if (rt_st_read(path, &s, err, sizeof err) != RT_ERR)
		fail_msg("case %s: accepted by rt_st_read", name);
	check_message(err, path, want);
	check_empty(&s);
	remove(path);
}

static void reject_header(const char *name, const char *header, size_t dlen,
                          const char *want)
{
	unsigned char data[64] = {0};
	size_t len;
	assert_true(dlen <= sizeof data);
	unsigned char *b = image(header, data, dlen, &len);
	expect_reject(name, b, len, want);
	free(b);
}

static void expect_tensor(const rt_tensorset *s, const rt_tensor *want)
{
	const rt_tensor *t = rt_set_find(s, want->name);
	if (!t)
		fail_msg("tensor '%s' missing after reading", want->name);
	if (t->dtype != want->dtype || t->rank != want->rank)
		fail_msg("tensor '%s': dtype %s rank %d, want %s rank %d", want->name,
		         rt_dtype_name(t->dtype), t->rank, rt_dtype_name(want->dtype),
		         want->rank);
	for (int d = 0; d < t->rank; d++)
		if (t->shape[d] != want->shape[d])
			fail_msg("tensor '%s': shape[%d] = %lld, want %lld", want->name, d,
			         (long long)t->shape[d], (long long)want->shape[d]);
	size_t nb = (size_t)rt_numel(t->rank, t->shape) * rt_dtype_size(t->dtype);
	for (size_t k = 0; k < nb; k++)
		if (((unsigned char *)t->data)[k] != ((unsigned char *)want->data)[k])
			fail_msg("tensor '%s': byte %zu differs", want->name, k);
}

/* ---- round trips ---- */

/* A set of every dtype, odd sizes (so packing is not naturally aligned),
 * a scalar, an empty tensor, awkward names and metadata. */
static void build_sample(rt_tensorset *s)
{
	static const struct {
		const char *name;
		rt_dtype dt;
		int rank;
		int64_t shape[3];
	} spec[] = {
		{"conv.weight", RT_F32, 2, {2, 3}}, {"half \"odd\"", RT_F16, 1, {5}},
		{"b\\f16", RT_BF16, 2, {3, 1}},     {"step", RT_I32, 0, {0}},
		{"f64", RT_F64, 1, {2}},             {"i64", RT_I64, 1, {3}},
		{"bytes", RT_U8, 3, {7, 1, 1}},      {"empty", RT_F32, 2, {0, 4}},
	};
	for (size_t k = 0; k < sizeof spec / sizeof spec[0]; k++) {
		rt_tensor *t = rt_set_add(s, spec[k].name, spec[k].dt, spec[k].rank,
		                          spec[k].shape);
		assert_non_null(t);
		int64_t n = rt_numel(t->rank, t->shape);
		for (int64_t i = 0; i < n; i++)
			rt_store(t->dtype, t->data, i, (double)(k * 10 + (size_t)i) - 3.5);
	}
	assert_int_equal(rt_set_meta(s, "format", "pt"), RT_OK);
	assert_int_equal(rt_set_meta(s, "note", "q\" b\\ nl\n tab\t \xc3\xa9"), RT_OK);
}

static void test_round_trip(void **state)
{
	rt_tensorset a = {0}, b = {0};
	char path[256], err[512];
	(void)state;
	build_sample(&a);
	path_in(path, sizeof path, "round.safetensors");
	if (rt_st_write(path, &a, err, sizeof err))
		fail_msg("write: %s", err);
	if (rt_st_read(path, &b, err, sizeof err))
		fail_msg("read: %s", err);
	assert_int_equal(b.n, a.n);
	for (int k = 0; k < a.n; k++)
		expect_tensor(&b, &a.t[k]);
	assert_int_equal(b.nmeta, 2);
	assert_string_equal(rt_get_meta(&b, "format"), "pt");
	assert_string_equal(rt_get_meta(&b, "note"), rt_get_meta(&a, "note"));
	assert_int_equal(count_temp_files(tmpdir), 0);
	rt_set_free(&a);
	rt_set_free(&b);
	remove(path);
}

/* build_sample's set into a, written to tmpdir/name (its path into
 * path); returns the file's bytes, *n of them. */
static unsigned char *write_sample(rt_tensorset *a, const char *name, char path[256], size_t *n)
{
	char err[512];
	build_sample(a);
	path_in(path, 256, name);
	if (rt_st_write(path, a, err, sizeof err))
		fail_msg("write: %s", err);
	unsigned char *f = read_bytes(path, n);
	assert_non_null(f);
	return f;
}

/* Layout torch expects: data starts at a multiple of 8, tensors packed in
 * set order with no gaps, and nothing after the last tensor. */
static void test_written_layout(void **state)
{
	rt_tensorset a = {0};
	char path[256];
	size_t n;
	(void)state;
	unsigned char *f = write_sample(&a, "layout.safetensors", path, &n);
	uint64_t hlen = 0;
	for (int k = 7; k >= 0; k--)
		hlen = hlen << 8 | f[k];
	if ((8 + hlen) % 8)
		fail_msg("data region starts at %llu, not a multiple of 8",
		         (unsigned long long)(8 + hlen));
	assert_true(f[8] == '{');
	size_t off = 8 + (size_t)hlen;
	for (int k = 0; k < a.n; k++) {
		size_t nb = (size_t)rt_numel(a.t[k].rank, a.t[k].shape) *
		            rt_dtype_size(a.t[k].dtype);
		if (memcmp(f + off, a.t[k].data, nb) != 0)
			fail_msg("tensor %d '%s' not at file offset %zu", k, a.t[k].name, off);
		off += nb;
	}
	if (off != n)
		fail_msg("file is %zu bytes, tensors end at %zu", n, off);
	free(f);
	rt_set_free(&a);
	remove(path);
}

/* A header as torch / python safetensors may write it: newlines and
 * spaces, members in another order, data not in header order, escapes,
 * padding after the JSON, unused bytes in the data region. */
static void test_torch_style(void **state)
{
	const char *header =
	    "{\n  \"__metadata__\" : { \"format\" : \"pt\", \"u\": \"\\u00e9\\ud83d\\ude00\" },\n"
	    "  \"b\": {\"shape\": [2], \"data_offsets\": [0, 8], \"dtype\": \"I32\"},\n"
	    "  \"a\\\"x\" : { \"data_offsets\" : [ 8 , 16 ] , \"dtype\" : \"F32\" ,"
	    " \"shape\" : [ 1 , 2 ] }\n}    ";
	const int32_t bdata[2] = {-7, 9};
	const float adata[2] = {1.5f, -2.25f};
	unsigned char data[20] = {0};
	memcpy(data, bdata, 8);
	memcpy(data + 8, adata, 8);
	size_t len;
	unsigned char *buf = image(header, data, sizeof data, &len);
	rt_tensorset s = {0};
	char err[512];
	(void)state;
	if (rt_st_parse(buf, len, "torch.safetensors", &s, err, sizeof err))
		fail_msg("rejected: %s", err);
	free(buf);
	assert_int_equal(s.n, 2);
	rt_tensor *a = rt_set_find(&s, "a\"x"), *b = rt_set_find(&s, "b");
	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(a->rank, 2);
	assert_int_equal(a->shape[1], 2);
	assert_memory_equal(a->data, adata, 8);
	assert_memory_equal(b->data, bdata, 8);
	assert_string_equal(rt_get_meta(&s, "u"), "\xc3\xa9\xf0\x9f\x98\x80");
	rt_set_free(&s);
}

static void test_overwrite(void **state)
{
	rt_tensorset a = {0}, b = {0};
	char path[256], err[512];
	const int64_t shape[1] = {3};
	(void)state;
	path_in(path, sizeof path, "over.safetensors");
	build_sample(&a);
	if (rt_st_write(path, &a, err, sizeof err))
		fail_msg("first write: %s", err);
	rt_set_free(&a);
	assert_non_null(rt_set_add(&a, "only", RT_F32, 1, shape));
	if (rt_st_write(path, &a, err, sizeof err))
		fail_msg("second write: %s", err);
	if (rt_st_read(path, &b, err, sizeof err))
		fail_msg("read: %s", err);
	assert_int_equal(b.n, 1);
	assert_int_equal(b.nmeta, 0);
	assert_string_equal(b.t[0].name, "only");
	rt_set_free(&a);
	rt_set_free(&b);
	remove(path);
}

/* 100,000 tensors written and read back, each found by name with its
 * value. Reading is O(n) (the set's name index): a second here, where the
 * linear lookups took minutes (tests/CMakeLists.txt gives this program a
 * timeout far above the one and far below the other). */
static void test_many_tensors(void **state)
{
	enum { N = 100000 };
	rt_tensorset a = {0}, b = {0};
	char path[256], err[512], name[32];
	const int64_t one[1] = {1};
	(void)state;
	for (int i = 0; i < N; i++) {
		snprintf(name, sizeof name, "layer.%d.weight", i);
		rt_tensor *t = rt_set_add(&a, name, RT_F32, 1, one);
		assert_non_null(t);
		*(float *)t->data = (float)i;
	}
	assert_null(rt_set_add(&a, "layer.7.weight", RT_F32, 1, one));
	path_in(path, sizeof path, "many.safetensors");
	if (rt_st_write(path, &a, err, sizeof err) || rt_st_read(path, &b, err, sizeof err))
		fail_msg("%s", err);
	assert_int_equal(b.n, N);
	for (int i = 0; i < N; i++) {
		snprintf(name, sizeof name, "layer.%d.weight", i);
		const rt_tensor *t = rt_set_find(&b, name);
		if (!t || *(const float *)t->data != (float)i)
			fail_msg("'%s' %s", name, t ? "has another value" : "is missing");
	}
	assert_null(rt_set_find(&b, "layer.100000.weight"));
	rt_set_free(&a);
	rt_set_free(&b);
	remove(path);
}

/* A bit flipped in the last byte of the file (the data of the last
 * tensor written) is found by the checksums, naming the tensor. */
static void test_checksum_flipped_bit(void **state)
{
	rt_tensorset a = {0};
	char path[256];
	size_t n;
	(void)state;
	unsigned char *f = write_sample(&a, "flipped.safetensors", path, &n);
	assert_non_null(memmem(f, n, "\"crc32\":\"{", 10));
	f[n - 1] ^= 0x10;       /* the last element of "bytes" (the empty one is after it) */
	expect_reject("flipped", f, n, "tensor 'bytes' fails its checksum");
	free(f);
	rt_set_free(&a);
	remove(path);
}

/* ---- malformed files ---- */

static void test_reject_short_and_length(void **state)
{
	unsigned char b[120] = {0x0f, 0x27};  /* 9999 little-endian */
	(void)state;
	expect_reject("short", b, 5, "file too short for a safetensors header (5 bytes");
	expect_reject("empty", b, 0, "file too short");
	expect_reject("past_end", b, sizeof b, "header length 9999 past end of file (120 bytes)");
}

static void test_reject_json(void **state)
{
	(void)state;
	reject_header("bad_json", "{\"a\": {\"dtype\" \"F32\"}}", 0,
	              "invalid JSON in header at byte 15: expected ':'");
	reject_header("truncated_json", "{\"a\": ", 0, "unexpected end of input");
	reject_header("trailing_json", "{} x", 0, "trailing characters");
	reject_header("bad_escape", "{\"a\\q\": {}}", 0, "invalid escape");
	reject_header("not_object", "[1, 2]", 0, "header must be a JSON object, not array");
}

static void test_reject_entries(void **state)
{
	(void)state;
	reject_header("no_dtype", "{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
	              "tensor 'w': missing \"dtype\"");
	reject_header("no_shape", "{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4,
	              "tensor 'w': missing \"shape\"");
	reject_header("no_offsets", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4,
	              "tensor 'w': missing \"data_offsets\"");
	reject_header("entry_not_object", "{\"w\":[1]}", 0,
	              "tensor 'w': entry must be an object, not array");
	reject_header("unknown_dtype",
	              "{\"w\":{\"dtype\":\"F128\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
	              "tensor 'w': unknown dtype 'F128'");
	reject_header("bad_metadata", "{\"__metadata__\":{\"k\":1}}", 0,
	              "__metadata__ value of 'k' must be a string, not number");
	/* names are quoted with control characters as '?': one line (fuzz_safetensors checks it) */
	reject_header("control_in_name",
	              "{\"a\\nb\\u001b[31m\":{\"dtype\":\"X\",\"shape\":[],\"data_offsets\":[0,0]}}",
	              0, "tensor 'a?b?[31m': unknown dtype 'X'");
}

static void test_reject_shapes(void **state)
{
	(void)state;
	reject_header("negative_shape",
	              "{\"w\":{\"dtype\":\"F32\",\"shape\":[-2,3],\"data_offsets\":[0,24]}}", 24,
	              "tensor 'w': shape[0] = -2 is negative");
	reject_header("fraction_shape",
	              "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2.5],\"data_offsets\":[0,20]}}", 20,
	              "tensor 'w': shape[1] is not an integer");
	reject_header("string_shape",
	              "{\"w\":{\"dtype\":\"F32\",\"shape\":\"2\",\"data_offsets\":[0,8]}}", 8,
	              "tensor 'w': shape must be an array, not string");
	reject_header("rank9",
	              "{\"w\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],"
	              "\"data_offsets\":[0,1]}}", 1,
	              "tensor 'w': rank 9 exceeds the maximum 8");
	reject_header("size_mismatch",
	              "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}}", 24,
	              "tensor 'w': data_offsets span 20 bytes but 6 elements of F32 need 24");
}

static void test_reject_offsets(void **state)
{
	(void)state;
	reject_header("past_data",
	              "{\"w\":{\"dtype\":\"F32\",\"shape\":[16],\"data_offsets\":[0,64]}}", 24,
	              "tensor 'w': data_offsets end 64 is past the data region (24 bytes)");
	reject_header("begin_after_end",
	              "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[16,8]}}", 24,
	              "tensor 'w': data_offsets [16, 8] have begin > end");
	reject_header("negative_offset",
	              "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 24,
	              "tensor 'w': data_offsets[0] is not a non-negative integer");
	reject_header("offsets_not_pair",
	              "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 24,
	              "tensor 'w': data_offsets is not a [begin, end] pair");
	reject_header("overlap",
	              "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
	              "\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]},"
	              "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}", 24,
	              "tensors 'a' [0, 16) and 'b' [8, 24) overlap");
	reject_header("duplicate",
	              "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
	              "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8,
	              "duplicate tensor name 'a'");
}

static void test_read_missing_file(void **state)
{
	rt_tensorset s = {0};
	char path[256], err[512];
	(void)state;
	path_in(path, sizeof path, "does-not-exist.safetensors");
	assert_int_equal(rt_st_read(path, &s, err, sizeof err), RT_ERR);
	check_message(err, path, "cannot open");
	check_empty(&s);
}

/* ---- failed writes ---- */

/* Writes a small file at path and returns its bytes. */
static unsigned char *write_keep(const char *path, size_t *n)
{
	rt_tensorset k = {0};
	char err[512];
	const int64_t shape[1] = {2};
	assert_non_null(rt_set_add(&k, "keep", RT_F32, 1, shape));
	if (rt_st_write(path, &k, err, sizeof err))
		fail_msg("write: %s", err);
	rt_set_free(&k);
	unsigned char *b = read_bytes(path, n);
	assert_non_null(b);
	return b;
}

/* After a failed write, path still holds exactly old[0..n). */
static void expect_unchanged(const char *path, const unsigned char *old, size_t n)
{
	size_t m;
	unsigned char *now = read_bytes(path, &m);
	if (!now)
		fail_msg("%s vanished after a failed write", path);
	if (m != n || memcmp(now, old, n) != 0)
		fail_msg("%s changed by a failed write (%zu bytes, was %zu)", path, m, n);
	free(now);
}

static void test_write_missing_dir(void **state)
{
	rt_tensorset a = {0};
	char path[256], err[512];
	(void)state;
	build_sample(&a);
	path_in(path, sizeof path, "no-such-dir/x.safetensors");
	assert_int_equal(rt_st_write(path, &a, err, sizeof err), RT_ERR);
	check_message(err, path, "cannot create");
	assert_int_equal(count_temp_files(tmpdir), 0);
	rt_set_free(&a);
}

/* The file-size limit makes the data write fail midway (EFBIG), which
 * also happens to root, unlike a read-only directory. */
static void test_write_fails_midway(void **state)
{
	rt_tensorset big = {0};
	char path[256], err[512];
	const int64_t shape[1] = {1 << 16};
	struct rlimit old, lim;
	size_t n;
	(void)state;
	path_in(path, sizeof path, "keep.safetensors");
	unsigned char *before = write_keep(path, &n);
	assert_non_null(rt_set_add(&big, "big", RT_F32, 1, shape));
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = 4096;
	void (*oldsig)(int) = signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	int rc = rt_st_write(path, &big, err, sizeof err);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, oldsig);
	if (rc != RT_ERR)
		fail_msg("write past RLIMIT_FSIZE succeeded");
	check_message(err, path, "write to");
	assert_int_equal(count_temp_files(tmpdir), 0);
	expect_unchanged(path, before, n);
	free(before);
	rt_set_free(&big);
	remove(path);
}

/* rename cannot replace a nonempty directory: the temporary is removed and
 * the directory keeps its content. */
static void test_write_rename_fails(void **state)
{
	rt_tensorset a = {0};
	char dir[256], inner[300], err[512];
	size_t n;
	(void)state;
	path_in(dir, sizeof dir, "a-directory");
	assert_int_equal(mkdir(dir, 0700), 0);
	snprintf(inner, sizeof inner, "%s/inner.safetensors", dir);
	unsigned char *before = write_keep(inner, &n);
	build_sample(&a);
	assert_int_equal(rt_st_write(dir, &a, err, sizeof err), RT_ERR);
	check_message(err, dir, "cannot rename");
	assert_int_equal(count_temp_files(tmpdir), 0);
	expect_unchanged(inner, before, n);
	free(before);
	rt_set_free(&a);
	remove(inner);
	rmdir(dir);
}

static int setup(void **state)
{
	(void)state;
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	return rmdir(tmpdir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_written_layout),
		cmocka_unit_test(test_torch_style),
		cmocka_unit_test(test_overwrite),
		cmocka_unit_test(test_many_tensors),
		cmocka_unit_test(test_checksum_flipped_bit),
		cmocka_unit_test(test_reject_short_and_length),
		cmocka_unit_test(test_reject_json),
		cmocka_unit_test(test_reject_entries),
		cmocka_unit_test(test_reject_shapes),
		cmocka_unit_test(test_reject_offsets),
		cmocka_unit_test(test_read_missing_file),
		cmocka_unit_test(test_write_missing_dir),
		cmocka_unit_test(test_write_fails_midway),
		cmocka_unit_test(test_write_rename_fails),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
