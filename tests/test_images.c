/* test_images: image files as data (data.h): the kinds stb_image decodes
 * (PNG grey, RGB and RGBA, JPEG, BMP, TGA, written here with
 * stb_image_write), image folders searched recursively with class labels
 * from their sub-folders, --resize and centre crops against values worked
 * out by hand, random crops drawn from the seed (the same at every
 * position however the run is split), and the channel rules: refusal
 * without --grey / --rgb, BT.601 luma and replication with them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <stb/stb_image_write.h>

#include "data.h"
#include "tensor.h"
#include "testutil.h"

static char dir[64];

static const char *at(const char *name)
{
	return tu_at(dir, name);
}

static void folder(const char *name)
{
	assert_int_equal(mkdir(at(name), 0755), 0);
}

/* Byte of channel c at (y, x) of image i: distinct everywhere. */
static uint8_t pat(int i, int c, int y, int x)
{
	return (uint8_t)(i * 37 + c * 101 + y * 13 + x * 7 + 3);
}

/* An h x w image of n interleaved channels of pat(i), alpha (c = 3) 9. */
static uint8_t *pattern(int i, int n, int h, int w)
{
	uint8_t *px = malloc((size_t)(n * h * w));
	for (int y = 0; y < h; y++)
		for (int x = 0; x < w; x++)
			for (int c = 0; c < n; c++)
				px[(y * w + x) * n + c] = c == 3 ? 9 : pat(i, c, y, x);
	return px;
}

/* Writes image i of pat() as path, its kind by the extension. */
static void write_image(const char *path, int i, int n, int h, int w)
{
	uint8_t *px = pattern(i, n, h, w);
	const char *ext = strrchr(path, '.');
	int ok = !strcasecmp(ext, ".png") ? stbi_write_png(path, w, h, n, px, w * n)
	       : !strcmp(ext, ".bmp") ? stbi_write_bmp(path, w, h, n, px)
	       : !strcmp(ext, ".tga") ? stbi_write_tga(path, w, h, n, px)
	       : stbi_write_jpg(path, w, h, n, px, 100);
	free(px);
	assert_true(ok);
}

static rt_images open_ok(const char *spec, const rt_image_opts *o, int64_t n, int64_t c,
                         int64_t h, int64_t w)
{
	rt_images im;
	char err[1024] = "";
	if (rt_dataset_open(spec, c, h, w, o, &im, err, sizeof err) != RT_OK)
		fail_msg("%s: want success, got: %s", spec, err);
	if (im.n != n)
		fail_msg("%s: %lld images, want %lld", spec, (long long)im.n, (long long)n);
	return im;
}

/* Opening spec fails with one line that starts with `who:` and holds `says`. */
static void expect_error(const char *spec, const rt_image_opts *o, int64_t c, int64_t h,
                         int64_t w, const char *who, const char *says)
{
	rt_images im;
	char err[1024] = "";
	if (rt_dataset_open(spec, c, h, w, o, &im, err, sizeof err) == RT_OK)
		fail_msg("%s: want an error saying '%s', got %lld images", spec, says, (long long)im.n);
	if (!tu_starts(err, who) || err[strlen(who)] != ':' || !strstr(err, says) ||
	    strchr(err, '\n'))
		fail_msg("%s: want one line '%s: ...%s...', got: %s", spec, who, says, err);
	print_message("    %s\n", err);
}

/* Pixel (c, y, x) of image i of im. */
static int px_of(const rt_images *im, int64_t i, int c, int y, int x)
{
	return im->pixels[((i * im->c + c) * im->h + y) * im->w + x];
}

/* Image i of im against image src of pat(), each byte within tol. */
static void expect_pattern(const rt_images *im, int64_t i, int src, int tol)
{
	for (int c = 0; c < im->c; c++)
		for (int y = 0; y < im->h; y++)
			for (int x = 0; x < im->w; x++)
				if (abs(px_of(im, i, c, y, x) - pat(src, c, y, x)) > tol)
					fail_msg("image %lld c%d y%d x%d: got %d, want %d (+-%d)", (long long)i, c,
					         y, x, px_of(im, i, c, y, x), pat(src, c, y, x), tol);
}

static const rt_image_opts as_is = { 0, RT_CROP_NONE, RT_CHANNELS_AS_IS };

