/* test_data: the data sets of data.h read from small files this test
 * writes into a temporary folder (IDX raw and gzipped, CIFAR-10 batches,
 * PNG folders grey and RGB), scaling to [-1, 1], flips, the epoch order
 * and the loader's resume position, and every kind of bad input with its
 * one-line message. A short fuzz (truncations and byte flips of each small
 * file) checks that nothing crashes and that truncations are errors; run it
 * under the sanitizer build (-DDDPMC_SANITIZE=ON). */
#define _XOPEN_SOURCE 700       /* nftw */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "data.h"
#include "philox.h"
#include "tensor.h"

static char tmp[256];

/* tmp/name, in one of a few rotating buffers. */
static const char *at(const char *name)
{
	static char bufs[8][512];
	static int k;
	char *b = bufs[k++ % 8];
	snprintf(b, sizeof bufs[0], "%s/%s", tmp, name);
	return b;
}

/* The pixel byte of image i, channel c, row y, column x. */
static uint8_t pat(int i, int c, int y, int x)
{
	return (uint8_t)(i * 37 + c * 101 + y * 13 + x * 7 + 3);
}

static void write_bytes(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

/* b[0..len) to path, gzipped when gz. */
static void write_maybe_gz(const char *path, const uint8_t *b, size_t len, int gz)
{
	if (!gz) {
		write_bytes(path, b, len);
		return;
	}
	gzFile f = gzopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(gzwrite(f, b, (unsigned)len), (int)len);
	assert_int_equal(gzclose(f), Z_OK);
}

static uint8_t *read_bytes(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	*len = (size_t)ftell(f);
	fseek(f, 0, SEEK_SET);
	uint8_t *b = malloc(*len + 1);
	assert_non_null(b);
	assert_int_equal(fread(b, 1, *len, f), *len);
	fclose(f);
	return b;
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

/* An IDX image file of n images h x w from pat(), raw or gzipped;
 * `extra` bytes of pixels more (< 0: fewer) than the header says. */
static void write_idx(const char *path, uint32_t magic, int n, int h, int w, int gz, int extra)
{
	size_t len = 16 + (size_t)(n * h * w + extra);
	uint8_t *b = calloc(len + 1, 1);
	put32(b, magic), put32(b + 4, (uint32_t)n), put32(b + 8, (uint32_t)h), put32(b + 12, (uint32_t)w);
	for (size_t k = 16; k < len; k++) {
		int q = (int)(k - 16), i = q / (h * w), y = q % (h * w) / w, x = q % w;
		b[k] = pat(i, 0, y, x);
	}
	write_maybe_gz(path, b, len, gz);
	free(b);
}

/* An IDX labels file (magic 0x801) saying n labels and holding n + extra,
 * label i = (i * 3) % 10, raw or gzipped. */
static void write_labels(const char *path, int n, int extra, int gz)
{
	size_t len = 8 + (size_t)(n + extra);
	uint8_t *b = calloc(len + 1, 1);
	put32(b, 0x801), put32(b + 4, (uint32_t)n);
	for (size_t k = 8; k < len; k++)
		b[k] = (uint8_t)((k - 8) * 3 % 10);
	write_maybe_gz(path, b, len, gz);
	free(b);
}

/* A CIFAR-10 batch of n records: image first + k of pat(), label k % 10. */
static void write_cifar(const char *path, int first, int n, int label)
{
	uint8_t *b = malloc((size_t)n * 3073);
	for (int k = 0; k < n; k++) {
		uint8_t *r = b + (size_t)k * 3073;
		r[0] = (uint8_t)(label >= 0 ? label : k % 10);
		for (int c = 0; c < 3; c++)
			for (int y = 0; y < 32; y++)
				for (int x = 0; x < 32; x++)
					r[1 + (c * 32 + y) * 32 + x] = pat(first + k, c, y, x);
	}
	write_bytes(path, b, (size_t)n * 3073);
	free(b);
}

/* ---- a small PNG encoder: every filter type, any colour type ---- */

static void chunk(FILE *f, const char *type, const uint8_t *d, uint32_t len)
{
	uint8_t head[8], tail[4];
	put32(head, len);
	memcpy(head + 4, type, 4);
	uLong crc = crc32(0, (const Bytef *)type, 4);
	crc = len ? crc32(crc, d, len) : crc;   /* crc32(crc, NULL, 0) is 0, not crc */
	put32(tail, (uint32_t)crc);
	fwrite(head, 1, 8, f);
	if (len)
		fwrite(d, 1, len, f);
	fwrite(tail, 1, 4, f);
}

static int paeth(int a, int b, int c)
{
	int pa = abs(b - c), pb = abs(a - c), pc = abs(a + b - 2 * c);
	return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/* rows: h rows of n bytes (packed samples); row y uses filter y % 5. */
static void write_png(const char *path, int type, int depth, int w, int h, const uint8_t *rows,
                      int n, const uint8_t *plte, int nplte)
{
	static const int channels[7] = { 1, 0, 3, 1, 2, 0, 4 };
	int bpp = channels[type] * depth / 8 > 0 ? channels[type] * depth / 8 : 1;
	size_t rawlen = (size_t)h * (size_t)(n + 1);
	uint8_t *raw = malloc(rawlen), *z = malloc(compressBound(rawlen));
	for (int y = 0; y < h; y++) {
		const uint8_t *r = rows + y * n, *up = y ? r - n : NULL;
		uint8_t *o = raw + (size_t)y * (n + 1);
		o[0] = (uint8_t)(y % 5);
		for (int i = 0; i < n; i++) {
			int a = i >= bpp ? r[i - bpp] : 0, b = up ? up[i] : 0, c = up && i >= bpp ? up[i - bpp] : 0;
			int pred = o[0] == 1 ? a : o[0] == 2 ? b : o[0] == 3 ? (a + b) / 2 : o[0] == 4 ? paeth(a, b, c) : 0;
			o[1 + i] = (uint8_t)(r[i] - pred);
		}
	}
	uLongf zlen = compressBound(rawlen);
	assert_int_equal(compress(z, &zlen, raw, rawlen), Z_OK);
	uint8_t ihdr[13] = { 0 };
	put32(ihdr, (uint32_t)w), put32(ihdr + 4, (uint32_t)h);
	ihdr[8] = (uint8_t)depth, ihdr[9] = (uint8_t)type;
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	fwrite("\x89PNG\r\n\x1a\n", 1, 8, f);
	chunk(f, "IHDR", ihdr, 13);
	chunk(f, "tEXt", (const uint8_t *)"Comment\0test", 12);
	if (plte)
		chunk(f, "PLTE", plte, (uint32_t)(3 * nplte));
	uint32_t half = (uint32_t)zlen / 2;      /* two IDAT chunks */
	chunk(f, "IDAT", z, half);
	chunk(f, "IDAT", z + half, (uint32_t)zlen - half);
	chunk(f, "IEND", NULL, 0);
	assert_int_equal(fclose(f), 0);
	free(raw);
	free(z);
}

/* 8-bit image i of pat(): grey (channel 0), RGB, or RGBA (alpha 7). */
static void png_of(const char *path, int i, int type, int h, int w)
{
	static const int channels[7] = { 1, 0, 3, 1, 2, 0, 4 };
	int ch = channels[type], n = w * ch;
	uint8_t *rows = malloc((size_t)(h * n));
	for (int y = 0; y < h; y++)
		for (int x = 0; x < w; x++)
			for (int c = 0; c < ch; c++)
				rows[y * n + x * ch + c] = c == 3 || (type == 4 && c == 1) ? 7 : pat(i, c, y, x);
	write_png(path, type, 8, w, h, rows, n, NULL, 0);
	free(rows);
}

static int remove_one(const char *p, const struct stat *s, int flag, struct FTW *f)
{
	(void)s, (void)flag, (void)f;
	return remove(p);
}

static int setup(void **state)
{
	(void)state;
	const char *base = getenv("TMPDIR");
	snprintf(tmp, sizeof tmp, "%s/ddpmc_data_XXXXXX", base && *base ? base : "/tmp");
	return mkdtemp(tmp) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	return nftw(tmp, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void subdir(const char *name)
{
	assert_int_equal(mkdir(at(name), 0755), 0);
}

/* Opens spec, which must succeed with n images c x h x w. */
static rt_images open_ok(const char *spec, int64_t n, int64_t c, int64_t h, int64_t w)
{
	rt_images im;
	char err[1024] = "";
	if (rt_dataset_open(spec, c, h, w, NULL, &im, err, sizeof err) != RT_OK)
		fail_msg("%s: want success, got: %s", spec, err);
	if (im.n != n || im.c != c || im.h != h || im.w != w)
		fail_msg("%s: got %lld x %lld x %lld x %lld, want %lld x %lld x %lld x %lld", spec,
		         (long long)im.n, (long long)im.c, (long long)im.h, (long long)im.w,
		         (long long)n, (long long)c, (long long)h, (long long)w);
	return im;
}

/* Checks that image i of im is image src of pat() (grey: channel 0). */
static void expect_pattern(const rt_images *im, int64_t i, int src, int grey)
{
	for (int c = 0; c < im->c; c++)
		for (int y = 0; y < im->h; y++)
			for (int x = 0; x < im->w; x++) {
				uint8_t got = im->pixels[((i * im->c + c) * im->h + y) * im->w + x];
				uint8_t want = pat(src, grey ? 0 : c, y, x);
				if (got != want)
					fail_msg("image %lld c%d y%d x%d: got %d, want %d (image %d of the pattern)",
					         (long long)i, c, y, x, got, want, src);
			}
}

/* Opening spec fails with one line that starts with `who` and holds `says`. */
static void expect_error(const char *spec, int64_t c, int64_t h, int64_t w, const char *who,
                         const char *says)
{
	rt_images im;
	char err[1024] = "";
	if (rt_dataset_open(spec, c, h, w, NULL, &im, err, sizeof err) == RT_OK)
		fail_msg("%s: want an error saying '%s', got %lld images", spec, says, (long long)im.n);
	assert_null(im.pixels);
	if (strncmp(err, who, strlen(who)) != 0 || err[strlen(who)] != ':')
		fail_msg("%s: the message does not start with '%s:': %s", spec, who, err);
	if (!strstr(err, says) || strchr(err, '\n'))
		fail_msg("%s: want one line saying '%s', got: %s", spec, says, err);
	print_message("    %s\n", err);
}

/* ---- formats ---- */

static void test_idx_raw_and_gz(void **state)
{
	(void)state;
	write_idx(at("raw-idx"), 0x803, 3, 5, 4, 0, 0);
	write_idx(at("gz-idx.gz"), 0x803, 3, 5, 4, 1, 0);
	const char *specs[] = { at("raw-idx"), at("gz-idx.gz") };
	for (int s = 0; s < 2; s++) {
		rt_images im = open_ok(specs[s], 3, 1, 5, 4);
		for (int i = 0; i < 3; i++)
			expect_pattern(&im, i, i, 1);
		rt_images_free(&im);
		/* the reader train.c used keeps working */
		char err[256];
		assert_int_equal(rt_idx_read_images(specs[s], &im, err, sizeof err), RT_OK);
		assert_int_equal(im.n * im.c * im.h * im.w, 3 * 5 * 4);
		expect_pattern(&im, 2, 2, 1);
		rt_images_free(&im);
	}
	/* a folder holding train-images-idx3-ubyte.gz, as Debian's */
	subdir("idxdir");
	write_idx(at("idxdir/train-images-idx3-ubyte.gz"), 0x803, 2, 5, 4, 1, 0);
	rt_images im = open_ok(at("idxdir"), 2, 1, 5, 4);
	expect_pattern(&im, 1, 1, 1);
	rt_images_free(&im);
}

static void test_fashion_mnist_spec(void **state)
{
	(void)state;
	if (access(RT_FASHION_MNIST, R_OK) != 0) {
		print_message("    skipped: %s is not installed\n", RT_FASHION_MNIST);
		return;
	}
	rt_images im = open_ok("fashion-mnist", 60000, 1, 28, 28);
	rt_images_free(&im);
	expect_error("fashion-mnist", 3, 32, 32, RT_FASHION_MNIST,
	             "images are 28x28 grey, the model takes 32x32 RGB");
}

static void test_cifar_file_and_folder(void **state)
{
	(void)state;
	subdir("cifar");
	write_cifar(at("cifar/data_batch_1.bin"), 0, 2, -1);
	write_cifar(at("cifar/data_batch_2.bin"), 2, 1, -1);
	write_cifar(at("cifar/data_batch_10.bin"), 3, 1, -1);   /* numeric order: after 2 */
	write_cifar(at("cifar/test_batch.bin"), 90, 1, -1);     /* not read */
	write_bytes(at("cifar/batches.meta.txt"), "airplane\n", 9);
	rt_images im = open_ok(at("cifar/data_batch_1.bin"), 2, 3, 32, 32);
	expect_pattern(&im, 0, 0, 0);
	expect_pattern(&im, 1, 1, 0);
	rt_images_free(&im);
	im = open_ok(at("cifar"), 4, 3, 32, 32);
	for (int i = 0; i < 4; i++)
		expect_pattern(&im, i, i, 0);
	rt_images_free(&im);
}

static void test_png_folder_grey(void **state)
{
	(void)state;
	subdir("grey");
	png_of(at("grey/b.png"), 1, 0, 6, 5);
	png_of(at("grey/a.png"), 0, 0, 6, 5);
	png_of(at("grey/c.PNG"), 2, 4, 6, 5);          /* grey + alpha: alpha dropped */
	write_bytes(at("grey/notes.txt"), "x", 1);
	png_of(at("grey/.hidden.png"), 9, 0, 2, 2);     /* skipped, though the wrong size */
	/* 16-bit grey: v = 257 * k reads as k */
	uint8_t rows16[6 * 10];
	for (int y = 0; y < 6; y++)
		for (int x = 0; x < 5; x++)
			rows16[y * 10 + 2 * x] = rows16[y * 10 + 2 * x + 1] = pat(3, 0, y, x);
	write_png(at("grey/d.png"), 0, 16, 5, 6, rows16, 10, NULL, 0);
	rt_images im = open_ok(at("grey"), 4, 1, 6, 5);
	for (int i = 0; i < 4; i++)
		expect_pattern(&im, i, i, 1);
	assert_null(im.labels);                 /* no class folders */
	rt_images_free(&im);
	/* one PNG file is a data set of one image */
	im = open_ok(at("grey/b.png"), 1, 1, 6, 5);
	expect_pattern(&im, 0, 1, 1);
	rt_images_free(&im);
}

static void test_png_folder_rgb(void **state)
{
	(void)state;
	subdir("rgb");
	png_of(at("rgb/0.png"), 0, 2, 7, 9);
	png_of(at("rgb/1.png"), 1, 6, 7, 9);            /* RGBA: alpha dropped */
	/* a 4-bit palette image of image 2's grey plane (16 levels) */
	uint8_t plte[16 * 3], rows[7 * 5] = { 0 };
	for (int k = 0; k < 16; k++)
		plte[3 * k] = (uint8_t)(k * 16), plte[3 * k + 1] = (uint8_t)(k * 16 + 1),
		plte[3 * k + 2] = (uint8_t)(k * 16 + 2);
	for (int y = 0; y < 7; y++)
		for (int x = 0; x < 9; x++)
			rows[y * 5 + x / 2] |= (uint8_t)((x + y) % 16 << (x % 2 ? 0 : 4));
	write_png(at("rgb/2.png"), 3, 4, 9, 7, rows, 5, plte, 16);
	rt_images im = open_ok(at("rgb"), 3, 3, 7, 9);
	expect_pattern(&im, 0, 0, 0);
	expect_pattern(&im, 1, 1, 0);
	for (int c = 0; c < 3; c++)
		for (int y = 0; y < 7; y++)
			for (int x = 0; x < 9; x++)
				assert_int_equal(im.pixels[((2 * 3 + c) * 7 + y) * 9 + x], (x + y) % 16 * 16 + c);
	rt_images_free(&im);
}

/* ---- scaling, flips, order, loader ---- */

static void test_scaling(void **state)
{
	(void)state;
	uint8_t px[2 * 1 * 1 * 3] = { 0, 255, 51, 1, 2, 3 };
	rt_images im = { 2, 1, 1, 3, px, NULL, NULL, NULL };
	float out[9];
	rt_images_batch(&im, 1, 3, out);        /* wraps: images 1, 0, 1 */
	const float want[9] = { 1 / 127.5f - 1, 2 / 127.5f - 1, 3 / 127.5f - 1, -1, 1,
	                        51 / 127.5f - 1, 1 / 127.5f - 1, 2 / 127.5f - 1, 3 / 127.5f - 1 };
	for (int k = 0; k < 9; k++)
		if (out[k] != want[k])
			fail_msg("element %d: got %.9g, want %.9g", k, out[k], want[k]);
	assert_true(out[3] == -1.0f && out[4] == 1.0f);
}

static void test_flip(void **state)
{
	(void)state;
	uint8_t px[2 * 2 * 3];                  /* one image, c 2, h 2, w 3 */
	for (int k = 0; k < 12; k++)
		px[k] = (uint8_t)(k * 20);
	rt_images im = { 1, 2, 2, 3, px, NULL, NULL, NULL };
	float out[12];
	rt_images_scaled(&im, 0, 1, out);
	for (int row = 0; row < 4; row++)
		for (int x = 0; x < 3; x++)
			assert_true(out[row * 3 + x] == (float)px[row * 3 + 2 - x] / 127.5f - 1.0f);
	/* about half the positions flip, and always the same ones */
	int flips = 0;
	for (int64_t q = 0; q < 4000; q++)
		flips += rt_data_flipped(5, q);
	if (flips < 1850 || flips > 2150)
		fail_msg("%d of 4000 positions flip, want about 2000", flips);
	assert_int_equal(rt_data_flipped(5, 1234), rt_data_flipped(5, 1234));
}

static void test_order(void **state)
{
	(void)state;
	enum { N = 10007 };                     /* more than one chunk of uniforms */
	int64_t *perm = malloc(N * sizeof *perm), *again = malloc(N * sizeof *perm),
	        *ref = malloc(N * sizeof *perm);
	float *u = malloc(N * sizeof *u);
	char *seen = calloc(N, 1);
	rt_data_order(N, 42, 3, perm);
	for (int i = 0; i < N; i++) {
		assert_true(perm[i] >= 0 && perm[i] < N && !seen[perm[i]]);
		seen[perm[i]] = 1;
	}
	/* the contract, written out with the whole stream at once */
	rt_philox_uniform(42, RT_DATA_SHUFFLE_STREAM + 3, 0, N, u);
	for (int64_t i = 0; i < N; i++)
		ref[i] = i;
	for (int64_t i = N - 1; i > 0; i--) {
		int64_t j = (int64_t)((double)u[i] * (double)(i + 1)), t;
		j = j > i ? i : j;
		t = ref[i], ref[i] = ref[j], ref[j] = t;
	}
	assert_memory_equal(perm, ref, N * sizeof *perm);
	rt_data_order(N, 42, 3, again);
	assert_memory_equal(perm, again, N * sizeof *perm);
	rt_data_order(N, 42, 4, again);
	assert_memory_not_equal(perm, again, N * sizeof *perm);
	rt_data_order(N, 43, 3, again);
	assert_memory_not_equal(perm, again, N * sizeof *perm);
	rt_data_order(1, 42, 0, again);
	assert_int_equal(again[0], 0);
	free(perm), free(again), free(ref), free(u), free(seen);
}

/* The batch at position pos by the contract, one image at a time. */
static void reference_batch(const rt_images *im, uint64_t seed, int flip, int64_t pos,
                            int64_t b, float *out)
{
	int64_t chw = im->c * im->h * im->w, *perm = malloc((size_t)im->n * sizeof *perm);
	for (int64_t k = 0; k < b; k++) {
		int64_t q = pos + k;
		rt_data_order(im->n, seed, q / im->n, perm);
		rt_images_scaled(im, perm[q % im->n], flip && rt_data_flipped(seed, q), out + k * chw);
	}
	free(perm);
}

static void test_loader_order_and_resume(void **state)
{
	(void)state;
	enum { N = 7, C = 1, H = 2, W = 3, B = 3, STEPS = 12 };    /* batches cross epochs */
	uint8_t px[N * C * H * W];
	for (int k = 0; k < N * C * H * W; k++)
		px[k] = (uint8_t)(k * 5);
	rt_images im = { N, C, H, W, px, NULL, NULL, NULL };
	float got[B * C * H * W], want[B * C * H * W], all[STEPS][B * C * H * W];
	char err[256];
	for (int flip = 0; flip < 2; flip++) {
		rt_loader *ld;
		int64_t pos = -1;
		assert_int_equal(rt_loader_open(&im, B, 9, flip, 0, 0, 1, &ld, err, sizeof err), RT_OK);
		for (int s = 0; s < STEPS; s++) {
			rt_loader_next(ld, all[s], NULL, &pos);
			assert_int_equal(pos, (s + 1) * B);
			reference_batch(&im, 9, flip, s * B, B, want);
			if (memcmp(all[s], want, sizeof want))
				fail_msg("flip %d, batch %d differs from the order contract", flip, s);
		}
		rt_loader_close(ld);
		/* resume at the position stored after 5 steps: the same batches follow */
		assert_int_equal(rt_loader_open(&im, B, 9, flip, 5 * B, 0, 1, &ld, err, sizeof err), RT_OK);
		for (int s = 5; s < STEPS; s++) {
			rt_loader_next(ld, got, NULL, &pos);
			if (memcmp(got, all[s], sizeof got))
				fail_msg("flip %d: resumed batch %d differs from the uninterrupted run", flip, s);
		}
		assert_int_equal(pos, STEPS * B);
		rt_loader_close(ld);
	}
	/* each epoch holds every image once */
	rt_loader *ld;
	assert_int_equal(rt_loader_open(&im, 1, 9, 0, 2 * N, 0, 1, &ld, err, sizeof err), RT_OK);
	int seen = 0;
	for (int k = 0; k < N; k++) {
		rt_loader_next(ld, got, NULL, NULL);
		seen |= 1 << (int)((got[0] + 1.0f) * 127.5f + 0.5f) / 5 / (C * H * W);
	}
	assert_int_equal(seen, (1 << N) - 1);
	rt_loader_close(ld);
	rt_loader_close(NULL);
	assert_int_equal(rt_loader_open(&im, 0, 9, 0, 0, 0, 1, &ld, err, sizeof err), RT_ERR);
	assert_null(ld);
	assert_int_equal(rt_loader_open(&im, 2, 9, 0, -1, 0, 1, &ld, err, sizeof err), RT_ERR);
	assert_int_equal(rt_loader_open(&im, 2, 9, 0, 0, 2, 2, &ld, err, sizeof err), RT_ERR);
}

/* Shards 0..R-1 of batch B read, step by step, the parts of the batch one
 * loader of batch R * B reads, across epochs and from a resumed position;
 * each reports the global position. */
static void test_loader_shards(void **state)
{
	(void)state;
	enum { N = 7, C = 1, H = 2, W = 3, B = 2, R = 3, STEPS = 5, CHW = C * H * W };
	uint8_t px[N * CHW];
	for (int k = 0; k < N * CHW; k++)
		px[k] = (uint8_t)(k * 5);
	rt_images im = { N, C, H, W, px, NULL, NULL, NULL };
	float whole[R * B * CHW], part[B * CHW];
	char err[256];
	rt_loader *one, *shard[R];
	assert_int_equal(rt_loader_open(&im, R * B, 9, 1, 4, 0, 1, &one, err, sizeof err), RT_OK);
	for (int r = 0; r < R; r++)
		assert_int_equal(rt_loader_open(&im, B, 9, 1, 4, r, R, &shard[r], err, sizeof err), RT_OK);
	for (int s = 0; s < STEPS; s++) {
		int64_t pos = -1, spos = -1;
		rt_loader_next(one, whole, NULL, &pos);
		for (int r = 0; r < R; r++) {
			rt_loader_next(shard[r], part, NULL, &spos);
			if (memcmp(part, whole + r * B * CHW, sizeof part))
				fail_msg("step %d: shard %d of %d differs from its part of the global batch", s, r, R);
			assert_int_equal(spos, pos);
		}
	}
	rt_loader_close(one);
	for (int r = 0; r < R; r++)
		rt_loader_close(shard[r]);
}

/* ---- labels ---- */

/* rt_dataset_labels on spec fails with one line holding `says`. */
static void expect_label_error(const char *spec, rt_images *im, const char *says)
{
	char err[1024] = "";
	if (rt_dataset_labels(spec, im, err, sizeof err) == RT_OK)
		fail_msg("%s: want a labels error saying '%s', got labels", spec, says);
	assert_null(im->labels);
	if (!strstr(err, says) || strchr(err, '\n'))
		fail_msg("%s: want one line saying '%s', got: %s", spec, says, err);
	print_message("    %s\n", err);
}

/* The labels file beside the images (gzipped beside gzipped, raw beside a
 * folder's raw file, gzipped beside raw), the loader's labels in batch
 * order, and the errors: missing file, wrong count, wrong magic, a data
 * set that is not IDX. */
static void test_labels(void **state)
{
	(void)state;
	char err[1024];
	subdir("lab");
	write_idx(at("lab/train-images-idx3-ubyte.gz"), 0x803, 5, 2, 3, 1, 0);
	rt_images im = open_ok(at("lab/train-images-idx3-ubyte.gz"), 5, 1, 2, 3);
	expect_label_error(at("lab/train-images-idx3-ubyte.gz"), &im, "train-labels-idx1-ubyte.gz: "
	                   "cannot open");
	write_labels(at("lab/train-labels-idx1-ubyte.gz"), 4, 0, 1);
	expect_label_error(at("lab/train-images-idx3-ubyte.gz"), &im, "4 labels for 5 images");
	write_labels(at("lab/train-labels-idx1-ubyte.gz"), 5, 1, 1);
	expect_label_error(at("lab/train-images-idx3-ubyte.gz"), &im, "holds more");
	write_labels(at("lab/train-labels-idx1-ubyte.gz"), 5, -1, 1);
	expect_label_error(at("lab/train-images-idx3-ubyte.gz"), &im, "short read");
	write_idx(at("lab/train-labels-idx1-ubyte.gz"), 0x803, 5, 2, 3, 1, 0);
	expect_label_error(at("lab/train-images-idx3-ubyte.gz"), &im, "not an IDX labels file");
	write_labels(at("lab/train-labels-idx1-ubyte.gz"), 5, 0, 1);
	if (rt_dataset_labels(at("lab/train-images-idx3-ubyte.gz"), &im, err, sizeof err) != RT_OK)
		fail_msg("labels: %s", err);
	for (int i = 0; i < 5; i++)
		assert_int_equal(im.labels[i], i * 3 % 10);
	/* the loader hands each image's label with it */
	rt_loader *ld;
	float x[3 * 6];
	int32_t lab[3];
	int64_t order[5];
	assert_int_equal(rt_loader_open(&im, 3, 4, 0, 0, 0, 1, &ld, err, sizeof err), RT_OK);
	rt_data_order(5, 4, 0, order);
	rt_loader_next(ld, x, lab, NULL);
	for (int k = 0; k < 3; k++) {
		assert_int_equal(lab[k], order[k] * 3 % 10);
		assert_float_equal(x[k * 6], pat((int)order[k], 0, 0, 0) / 127.5 - 1, 1e-6);
	}
	rt_loader_close(ld);
	rt_images_free(&im);
	/* a folder's raw images, gzipped labels beside them */
	subdir("labdir");
	write_idx(at("labdir/train-images-idx3-ubyte"), 0x803, 2, 2, 3, 0, 0);
	write_labels(at("labdir/train-labels-idx1-ubyte.gz"), 2, 0, 1);
	im = open_ok(at("labdir"), 2, 1, 2, 3);
	if (rt_dataset_labels(at("labdir"), &im, err, sizeof err) != RT_OK)
		fail_msg("labels: %s", err);
	assert_int_equal(im.labels[1], 3);
	rt_images_free(&im);
	/* the test set beside a training set */
	write_idx(at("labdir/t10k-images-idx3-ubyte.gz"), 0x803, 2, 2, 3, 1, 0);
	char path[1024];
	assert_int_equal(rt_idx_sibling(at("labdir"), "train-", "t10k-", path, sizeof path, err,
	                                sizeof err), RT_OK);
	assert_string_equal(path, at("labdir/t10k-images-idx3-ubyte.gz"));
	/* not IDX: CIFAR has no labels file */
	write_cifar(at("lab/data_batch_1.bin"), 0, 2, 0);
	im = open_ok(at("lab/data_batch_1.bin"), 2, 3, 32, 32);
	expect_label_error(at("lab/data_batch_1.bin"), &im, "not an IDX data set");
	rt_images_free(&im);
}

/* ---- bad input ---- */

static void test_bad_idx(void **state)
{
	(void)state;
	expect_error(at("nothing-here"), 1, 28, 28, at("nothing-here"), "cannot open: No such file");
	write_idx(at("labels"), 0x801, 3, 5, 4, 0, 0);
	expect_error(at("labels"), 1, 5, 4, at("labels"), "not an IDX image file (magic 0x00000801");
	write_idx(at("zero-dims"), 0x803, 0, 5, 4, 0, 0);
	expect_error(at("zero-dims"), 1, 5, 4, at("zero-dims"), "implausible dimensions 0 x 5 x 4");
	write_idx(at("short"), 0x803, 3, 5, 4, 0, -7);
	expect_error(at("short"), 1, 5, 4, at("short"), "short read: the header promises 3 images");
	write_idx(at("short.gz"), 0x803, 3, 5, 4, 1, -7);
	expect_error(at("short.gz"), 1, 5, 4, at("short.gz"), "short read");
	write_idx(at("long"), 0x803, 3, 5, 4, 0, 5);
	expect_error(at("long"), 1, 5, 4, at("long"), "data after the 3 images");
	write_bytes(at("header-only"), "\0\0\x08\x03\0\0", 6);
	expect_error(at("header-only"), 1, 5, 4, at("header-only"), "too short for an IDX header");
	write_idx(at("idx28"), 0x803, 2, 28, 28, 0, 0);
	expect_error(at("idx28"), 1, 32, 32, at("idx28"), "images are 28x28 grey, the model takes 32x32 grey");
	expect_error(at("idx28"), 3, 28, 28, at("idx28"), "the model takes 28x28 RGB");
	/* a gzip stream cut short, and one with a damaged deflate body */
	write_idx(at("cut.gz"), 0x803, 3, 5, 4, 1, 0);
	size_t len;
	uint8_t *b = read_bytes(at("cut.gz"), &len);
	write_bytes(at("cut.gz"), b, len - 6);
	expect_error(at("cut.gz"), 1, 5, 4, at("cut.gz"), "truncated gzip stream");
	for (size_t k = 12; k < len - 8; k++)
		b[k] ^= 0x5a;
	write_bytes(at("bad.gz"), b, len);
	expect_error(at("bad.gz"), 1, 5, 4, at("bad.gz"), "corrupt or unreadable");
	free(b);
	write_bytes(at("empty"), "", 0);
	expect_error(at("empty"), 1, 5, 4, at("empty"), "empty file");
	write_bytes(at("junk.txt"), "hello, world", 12);
	expect_error(at("junk.txt"), 1, 5, 4, at("junk.txt"), "not a data set ddpmc reads");
	expect_error(at("idx28"), 0, 28, 28, at("idx28"), "the model's image size 0x28x28");
}

static void test_bad_cifar(void **state)
{
	(void)state;
	write_cifar(at("trunc.bin"), 0, 2, -1);
	size_t len;
	uint8_t *b = read_bytes(at("trunc.bin"), &len);
	write_bytes(at("trunc.bin"), b, len - 100);
	expect_error(at("trunc.bin"), 3, 32, 32, at("trunc.bin"),
	             "truncated or corrupt: 6046 bytes is not a whole number of 3073-byte");
	free(b);
	write_cifar(at("label.bin"), 0, 2, 200);
	expect_error(at("label.bin"), 3, 32, 32, at("label.bin"), "record 0 has label 200, not 0..9");
	write_bytes(at("empty.bin"), "", 0);
	expect_error(at("empty.bin"), 3, 32, 32, at("empty.bin"), "empty");
	write_cifar(at("ok.bin"), 0, 1, -1);
	expect_error(at("ok.bin"), 1, 28, 28, at("ok.bin"),
	             "images are 32x32 RGB, the model takes 28x28 grey");
	/* one bad batch in a folder names that file */
	subdir("cifar-bad");
	write_cifar(at("cifar-bad/data_batch_1.bin"), 0, 1, -1);
	write_cifar(at("cifar-bad/data_batch_2.bin"), 0, 1, 11);
	expect_error(at("cifar-bad"), 3, 32, 32, at("cifar-bad/data_batch_2.bin"), "label 11");
}

/* A copy of a valid PNG with byte k changed; with fix_ihdr, IHDR's CRC is
 * made right again. */
static void png_with_byte(const char *src, const char *dst, size_t k, uint8_t v, int fix_ihdr)
{
	size_t len;
	uint8_t *b = read_bytes(src, &len);
	b[k] = v;
	if (fix_ihdr)
		put32(b + 8 + 8 + 13, (uint32_t)crc32(0, b + 12, 17));
	write_bytes(dst, b, len);
	free(b);
}

/* A copy of the valid PNG src (IHDR, tEXt, then its data) with an empty
 * IDAT chunk before the data or, without keep_data, in its place. */
static void png_empty_idat(const char *src, const char *dst, int keep_data)
{
	size_t len, data = 8 + 25 + 24;
	uint8_t *b = read_bytes(src, &len);
	FILE *f = fopen(dst, "wb");
	assert_non_null(f);
	fwrite(b, 1, data, f);
	chunk(f, "IDAT", NULL, 0);
	if (keep_data)
		fwrite(b + data, 1, len - data, f);
	else
		chunk(f, "IEND", NULL, 0);
	assert_int_equal(fclose(f), 0);
	free(b);
}

/* A copy of the valid PNG src (IHDR, tEXt, then its data) whose image data
 * is the zlib stream z in one IDAT, then a chunk of type `after` (NULL:
 * none) and IEND. */
static void png_with_stream(const char *src, const char *dst, const uint8_t *z, size_t zlen,
                            const char *after)
{
	size_t len, data = 8 + 25 + 24;
	uint8_t *b = read_bytes(src, &len);
	FILE *f = fopen(dst, "wb");
	assert_non_null(f);
	fwrite(b, 1, data, f);
	chunk(f, "IDAT", z, (uint32_t)zlen);
	if (after)
		chunk(f, after, NULL, 0);
	chunk(f, "IEND", NULL, 0);
	assert_int_equal(fclose(f), 0);
	free(b);
}

static void test_bad_png(void **state)
{
	(void)state;
	subdir("pngs");
	png_of(at("pngs/x.png"), 0, 0, 30, 30);
	expect_error(at("pngs"), 1, 28, 28, at("pngs/x.png"), "30x30, the model takes 28x28");
	expect_error(at("pngs/x.png"), 1, 28, 28, at("pngs/x.png"), "30x30, the model takes 28x28");
	expect_error(at("pngs"), 2, 30, 30, at("pngs/x.png"), "image files give 1 (grey) or 3 (RGB)");
	subdir("colour");
	png_of(at("colour/c.png"), 0, 2, 4, 4);
	expect_error(at("colour"), 1, 4, 4, at("colour/c.png"),
	             "an RGB image, the model takes grey images (--grey converts");
	subdir("grey-for-rgb");
	png_of(at("grey-for-rgb/g.png"), 0, 0, 4, 4);
	expect_error(at("grey-for-rgb"), 3, 4, 4, at("grey-for-rgb/g.png"),
	             "a grey image, the model takes RGB images (--rgb replicates");
	subdir("empty-dir");
	expect_error(at("empty-dir"), 1, 4, 4, at("empty-dir"), "no data in this folder");
	char v[512];    /* at()'s buffers rotate */
	snprintf(v, sizeof v, "%s", at("valid.png"));
	png_of(v, 0, 0, 4, 4);
	/* signature, IHDR, IDAT payload, truncation (stb_image checks no CRC) */
	png_with_byte(v, at("sig.png"), 1, 'Q', 0);
	expect_error(at("sig.png"), 1, 4, 4, at("sig.png"), "not an image ddpmc reads (stb_image: ");
	png_with_byte(v, at("sig-noext"), 1, 'Q', 0);
	expect_error(at("sig-noext"), 1, 4, 4, at("sig-noext"), "not a data set ddpmc reads");
	subdir("sigdir");
	png_with_byte(v, at("sigdir/s.png"), 1, 'Q', 0);
	expect_error(at("sigdir"), 1, 4, 4, at("sigdir/s.png"), "not an image ddpmc reads");
	png_with_byte(v, at("depth.png"), 8 + 8 + 8, 3, 1);     /* bit depth 3 */
	expect_error(at("depth.png"), 1, 4, 4, at("depth.png"), "not an image ddpmc reads");
	png_with_byte(v, at("depth33.png"), 8 + 8 + 8, 33, 1);
	expect_error(at("depth33.png"), 1, 4, 4, at("depth33.png"), "not an image ddpmc reads");
	/* an unknown critical chunk: stb_image quotes its type, here "\nEXt" */
	png_with_byte(v, at("chunk.png"), 8 + 25 + 4, '\n', 0);
	expect_error(at("chunk.png"), 1, 4, 4, at("chunk.png"), "?EXt");
	size_t len;
	uint8_t *b = read_bytes(v, &len);
	write_bytes(at("cut.png"), b, len - 20);
	expect_error(at("cut.png"), 1, 4, 4, at("cut.png"), "a chunk claims more bytes than the file");
	/* an IDAT that claims 1 GiB in a file of 100 bytes is refused before
	 * stb_image allocates it (found by tests/fuzz/fuzz_png) */
	png_with_byte(v, at("huge-idat.png"), 8 + 25 + 24, 0x3f, 0);
	expect_error(at("huge-idat.png"), 1, 4, 4, at("huge-idat.png"),
	             "corrupt PNG: a chunk claims more bytes than the file holds");
	/* an empty IDAT chunk is legal, and one with nothing after it is a PNG
	 * without pixels (found by tests/fuzz/fuzz_png, which saw stb_image
	 * copy the empty chunk's 0 bytes to a NULL buffer) */
	png_empty_idat(v, at("empty-idat.png"), 1);
	rt_images im = open_ok(at("empty-idat.png"), 1, 1, 4, 4);
	expect_pattern(&im, 0, 0, 1);
	rt_images_free(&im);
	png_empty_idat(v, at("no-pixels.png"), 0);
	expect_error(at("no-pixels.png"), 1, 4, 4, at("no-pixels.png"), "(stb_image: no IDAT)");
	/* a PPM whose width overflows stb_image's int (found by tests/fuzz/fuzz_png) */
	write_bytes(at("wide.ppm"), (const uint8_t *)"P661666666661\377\217", 15);
	expect_error(at("wide.ppm"), 1, 4, 4, at("wide.ppm"),
	             "corrupt PNM: a number in its header has more than 9 digits");
	write_bytes(at("wider.ppm"), (const uint8_t *)"P6 708888888888888888888825 1 255\n", 34);
	expect_error(at("wider.ppm"), 1, 4, 4, at("wider.ppm"), "more than 9 digits");
	int64_t fh, fw;
	char err[512];
	assert_int_equal(rt_image_size(v, &fh, &fw, err, sizeof err), RT_OK);
	assert_true(fh == 4 && fw == 4);
	assert_int_equal(rt_image_size(at("wide.ppm"), &fh, &fw, err, sizeof err), RT_ERR);
	assert_non_null(strstr(err, "more than 9 digits"));
	write_bytes(at("tall.ppm"), (const uint8_t *)"P5 2 # c\n1234567890 255\n", 24);
	expect_error(at("tall.ppm"), 1, 4, 4, at("tall.ppm"), "more than 9 digits");
	/* a damaged zlib stream with valid CRCs: the IDATs start after IHDR and tEXt */
	size_t idat = 8 + 25 + 24, dlen = (size_t)b[idat] << 24 | b[idat + 1] << 16 | b[idat + 2] << 8 | b[idat + 3];
	assert_memory_equal(b + idat + 4, "IDAT", 4);
	b[idat + 8] ^= 0xff;    /* the zlib header */
	put32(b + idat + 8 + dlen, (uint32_t)crc32(0, b + idat + 4, (uInt)dlen + 4));
	write_bytes(at("zlib.png"), b, len);
	expect_error(at("zlib.png"), 1, 4, 4, at("zlib.png"),
	             "corrupt PNG: its image data is not a valid zlib stream "
	             "(zlib: incorrect header check)");
	b[idat + 8] ^= 0xff;
	put32(b + idat + 8 + dlen, (uint32_t)crc32(0, b + idat + 4, (uInt)dlen + 4));
	/* a stream that inflates to more than 4 x 4 grey pixels need (4 rows of
	 * a filter byte and 4 samples): stb_image would inflate all of it */
	uint8_t zeros[4096] = { 0 }, z[256];
	uLongf zlen = sizeof z;
	assert_int_equal(compress(z, &zlen, zeros, sizeof zeros), Z_OK);
	png_with_stream(v, at("bomb.png"), z, zlen, NULL);
	expect_error(at("bomb.png"), 1, 4, 4, at("bomb.png"),
	             "corrupt PNG: its image data inflates to more than the 20 bytes its size holds");
	/* Apple's CgBI chunk anywhere before IEND makes the data raw deflate
	 * for stb_image: this stream's zlib header is then no deflate block */
	zlen = sizeof z;
	assert_int_equal(compress(z, &zlen, zeros, 20), Z_OK);
	png_with_stream(v, at("exact.png"), z, zlen, NULL);
	im = open_ok(at("exact.png"), 1, 1, 4, 4);
	rt_images_free(&im);
	png_with_stream(v, at("cgbi.png"), z, zlen, "CgBI");
	expect_error(at("cgbi.png"), 1, 4, 4, at("cgbi.png"), "not a valid zlib stream");
	/* a palette of 5 colours, 8-bit indices in rows of every filter type:
	 * stb_image 2.27 takes a colour past the palette from an uninitialised
	 * array */
	uint8_t plte[15] = { 0, 0, 0, 255, 255, 255, 9, 9, 9, 40, 40, 40, 80, 80, 80 }, idx[6 * 6];
	for (int k = 0; k < 36; k++)
		idx[k] = (uint8_t)(k * 7 % 5);
	write_png(at("palette5.png"), 3, 8, 6, 6, idx, 6, plte, 5);
	im = open_ok(at("palette5.png"), 1, 3, 6, 6);
	assert_int_equal(im.pixels[34], 40);    /* red of pixel 34: colour 34 * 7 % 5 = 3 */
	assert_int_equal(im.pixels[35], 0);     /* colour 0 */
	rt_images_free(&im);
	idx[6 * 6 - 1] = 5;
	write_png(at("palette5-past.png"), 3, 8, 6, 6, idx, 6, plte, 5);
	expect_error(at("palette5-past.png"), 3, 6, 6, at("palette5-past.png"),
	             "corrupt PNG: a pixel is colour 5 of a palette of 5");
	/* a wrong Adler-32 at the stream's end, which stb_image 2.27 ignores */
	size_t idat2 = idat + 12 + dlen;
	size_t dlen2 = (size_t)b[idat2] << 24 | b[idat2 + 1] << 16 | b[idat2 + 2] << 8 | b[idat2 + 3];
	b[idat2 + 8 + dlen2 - 1] ^= 0x01;
	put32(b + idat2 + 8 + dlen2, (uint32_t)crc32(0, b + idat2 + 4, (uInt)dlen2 + 4));
	write_bytes(at("adler.png"), b, len);
	expect_error(at("adler.png"), 1, 4, 4, at("adler.png"), "(zlib: incorrect data check)");
	free(b);
}

/* ---- fuzz ---- */

static uint32_t fuzz_rand(uint32_t *s)
{
	*s ^= *s << 13, *s ^= *s >> 17, *s ^= *s << 5;
	return *s;
}

/* Opens path; an error must be one line that starts with the path. */
static int open_quietly(const char *path, int64_t c, int64_t h, int64_t w)
{
	rt_images im;
	char err[512];
	int rc = rt_dataset_open(path, c, h, w, NULL, &im, err, sizeof err);
	if (rc != RT_OK && (strncmp(err, path, strlen(path)) != 0 || strchr(err, '\n')))
		fail_msg("bad message for %s: %s", path, err);
	rt_images_free(&im);
	return rc;
}

/* Truncations of src must fail (except lengths in ok_multiple > 0 steps,
 * and cuts in the last ok_tail bytes: stb_image stops at a PNG's IEND
 * without reading its CRC); byte flips must not crash. */
static void fuzz_file(const char *src, const char *name, int64_t c, int64_t h, int64_t w,
                      size_t ok_multiple, size_t ok_tail, uint32_t seed)
{
	size_t len;
	uint8_t *b = read_bytes(src, &len), *m = malloc(len);
	const char *dst = at(name);
	for (int t = 0; t < 120; t++) {
		size_t cut = t < 20 ? (size_t)t : fuzz_rand(&seed) % len;
		write_bytes(dst, b, cut);
		int rc = open_quietly(dst, c, h, w);
		if (rc == RT_OK && !(ok_multiple && cut && cut % ok_multiple == 0) &&
		    cut + ok_tail < len)
			fail_msg("%s cut to %zu of %zu bytes was accepted", name, cut, len);
	}
	for (int t = 0; t < 200; t++) {
		memcpy(m, b, len);
		for (uint32_t k = 0, n = 1 + fuzz_rand(&seed) % 3; k < n; k++)
			m[fuzz_rand(&seed) % len] ^= (uint8_t)(1 + fuzz_rand(&seed) % 255);
		write_bytes(dst, m, len);
		open_quietly(dst, c, h, w);
	}
	free(b);
	free(m);
}

static void test_fuzz(void **state)
{
	(void)state;
	write_idx(at("f-raw"), 0x803, 3, 5, 4, 0, 0);
	write_idx(at("f-gz"), 0x803, 3, 5, 4, 1, 0);
	write_cifar(at("f.bin"), 0, 2, -1);
	png_of(at("f-grey.png"), 0, 0, 6, 5);
	png_of(at("f-rgba.png"), 1, 6, 6, 5);
	fuzz_file(at("f-raw"), "fz-raw", 1, 5, 4, 0, 0, 1);
	fuzz_file(at("f-gz"), "fz-gz", 1, 5, 4, 0, 0, 2);
	fuzz_file(at("f.bin"), "fz.bin", 3, 32, 32, 3073, 0, 3);
	fuzz_file(at("f-grey.png"), "fz-grey.png", 1, 6, 5, 0, 4, 4);
	fuzz_file(at("f-rgba.png"), "fz-rgba.png", 3, 6, 5, 0, 4, 5);
	fuzz_file(at("f-rgba.png"), "fz-rgba2.png", 1, 6, 5, 0, 4, 6);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_idx_raw_and_gz),
		cmocka_unit_test(test_fashion_mnist_spec),
		cmocka_unit_test(test_cifar_file_and_folder),
		cmocka_unit_test(test_png_folder_grey),
		cmocka_unit_test(test_png_folder_rgb),
		cmocka_unit_test(test_scaling),
		cmocka_unit_test(test_flip),
		cmocka_unit_test(test_order),
		cmocka_unit_test(test_loader_order_and_resume),
		cmocka_unit_test(test_loader_shards),
		cmocka_unit_test(test_labels),
		cmocka_unit_test(test_bad_idx),
		cmocka_unit_test(test_bad_cifar),
		cmocka_unit_test(test_bad_png),
		cmocka_unit_test(test_fuzz),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
