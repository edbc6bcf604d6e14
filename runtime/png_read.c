/* png_read.c: PNG decoding with zlib (already a runtime dependency, so
 * compiled programs link nothing new), strict enough to reject corrupt
 * files with a reason (PNG spec, https://www.w3.org/TR/png/).
 *
 * File: 8-byte signature, then chunks of length (u32 big-endian, < 2^31),
 * type (4 letters), data, CRC-32 of type + data. IHDR comes first (width,
 * height, bit depth, colour type, compression 0, filter 0, interlace 0 or
 * 1 = Adam7); PLTE holds the palette of colour type 3; the IDAT chunks
 * together are one zlib stream of the filtered scanlines; IEND ends the
 * file. Unknown ancillary chunks (lower-case first letter) are skipped;
 * unknown critical ones are an error.
 *
 * Scanlines: each pass (one, or Adam7's seven) is rows of 1 filter byte +
 * ceil(pw * channels * depth / 8) bytes; filters 0..4 (none, sub, up,
 * average, Paeth) work on bytes, bpp = max(1, channels * depth / 8) bytes
 * to the left. Samples below 8 bits are packed from the high bit.
 *
 * The image's size is checked against the model's before any image-sized
 * allocation, so a header that claims a huge image costs nothing. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "data.h"
#include "data_impl.h"
#include "tensor.h"

enum { MAX_FILE = 1 << 30 };

typedef struct {
	const char *path;
	char *err;
	size_t errlen;
	const uint8_t *file;    /* (size) */
	size_t size;
	uint32_t w, h;
	int depth, type, interlace, channels;   /* channels: samples per pixel */
	uint8_t palette[256][3];
	int npalette;
	uint8_t *raw;           /* (rawlen) the inflated scanlines of every pass */
	size_t rawlen;
} png;

static const uint8_t signature[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };

/* Adam7: pass p covers pixels (x0 + i*dx, y0 + j*dy). */
static const int adam7[7][4] = {
	{ 0, 0, 8, 8 }, { 4, 0, 8, 8 }, { 0, 4, 4, 8 }, { 2, 0, 4, 4 },
	{ 0, 2, 2, 4 }, { 1, 0, 2, 2 }, { 0, 1, 1, 2 },
};
static const int single_pass[4] = { 0, 0, 1, 1 };

static int fail(png *p, const char *fmt, const char *detail)
{
	char what[256];
	snprintf(what, sizeof what, fmt, detail);
	snprintf(p->err, p->errlen, "%s: %s", p->path, what);
	return RT_ERR;
}