static void test_kinds(void **state)
{
	(void)state;
	folder("kinds");
	write_image(at("kinds/a.png"), 0, 3, 6, 5);
	write_image(at("kinds/b.PNG"), 1, 4, 6, 5);     /* RGBA: alpha dropped */
	write_image(at("kinds/c.bmp"), 2, 3, 6, 5);
	write_image(at("kinds/d.tga"), 3, 3, 6, 5);
	write_image(at("kinds/e.jpg"), 4, 3, 6, 5);
	write_image(at("kinds/f.jpeg"), 5, 3, 6, 5);
	tu_write(dir, "kinds/notes.txt", "not an image", -1, (char[512]){ 0 }, 512);
	tu_write(dir, "kinds/.hidden.png", "skipped", -1, (char[512]){ 0 }, 512);
	rt_images im = open_ok(at("kinds"), &as_is, 6, 3, 6, 5);
	for (int i = 0; i < 4; i++)
		expect_pattern(&im, i, i, 0);
	/* baseline JPEG at quality 100 with 4:2:0 chroma: close, not exact */
	expect_pattern(&im, 4, 4, 40);
	expect_pattern(&im, 5, 5, 40);
	assert_null(im.labels);                 /* no class folders */
	rt_images_free(&im);
	/* a PNM header of width 0, which stb_image's header reader accepts
	 * (found by tests/fuzz/fuzz_png: a division by zero when resizing) */
	tu_write(dir, "zero.pgm", "P5\n0 5\n255\n", -1, (char[512]){ 0 }, 512);
	const rt_image_opts fit = { 1, RT_CROP_NONE, RT_CHANNELS_AS_IS };
	expect_error(at("zero.pgm"), &fit, 1, 2, 2, at("zero.pgm"), "header says 5x0 pixels");
	/* one file is a data set of one image */
	im = open_ok(at("kinds/c.bmp"), NULL, 1, 3, 6, 5);
	expect_pattern(&im, 0, 2, 0);
	rt_images_free(&im);
}

typedef struct {
	uint8_t bytes[4096];
	size_t len;
} jpeg_buf;

static void jpeg_append(void *ctx, void *data, int n)
{
	jpeg_buf *j = ctx;
	assert_true(j->len + (size_t)n <= sizeof j->bytes);
	memcpy(j->bytes + j->len, data, (size_t)n);
	j->len += (size_t)n;
}

/* Image i of pat() as a JPEG at path with, right after its SOI marker, a
 * DHT segment of one DC table (slot 0, which the file's own table then
 * replaces) of `codes` codes: 255 of 8 bits, then of 9, 10, ... */
static void jpeg_with_table(const char *path, int i, int codes)
{
	jpeg_buf j = { .len = 0 };
	uint8_t *px = pattern(i, 3, 6, 5);
	assert_true(stbi_write_jpg_to_func(jpeg_append, &j, 5, 6, 3, px, 100));
	free(px);
	int seg = 2 + 17 + codes;
	uint8_t dht[4 + 17] = { 0xff, 0xc4, (uint8_t)(seg >> 8), (uint8_t)seg, 0x00 };
	for (int k = 0, left = codes; k < 16; k++, left -= 255)   /* 8-bit codes first */
		dht[5 + (k + 7) % 16] = (uint8_t)(left > 255 ? 255 : left > 0 ? left : 0);
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	fwrite(j.bytes, 1, 2, f);
	fwrite(dht, 1, sizeof dht, f);
	for (int k = 0; k < codes; k++)
		fputc(k, f);
	fwrite(j.bytes + 2, 1, j.len - 2, f);
	assert_int_equal(fclose(f), 0);
}

/* stb_image 2.27 overruns its arrays on a Huffman table of over 256 codes
 * (found by tests/fuzz/fuzz_png); 256 fit and the image reads. */
static void test_jpeg_huffman_tables(void **state)
{
	(void)state;
	jpeg_with_table(at("full-table.jpg"), 6, 256);
	rt_images im = open_ok(at("full-table.jpg"), &as_is, 1, 3, 6, 5);
	expect_pattern(&im, 0, 6, 40);
	rt_images_free(&im);
	jpeg_with_table(at("over.jpg"), 6, 257);
	expect_error(at("over.jpg"), &as_is, 3, 6, 5, at("over.jpg"),
	             "corrupt JPEG: a Huffman table has more than 256 codes");
	jpeg_with_table(at("far-over.jpg"), 6, 1000);
	expect_error(at("far-over.jpg"), &as_is, 3, 6, 5, at("far-over.jpg"), "more than 256 codes");
}

/* A baseline JPEG of image i of pat() at path without its segments of
 * marker `drop` (0xc4 DHT, 0xdb DQT; 0xda: the scan and all after it, but
 * the EOI marker). */
static void jpeg_without(const char *path, int i, uint8_t drop)
{
	jpeg_buf j = { .len = 0 };
	uint8_t *px = pattern(i, 3, 6, 5);
	assert_true(stbi_write_jpg_to_func(jpeg_append, &j, 5, 6, 3, px, 100));
	free(px);
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	size_t at = 2, seg;
	fwrite(j.bytes, 1, at, f);
	for (; j.bytes[at + 1] != 0xda; at += seg) {
		seg = 2 + (size_t)(j.bytes[at + 2] << 8 | j.bytes[at + 3]);
		if (j.bytes[at + 1] != drop)
			fwrite(j.bytes + at, 1, seg, f);
	}
	if (drop == 0xda)
		at = j.len - 2;
	fwrite(j.bytes + at, 1, j.len - at, f);
	assert_int_equal(fclose(f), 0);
}

/* stb_image 2.27 decodes a scan with Huffman tables no DHT defined from
 * uninitialised memory, and leaves the image uninitialised without
 * quantisation tables or scans; a progressive file names tables its scan does not
 * decode with (tests/golden/progressive.jpg: AC table 0 in its DC scans,
 * before any DHT defines it), which must still read. */
static void test_jpeg_scan_tables(void **state)
{
	(void)state;
	jpeg_without(at("no-tables.jpg"), 2, 0xc4);
	expect_error(at("no-tables.jpg"), &as_is, 3, 6, 5, at("no-tables.jpg"),
	             "corrupt JPEG: a scan uses a Huffman table that no DHT segment defines");
	jpeg_without(at("no-dqt.jpg"), 2, 0xdb);
	expect_error(at("no-dqt.jpg"), &as_is, 3, 6, 5, at("no-dqt.jpg"),
	             "corrupt JPEG: a component uses a quantisation table that no DQT segment defines");
	jpeg_without(at("no-scan.jpg"), 2, 0xda);
	expect_error(at("no-scan.jpg"), &as_is, 3, 6, 5, at("no-scan.jpg"),
	             "corrupt JPEG: a component of the image no scan decodes");
	char golden[512];
	snprintf(golden, sizeof golden, "%s/tests/golden/progressive.jpg", DDPMC_SOURCE_DIR);
	rt_images im = open_ok(golden, &as_is, 1, 3, 6, 5);
	expect_pattern(&im, 0, 7, 40);
	rt_images_free(&im);
}

/* A file of the n bytes of head (n < 0: a string) and then n bytes of data. */
static void write_parts(const char *path, const void *head, int nhead, const uint8_t *data, int n)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	fwrite(head, 1, nhead < 0 ? strlen(head) : (size_t)nhead, f);
	fwrite(data, 1, (size_t)n, f);
	assert_int_equal(fclose(f), 0);
}

/* A Radiance HDR file of one scanline of w pixels after `data`. */
static void write_hdr(const char *path, int w, const uint8_t *data, int n)
{
	char head[80];
	snprintf(head, sizeof head, "#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 1 +X %d\n", w);
	write_parts(path, head, -1, data, n);
}

/* stb_image 2.27 loops forever on run-length data with a count of 0 or
 * that ends early, and returns flat pixels that are not there
 * uninitialised. */