static uint32_t be32(const uint8_t *b)
{
	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

static int load(png *p, uint8_t **data)
{
	FILE *f = fopen(p->path, "rb");
	if (!f)
		return fail(p, "cannot open: %s", strerror(errno));
	size_t cap = 0;
	int rc = RT_OK;
	for (;;) {
		if (p->size == cap) {
			cap = cap ? cap * 2 : 1 << 16;
			uint8_t *q = cap <= MAX_FILE ? realloc(*data, cap) : NULL;
			if (!q) {
				rc = fail(p, "%s", cap > MAX_FILE ? "larger than 1 GiB" : "out of memory");
				break;
			}
			*data = q;
		}
		size_t got = fread(*data + p->size, 1, cap - p->size, f);
		p->size += got;
		if (got == 0) {
			if (ferror(f))
				rc = fail(p, "cannot read: %s", strerror(errno));
			break;
		}
	}
	fclose(f);
	p->file = *data;
	return rc;
}

static int bytes_per_row(const png *p, uint32_t pw)
{
	return (int)(((uint64_t)pw * (uint64_t)(p->channels * p->depth) + 7) / 8);
}

static void pass_size(const png *p, const int *a, uint32_t *pw, uint32_t *ph)
{
	*pw = p->w > (uint32_t)a[0] ? (p->w - (uint32_t)a[0] + (uint32_t)a[2] - 1) / (uint32_t)a[2] : 0;
	*ph = p->h > (uint32_t)a[1] ? (p->h - (uint32_t)a[1] + (uint32_t)a[3] - 1) / (uint32_t)a[3] : 0;
}

/* Colour type -> samples per pixel and the legal bit depths (bit d set:
 * depth d allowed; depths past the mask's 32 bits are never legal). */
static int header_ok(png *p)
{
	static const struct { int channels; unsigned depths; } kinds[7] = {
		[0] = { 1, 1u << 1 | 1u << 2 | 1u << 4 | 1u << 8 | 1u << 16 },
		[2] = { 3, 1u << 8 | 1u << 16 },
		[3] = { 1, 1u << 1 | 1u << 2 | 1u << 4 | 1u << 8 },
		[4] = { 2, 1u << 8 | 1u << 16 },
		[6] = { 4, 1u << 8 | 1u << 16 },
	};
	if (p->type < 0 || p->type > 6 || !kinds[p->type].channels || p->depth > 16 ||
	    !(kinds[p->type].depths >> p->depth & 1))
		return 0;
	p->channels = kinds[p->type].channels;
	return 1;
}

static int read_ihdr(png *p, const uint8_t *d, uint32_t len, const int64_t *m)
{
	if (len != 13)
		return fail(p, "%s", "corrupt PNG: IHDR is not 13 bytes");
	p->w = be32(d), p->h = be32(d + 4);
	p->depth = d[8], p->type = d[9], p->interlace = d[12];
	if (p->w == 0 || p->h == 0 || p->w > 1u << 31 || p->h > 1u << 31 || !header_ok(p) ||
	    d[10] != 0 || d[11] != 0 || p->interlace > 1)
		return fail(p, "%s", "corrupt PNG: invalid IHDR (size, depth, colour type or method)");
	if (p->w != m[2] || p->h != m[1]) {
		snprintf(p->err, p->errlen, "%s: %ux%u, the model takes %lldx%lld", p->path, p->h,
		         p->w, (long long)m[1], (long long)m[2]);
		return RT_ERR;
	}
	size_t total = 0;
	for (int k = 0; k < (p->interlace ? 7 : 1); k++) {
		uint32_t pw, ph;
		pass_size(p, p->interlace ? adam7[k] : single_pass, &pw, &ph);
		total += pw ? (size_t)ph * (1 + (size_t)bytes_per_row(p, pw)) : 0;
	}
	p->rawlen = total;
	if (total >= UINT32_MAX)
		return fail(p, "%s", "image too large");
	if (!(p->raw = malloc(total + 1)))
		return fail(p, "%s", "out of memory");
	return RT_OK;
}

static int read_plte(png *p, const uint8_t *d, uint32_t len)
{
	if (len == 0 || len % 3 || len > 768)
		return fail(p, "%s", "corrupt PNG: PLTE length is not 3 x 1..256");
	p->npalette = (int)(len / 3);
	memcpy(p->palette, d, len);
	return RT_OK;
}

/* Feeds one IDAT chunk to the stream; the output is raw plus one spare
 * byte, which catches a stream that holds more than the image. */
static int inflate_chunk(png *p, z_stream *z, const uint8_t *d, uint32_t len, int *ended)
{
	z->next_in = (Bytef *)d;
	z->avail_in = len;
	while (z->avail_in > 0 && !*ended) {
		int zr = inflate(z, Z_NO_FLUSH);
		if (zr == Z_STREAM_END)
			*ended = 1;
		else if (zr != Z_OK)
			return fail(p, "corrupt PNG: bad IDAT data (zlib: %s)",
			            z->msg ? z->msg : zr == Z_BUF_ERROR ? "more data than the image" : "error");
		if (z->total_out > p->rawlen)
			return fail(p, "%s", "corrupt PNG: IDAT holds more data than the image");
	}
	return RT_OK;
}

static int chunk_is(const uint8_t *t, const char *name)
{
	return memcmp(t, name, 4) == 0;
}

/* Walks the chunks: IHDR, PLTE, IDAT into p->raw, up to IEND. */
static int read_chunks(png *p, z_stream *z, const int64_t *m)
{
	size_t at = sizeof signature;
	int ended = 0, seen_ihdr = 0;
	for (;;) {
		if (p->size - at < 12)
			return fail(p, "%s", "truncated PNG (no IEND chunk)");
		uint32_t len = be32(p->file + at);
		const uint8_t *type = p->file + at + 4, *d = type + 4;
		char name[5] = { 0 };
		for (int i = 0; i < 4; i++)
			name[i] = (char)((type[i] | 0x20) >= 'a' && (type[i] | 0x20) <= 'z' ? type[i] : '?');
		if (len > 1u << 31 || p->size - at - 12 < len)
			return fail(p, "truncated PNG (chunk %s runs past the end of the file)", name);
		if (crc32(0, type, len + 4) != be32(d + len))
			return fail(p, "corrupt PNG: CRC error in chunk %s", name);
		at += 12 + (size_t)len;
		int rc = RT_OK;
		if (!seen_ihdr && !chunk_is(type, "IHDR"))
			return fail(p, "%s", "corrupt PNG: the first chunk is not IHDR");
		if (chunk_is(type, "IHDR") && !seen_ihdr++) {
			rc = read_ihdr(p, d, len, m);
			z->next_out = p->raw;
			z->avail_out = (uInt)(p->rawlen + 1);
		} else if (chunk_is(type, "IHDR"))
			rc = fail(p, "%s", "corrupt PNG: two IHDR chunks");
		else if (chunk_is(type, "PLTE"))
			rc = read_plte(p, d, len);
		else if (chunk_is(type, "IDAT"))
			rc = inflate_chunk(p, z, d, len, &ended);
		else if (chunk_is(type, "IEND"))
			return ended ? RT_OK : fail(p, "%s", "truncated PNG (the image data ends early)");
		else if (!(type[0] & 0x20))
			rc = fail(p, "corrupt PNG: unknown critical chunk %s", name);
		if (rc != RT_OK)
			return rc;
	}
}

static int paeth(int a, int b, int c)
{
	int pa = abs(b - c), pb = abs(a - c), pc = abs(a + b - 2 * c);
	return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/* Undoes the filters of one pass in place: ph rows of 1 + n bytes. */
static int unfilter(png *p, uint8_t *rows, uint32_t ph, int n)
{
	int bpp = p->channels * p->depth / 8 > 0 ? p->channels * p->depth / 8 : 1;
	for (uint32_t y = 0; y < ph; y++) {
		uint8_t *r = rows + (size_t)y * (1 + (size_t)n) + 1;
		const uint8_t *up = y ? r - (1 + n) : NULL;
		int f = r[-1];
		if (f > 4)
			return fail(p, "%s", "corrupt PNG: unknown scanline filter");
		for (int i = 0; i < n; i++) {
			int a = i >= bpp ? r[i - bpp] : 0, b = up ? up[i] : 0;
			int c = up && i >= bpp ? up[i - bpp] : 0;
			int pred = f == 1 ? a : f == 2 ? b : f == 3 ? (a + b) / 2 : f == 4 ? paeth(a, b, c) : 0;
			r[i] = (uint8_t)(r[i] + pred);
		}
	}
	return RT_OK;
}

/* Sample k (0-based, in samples) of a row, as 0..255. */
static int sample(const png *p, const uint8_t *row, uint64_t k)
{
	if (p->depth == 8)
		return row[k];
	if (p->depth == 16) {
		unsigned v = (unsigned)row[2 * k] << 8 | row[2 * k + 1];
		return (int)((v * 255u + 32767u) / 65535u);
	}
	uint64_t bit = k * (uint64_t)p->depth;
	int v = row[bit / 8] >> (8 - p->depth - (int)(bit % 8)) & ((1 << p->depth) - 1);
	return p->type == 3 ? v : v * 255 / ((1 << p->depth) - 1);
}

/* Pixel (r, g, b) of the decoded row at pass column i; 0 or RT_ERR. */
static int pixel(png *p, const uint8_t *row, uint32_t i, uint8_t rgb[3])
{
	uint64_t k = (uint64_t)i * (uint64_t)p->channels;
	if (p->type == 3) {
		int idx = sample(p, row, k);
		if (idx >= p->npalette)
			return fail(p, "%s", p->npalette ? "corrupt PNG: palette index out of range"
			                                 : "corrupt PNG: palette image without PLTE");
		memcpy(rgb, p->palette[idx], 3);
	} else if (p->type == 0 || p->type == 4) {
		rgb[0] = rgb[1] = rgb[2] = (uint8_t)sample(p, row, k);
	} else {
		for (int c = 0; c < 3; c++)
			rgb[c] = (uint8_t)sample(p, row, k + (uint64_t)c);
	}
	return RT_OK;
}

/* Stores pixel (x, y) into px (c, h, w); a coloured pixel is an error
 * when the model takes grey. */
static int store(png *p, const uint8_t rgb[3], uint32_t x, uint32_t y, int64_t c, uint8_t *px)
{
	size_t plane = (size_t)p->w * p->h, at = (size_t)y * p->w + x;
	if (c == 1 && (rgb[0] != rgb[1] || rgb[1] != rgb[2])) {
		snprintf(p->err, p->errlen, "%s: colour image (pixel x=%u y=%u is RGB %d,%d,%d), the "
		         "model takes grey (1 channel)", p->path, x, y, rgb[0], rgb[1], rgb[2]);
		return RT_ERR;
	}
	for (int64_t k = 0; k < c; k++)
		px[(size_t)k * plane + at] = rgb[k];
	return RT_OK;
}

static int decode_passes(png *p, int64_t c, uint8_t *px)
{
	uint8_t *rows = p->raw;
	for (int k = 0; k < (p->interlace ? 7 : 1); k++) {
		const int *a = p->interlace ? adam7[k] : single_pass;
		uint32_t pw, ph;
		pass_size(p, a, &pw, &ph);
		if (pw == 0 || ph == 0)
			continue;
		int n = bytes_per_row(p, pw);
		if (unfilter(p, rows, ph, n) != RT_OK)
			return RT_ERR;
		for (uint32_t j = 0; j < ph; j++)
			for (uint32_t i = 0; i < pw; i++) {
				uint8_t rgb[3];
				if (pixel(p, rows + (size_t)j * (1 + (size_t)n) + 1, i, rgb) != RT_OK ||
				    store(p, rgb, (uint32_t)a[0] + i * (uint32_t)a[2],
				          (uint32_t)a[1] + j * (uint32_t)a[3], c, px) != RT_OK)
					return RT_ERR;
			}
		rows += (size_t)ph * (1 + (size_t)n);
	}
	return RT_OK;
}

int rt_png_read(const char *path, int64_t c, int64_t h, int64_t w, uint8_t *px, char *err,
                size_t errlen)
{
	png p = { .path = path, .err = err, .errlen = errlen };
	uint8_t *data = NULL;
	const int64_t m[3] = { c, h, w };
	z_stream z = { 0 };
	if (c != 1 && c != 3) {
		snprintf(err, errlen, "%s: the model takes %lld channels; PNG images give 1 (grey) "
		         "or 3 (RGB)", path, (long long)c);
		return RT_ERR;
	}
	int rc = load(&p, &data);
	if (rc == RT_OK && (p.size < sizeof signature || memcmp(data, signature, 8) != 0))
		rc = fail(&p, "%s", "not a PNG file (bad signature)");
	if (rc == RT_OK && inflateInit(&z) != Z_OK)
		rc = fail(&p, "%s", "out of memory");
	if (rc == RT_OK && (rc = read_chunks(&p, &z, m)) == RT_OK) {
		if (z.total_out != p.rawlen)
			rc = fail(&p, "%s", "corrupt PNG: the image data is too short");
		else
			rc = decode_passes(&p, c, px);
	}
	inflateEnd(&z);
	free(data);
	free(p.raw);
	return rc;
}