static void test_hdr_pixels(void **state)
{
	(void)state;
	/* scanline header 2, 2, width 8; then per channel R, G, B, E a run of 8 */
	const uint8_t runs[] = { 2, 2, 0, 8, 128 + 8, 64, 128 + 8, 32, 128 + 8, 16, 128 + 8, 129 };
	write_hdr(at("runs.hdr"), 8, runs, sizeof runs);
	rt_images im = open_ok(at("runs.hdr"), &as_is, 1, 3, 1, 8);
	assert_true(px_of(&im, 0, 0, 0, 7) > px_of(&im, 0, 1, 0, 7));
	rt_images_free(&im);
	const uint8_t zero[] = { 2, 2, 0, 8, 0 };
	write_hdr(at("zero.hdr"), 8, zero, sizeof zero);
	expect_error(at("zero.hdr"), &as_is, 3, 1, 8, at("zero.hdr"),
	             "corrupt HDR: its run-length data has a count of 0 or ends early");
	write_hdr(at("short.hdr"), 8, runs, 8);
	expect_error(at("short.hdr"), &as_is, 3, 1, 8, at("short.hdr"), "ends early");
	/* 2 pixels wide: flat, 4 bytes a pixel */
	const uint8_t flat[8] = { 64, 32, 16, 129, 64, 32, 16, 129 };
	write_hdr(at("flat.hdr"), 2, flat, 8);
	im = open_ok(at("flat.hdr"), &as_is, 1, 3, 1, 2);
	assert_int_equal(px_of(&im, 0, 0, 0, 1), px_of(&im, 0, 0, 0, 0));
	rt_images_free(&im);
	write_hdr(at("flat-cut.hdr"), 2, flat, 7);
	expect_error(at("flat-cut.hdr"), &as_is, 3, 1, 2, at("flat-cut.hdr"),
	             "truncated HDR: its header promises 8 bytes of pixels, the file holds 7");
	/* 8 wide, but the first scanline has no run-length header: 8 flat pixels */
	uint8_t flat8[32] = { 64, 32, 16, 129 };
	write_hdr(at("flat8-cut.hdr"), 8, flat8, 31);
	expect_error(at("flat8-cut.hdr"), &as_is, 3, 1, 8, at("flat8-cut.hdr"),
	             "promises 28 bytes of pixels, the file holds 27");
}

/* stb_image 2.27 returns the uncompressed pixels of a TGA cut short
 * uninitialised. */
static void test_tga_truncated(void **state)
{
	(void)state;
	/* no id, no colour map, type 2 (true colour), 2 x 2, 24 bits, top-left first */
	const uint8_t head[18] = { 0, 0, 2, [12] = 2, 0, 2, 0, 24, 0x20 };
	const uint8_t bgr[12] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 };
	write_parts(at("whole.tga"), head, 18, bgr, 12);
	rt_images im = open_ok(at("whole.tga"), &as_is, 1, 3, 2, 2);
	assert_int_equal(px_of(&im, 0, 0, 1, 1), 12);  /* red of the last pixel */
	rt_images_free(&im);
	write_parts(at("cut.tga"), head, 18, bgr, 11);
	expect_error(at("cut.tga"), &as_is, 3, 2, 2, at("cut.tga"),
	             "truncated TGA: its header promises 12 bytes of pixels, the file holds 11");
	/* an id field of 255 bytes: the file starts 0xff, as a JPEG does */
	uint8_t id255[18 + 255];
	memcpy(id255, head, 18);
	id255[0] = 255;
	memset(id255 + 18, 7, 255);
	write_parts(at("id255.tga"), id255, sizeof id255, bgr, 11);
	expect_error(at("id255.tga"), &as_is, 3, 2, 2, at("id255.tga"),
	             "truncated TGA: its header promises 12 bytes of pixels, the file holds 11");
}

/* An 8-bit BMP of 2 x 1 pixels of colours i0, i1 of a palette of black
 * and white, the pixels at `offset` (62: just after the palette), its
 * compression field's 4 bytes `compression` (0: none). */
static void write_bmp8(const char *path, uint8_t offset, uint8_t i0, uint8_t i1,
                       uint8_t compression)
{
	uint8_t b[66] = { 'B', 'M', 66, [10] = offset, [14] = 40, [18] = 2, [22] = 1, [26] = 1, 0, 8,
	                  0, compression, compression, compression, compression };
	b[58] = b[59] = b[60] = 255;    /* colour 1: B, G, R, 0 */
	b[62] = i0, b[63] = i1;         /* the row, padded to 4 bytes */
	write_parts(path, b, sizeof b, b, 0);
}

/* stb_image 2.27 takes a colour past a BMP's palette, or every colour when
 * the pixels start inside the header, from an uninitialised array. */
static void test_bmp_palette(void **state)
{
	(void)state;
	write_bmp8(at("two.bmp"), 62, 0, 1, 0);
	rt_images im = open_ok(at("two.bmp"), &as_is, 1, 3, 1, 2);
	assert_int_equal(px_of(&im, 0, 0, 0, 0), 0);
	assert_int_equal(px_of(&im, 0, 0, 0, 1), 255);
	rt_images_free(&im);
	write_bmp8(at("past.bmp"), 62, 0, 2, 0);
	expect_error(at("past.bmp"), &as_is, 3, 1, 2, at("past.bmp"),
	             "corrupt BMP: a pixel is colour 2 of a palette of 2");
	/* a negative compression field, which stb_image reads as none */
	write_bmp8(at("negative.bmp"), 62, 0, 2, 0xff);
	expect_error(at("negative.bmp"), &as_is, 3, 1, 2, at("negative.bmp"), "colour 2 of a palette");
	write_bmp8(at("inside.bmp"), 30, 0, 0, 0);
	expect_error(at("inside.bmp"), &as_is, 3, 1, 2, at("inside.bmp"),
	             "corrupt BMP: its pixels start before the end of its header");
}

/* stb_image 2.27 returns the pixels of a PNM cut short uninitialised. */
static void test_pnm_truncated(void **state)
{
	(void)state;
	tu_write(dir, "whole.pgm", "P5\n# 4 x 2\n4 2\n255\nABCDEFGH", -1, (char[512]){ 0 }, 512);
	rt_images im = open_ok(at("whole.pgm"), &as_is, 1, 1, 2, 4);
	assert_int_equal(px_of(&im, 0, 0, 1, 3), 'H');
	rt_images_free(&im);
	tu_write(dir, "zeros.pgm", "P5 0000000004 2 255 ABCDEFGH", -1, (char[512]){ 0 }, 512);
	im = open_ok(at("zeros.pgm"), &as_is, 1, 1, 2, 4);
	rt_images_free(&im);
	tu_write(dir, "cut.pgm", "P5\n4 2\n255\nABCDEFG", -1, (char[512]){ 0 }, 512);
	expect_error(at("cut.pgm"), &as_is, 1, 2, 4, at("cut.pgm"),
	             "truncated PNM: its header promises 8 bytes of pixels, the file holds 7");
	tu_write(dir, "cut16.ppm", "P6 1 1 65535 ABCDE", -1, (char[512]){ 0 }, 512);
	expect_error(at("cut16.ppm"), &as_is, 3, 1, 1, at("cut16.ppm"), "promises 6 bytes");
}

static void test_folder_labels(void **state)
{
	(void)state;
	folder("pets");
	folder("pets/dog");
	folder("pets/cat");
	folder("pets/cat/kittens");
	folder("pets/.cache");
	write_image(at("pets/dog/a.png"), 0, 1, 4, 4);
	write_image(at("pets/cat/b.png"), 1, 1, 4, 4);
	write_image(at("pets/cat/kittens/c.tga"), 2, 1, 4, 4);
	write_image(at("pets/.cache/x.png"), 3, 1, 9, 9);   /* skipped */
	tu_write(dir, "pets/README", "text", -1, (char[512]){ 0 }, 512);
	rt_images im = open_ok(at("pets"), NULL, 3, 1, 4, 4);
	/* sorted paths: cat/b.png, cat/kittens/c.tga, dog/a.png; cat 0, dog 1 */
	expect_pattern(&im, 0, 1, 0);
	expect_pattern(&im, 1, 2, 0);
	expect_pattern(&im, 2, 0, 0);
	assert_non_null(im.labels);
	assert_int_equal(im.labels[0], 0);
	assert_int_equal(im.labels[1], 0);
	assert_int_equal(im.labels[2], 1);
	char err[256];
	assert_int_equal(rt_dataset_labels(at("pets"), &im, err, sizeof err), RT_OK);
	assert_int_equal(im.labels[2], 1);
	rt_images_free(&im);
	/* an image beside the class folders: no labels */
	write_image(at("pets/stray.png"), 4, 1, 4, 4);
	im = open_ok(at("pets"), NULL, 4, 1, 4, 4);
	assert_null(im.labels);
	rt_images_free(&im);
	/* an image that does not decode is an error naming it: the first in
	 * path order, however the decoding threads ran */
	tu_write(dir, "pets/dog/broken.png", "\x89PNG\r\n\x1a\n", 8, (char[512]){ 0 }, 512);
	expect_error(at("pets"), NULL, 1, 4, 4, at("pets/dog/broken.png"), "stb_image");
	tu_write(dir, "pets/cat/kittens/bad.jpg", "not a JPEG", -1, (char[512]){ 0 }, 512);
	for (int k = 0; k < 5; k++)
		expect_error(at("pets"), NULL, 1, 4, 4, at("pets/cat/kittens/bad.jpg"), "stb_image");
}

/* A 4 x 8 grey image whose pixel (y, x) is 30 x + 4 y. */
static void ramp(const char *path)
{
	uint8_t px[4 * 8];
	for (int y = 0; y < 4; y++)
		for (int x = 0; x < 8; x++)
			px[y * 8 + x] = (uint8_t)(30 * x + 4 * y);
	assert_true(stbi_write_png(path, 8, 4, 1, px, 8));
}

/* 4 x 8 resized for 2 x 2: the shorter side to 2, so 2 x 4, both axes
 * shrunk by 2 with PIL's triangle widened to 2 pixels. Column x = 1 is
 * centred at 3: inputs 1..4 weigh 1/8, 3/8, 3/8, 1/8, so 30 * 2.5 = 75;
 * column 2: 135. Row 0 is centred at 1: inputs 0, 1, 2 weigh 3/7, 3/7,
 * 1/7, so 4 * (3 + 2) / 7 = 2.86; row 1: inputs 1, 2, 3 weigh 1/7, 3/7,
 * 3/7: 4 * 16 / 7 = 9.14. The centre crop keeps columns 1 and 2 (left =
 * (4 - 2) / 2): 77.86, 137.86 / 84.14, 144.14. */
static void test_resize_center_crop(void **state)
{
	(void)state;
	ramp(at("ramp.png"));
	const rt_image_opts fit = { 1, RT_CROP_NONE, RT_CHANNELS_AS_IS };
	rt_images im = open_ok(at("ramp.png"), &fit, 1, 1, 2, 2);
	const int want[2][2] = { { 78, 138 }, { 84, 144 } };
	for (int y = 0; y < 2; y++)
		for (int x = 0; x < 2; x++)
			if (px_of(&im, 0, 0, y, x) != want[y][x])
				fail_msg("resized (%d, %d): got %d, want %d", y, x, px_of(&im, 0, 0, y, x),
				         want[y][x]);
	rt_images_free(&im);
	/* an image of the model's size is left as it is */
	im = open_ok(at("ramp.png"), &fit, 1, 1, 4, 8);
	assert_int_equal(px_of(&im, 0, 0, 3, 7), 30 * 7 + 12);
	rt_images_free(&im);
	/* without --resize the size must match; a crop needs a large enough image */
	expect_error(at("ramp.png"), NULL, 1, 2, 2, at("ramp.png"),
	             "image is 4x8, the model takes 2x2");
	const rt_image_opts cut = { 0, RT_CROP_CENTER, RT_CHANNELS_AS_IS };
	expect_error(at("ramp.png"), &cut, 1, 5, 5, at("ramp.png"), "smaller than the model's 5x5");
	/* a long thin image would grow past 2^26 pixels: refused, not allocated */
	uint8_t row[1 << 12] = { 0 };
	assert_true(stbi_write_png(at("thin.png"), 1 << 12, 1, 1, row, 1 << 12));
	expect_error(at("thin.png"), &fit, 1, 1 << 15, 1 << 15, at("thin.png"),
	             "resized it would be 32768x134217728, over the 67108864 pixels");
}

/* Centre crops without resizing: left = round-half-even((8 - w) / 2), as
 * torchvision's CenterCrop: 8 -> 6: 1; 8 -> 5: 1.5 -> 2; 8 -> 3: 2.5 -> 2. */
static void test_center_crop_rounding(void **state)
{
	(void)state;
	ramp(at("ramp2.png"));
	const rt_image_opts cut = { 0, RT_CROP_CENTER, RT_CHANNELS_AS_IS };
	const int64_t widths[3] = { 6, 5, 3 }, lefts[3] = { 1, 2, 2 };
	for (int k = 0; k < 3; k++) {
		rt_images im = open_ok(at("ramp2.png"), &cut, 1, 1, 3, widths[k]);
		/* rows 4 -> 3: top = round(0.5) = 0 */
		assert_int_equal(px_of(&im, 0, 0, 0, 0), 30 * lefts[k]);
		assert_int_equal(px_of(&im, 0, 0, 2, 0), 30 * lefts[k] + 8);
		rt_images_free(&im);
	}
}

/* Random crops of 4 x 8 to 4 x 4: the place depends on (seed, position)
 * only; the loader hands out exactly those crops, also when opened at a
 * later position (a resumed run). */
static void test_random_crop(void **state)
{
	(void)state;
	ramp(at("ramp3.png"));
	const rt_image_opts rnd = { 0, RT_CROP_RANDOM, RT_CHANNELS_AS_IS };
	rt_images im = open_ok(at("ramp3.png"), &rnd, 1, 1, 4, 4);
	assert_non_null(im.full);
	assert_int_equal(px_of(&im, 0, 0, 0, 0), 60);  /* pixels: the centre crop */
	int seen[5] = { 0 };
	float x[16], again[16];
	for (int64_t q = 0; q < 200; q++) {
		int64_t top, left;
		rt_data_crop(7, q, 4, 8, 4, 4, &top, &left);
		assert_int_equal(top, 0);
		assert_in_range(left, 0, 4);
		seen[left]++;
		rt_images_drawn(&im, 0, 7, q, 0, x);
		rt_images_drawn(&im, 0, 7, q, 0, again);
		assert_memory_equal(x, again, sizeof x);
		assert_float_equal(x[5], (30.0 * (left + 1) + 4) / 127.5 - 1, 1e-6);
	}
	for (int k = 0; k < 5; k++)
		if (seen[k] < 20)
			fail_msg("left %d drawn %d times in 200", k, seen[k]);
	/* the loader from position 6 gives positions 6..8, as a fresh run does */
	rt_loader *ld;
	char err[256];
	float batch[3 * 16];
	int64_t pos;
	assert_int_equal(rt_loader_open(&im, 3, 7, 1, 6, 0, 1, &ld, err, sizeof err), RT_OK);
	rt_loader_next(ld, batch, NULL, &pos);
	rt_loader_close(ld);
	assert_int_equal(pos, 9);
	for (int k = 0; k < 3; k++) {
		rt_images_drawn(&im, 0, 7, 6 + k, rt_data_flipped(7, 6 + k), x);
		assert_memory_equal(batch + 16 * k, x, sizeof x);
	}
	rt_images_free(&im);
}

static void test_channels(void **state)
{
	(void)state;
	/* one RGB pixel (200, 100, 50): luma (19595*200 + 38470*100 + 7471*50
	 * + 32768) >> 16 = 124, as PIL's convert("L") */
	uint8_t rgb[3] = { 200, 100, 50 }, grey[1] = { 77 };
	assert_true(stbi_write_png(at("rgb.png"), 1, 1, 3, rgb, 3));
	assert_true(stbi_write_png(at("grey.png"), 1, 1, 1, grey, 1));
	expect_error(at("rgb.png"), NULL, 1, 1, 1, at("rgb.png"),
	             "an RGB image, the model takes grey images (--grey");
	expect_error(at("grey.png"), NULL, 3, 1, 1, at("grey.png"),
	             "a grey image, the model takes RGB images (--rgb");
	const rt_image_opts to_grey = { 0, RT_CROP_NONE, RT_CHANNELS_GREY };
	const rt_image_opts to_rgb = { 0, RT_CROP_NONE, RT_CHANNELS_RGB };
	rt_images im = open_ok(at("rgb.png"), &to_grey, 1, 1, 1, 1);
	assert_int_equal(im.pixels[0], 124);
	rt_images_free(&im);
	im = open_ok(at("grey.png"), &to_rgb, 1, 3, 1, 1);
	assert_int_equal(im.pixels[0], 77);
	assert_int_equal(im.pixels[1], 77);
	assert_int_equal(im.pixels[2], 77);
	rt_images_free(&im);
	/* the conversions leave images of the model's kind alone */
	im = open_ok(at("rgb.png"), &to_rgb, 1, 3, 1, 1);
	assert_memory_equal(im.pixels, rgb, 3);
	rt_images_free(&im);
	expect_error(at("rgb.png"), &to_grey, 3, 1, 1, at("rgb.png"),
	             "converting the images to grey, but the model takes 3-channel images");
}

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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kinds),
		cmocka_unit_test(test_jpeg_huffman_tables),
		cmocka_unit_test(test_jpeg_scan_tables),
		cmocka_unit_test(test_hdr_pixels),
		cmocka_unit_test(test_tga_truncated),
		cmocka_unit_test(test_bmp_palette),
		cmocka_unit_test(test_pnm_truncated),
		cmocka_unit_test(test_folder_labels),
		cmocka_unit_test(test_resize_center_crop),
		cmocka_unit_test(test_center_crop_rounding),
		cmocka_unit_test(test_random_crop),
		cmocka_unit_test(test_channels),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
