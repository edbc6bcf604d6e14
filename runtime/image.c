/* image.c: PNG written directly with zlib (already a runtime dependency):
 * signature, IHDR (8-bit grey or RGB, no interlace), one IDAT holding the
 * deflated scanlines (filter byte 0 each), IEND; every chunk is
 * length (big-endian) + type + data + CRC-32 of type and data. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zlib.h>

#include "image.h"
#include "tensor.h"

enum { BORDER = 2, MAX_SIDE = 1 << 16, GRID_MIN_SIDE = 64 };

uint8_t rt_quantise(float x)
{
	double v = isnan(x) ? -1.0 : x < -1 ? -1.0 : x > 1 ? 1.0 : (double)x;
	return (uint8_t)floor((v + 1) * 127.5 + 0.5);
}

static int64_t grid_cols(int64_t n)
{
	int64_t c = (int64_t)ceil(sqrt((double)n));
	while (c * c < n)
		c++;
	while (c > 1 && (c - 1) * (c - 1) >= n)
		c--;
	return c < 1 ? 1 : c;
}

int64_t rt_grid_scale(int64_t h, int64_t w)
{
	int64_t side = h > w ? h : w;
	return side >= GRID_MIN_SIDE || side < 1 ? 1 : (GRID_MIN_SIDE + side - 1) / side;
}

void rt_grid_size(int64_t n, int64_t h, int64_t w, int64_t scale, int64_t *grid_h,
                  int64_t *grid_w)
{
	int64_t cols = grid_cols(n), rows = (n + cols - 1) / cols;
	*grid_w = cols * (w * scale + BORDER) + BORDER;
	*grid_h = rows * (h * scale + BORDER) + BORDER;
}

/* The raw PNG scanlines: (gh rows) x (1 filter byte + gw * c bytes); image
 * pixel (y, x) fills the scale x scale block at (y0 + y * scale, x0 + x * scale). */
static unsigned char *render(const float *x, int64_t n, int64_t c, int64_t h, int64_t w,
                             int64_t scale, int64_t gh, int64_t gw, size_t *len)
{
	size_t stride = 1 + (size_t)(gw * c);
	unsigned char *raw = calloc((size_t)gh, stride);
	if (!raw)
		return NULL;
	int64_t cols = grid_cols(n), sh = h * scale, sw = w * scale;
	for (int64_t i = 0; i < n; i++) {
		int64_t y0 = BORDER + (i / cols) * (sh + BORDER), x0 = BORDER + (i % cols) * (sw + BORDER);
		const float *img = x + i * c * h * w;   /* (c, h, w) */
		for (int64_t y = 0; y < sh; y++)
			for (int64_t xx = 0; xx < sw; xx++)
				for (int64_t ch = 0; ch < c; ch++)
					raw[(size_t)(y0 + y) * stride + 1 + (size_t)((x0 + xx) * c + ch)] =
						rt_quantise(img[(ch * h + y / scale) * w + xx / scale]);
	}
	*len = (size_t)gh * stride;
	return raw;
}

static void put_be32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8), p[3] = (unsigned char)v;
}

static int put_chunk(FILE *f, const char *type, const unsigned char *data, size_t len)
{
	unsigned char head[8], tail[4];
	put_be32(head, (uint32_t)len);
	memcpy(head + 4, type, 4);
	uLong crc = crc32(0, (const Bytef *)type, 4);
	if (len)
		crc = crc32_z(crc, data, len);
	put_be32(tail, (uint32_t)crc);
	return fwrite(head, 1, 8, f) != 8 || (len && fwrite(data, 1, len, f) != len) ||
	       fwrite(tail, 1, 4, f) != 4;
}

/* The whole file to f; 0 on success. */
static int put_png(FILE *f, int64_t gw, int64_t gh, int64_t c, const unsigned char *z, size_t zlen)
{
	static const unsigned char sig[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };
	unsigned char ihdr[13];
	put_be32(ihdr, (uint32_t)gw);
	put_be32(ihdr + 4, (uint32_t)gh);
	ihdr[8] = 8;                            /* bit depth */
	ihdr[9] = c == 1 ? 0 : 2;               /* grey or RGB */
	ihdr[10] = ihdr[11] = ihdr[12] = 0;     /* deflate, adaptive filters, no interlace */
	return fwrite(sig, 1, 8, f) != 8 || put_chunk(f, "IHDR", ihdr, 13) ||
	       put_chunk(f, "IDAT", z, zlen) || put_chunk(f, "IEND", NULL, 0) || fflush(f) ||
	       fsync(fileno(f));
}

static int write_atomic(const char *path, int64_t gw, int64_t gh, int64_t c,
                        const unsigned char *z, size_t zlen, char *err, size_t errlen)
{
	char tmp[4096];
	snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
	FILE *f = fopen(tmp, "wb");
	if (!f) {
		snprintf(err, errlen, "%s: cannot create %s: %s", path, tmp, strerror(errno));
		return RT_ERR;
	}
	int bad = put_png(f, gw, gh, c, z, zlen);
	int e = errno;
	if (fclose(f) || bad) {
		snprintf(err, errlen, "%s: write to %s failed: %s", path, tmp, strerror(bad ? e : errno));
		remove(tmp);
		return RT_ERR;
	}
	if (rename(tmp, path)) {
		snprintf(err, errlen, "%s: cannot rename %s over it: %s", path, tmp, strerror(errno));
		remove(tmp);
		return RT_ERR;
	}
	return RT_OK;
}

/* Deflates the scanlines and writes the file. */
static int encode(const char *path, const unsigned char *raw, size_t rawlen, int64_t gw,
                  int64_t gh, int64_t c, char *err, size_t errlen)
{
	uLongf zlen = compressBound((uLong)rawlen);
	unsigned char *z = malloc(zlen);
	int rc = RT_ERR;
	if (!z)
		snprintf(err, errlen, "%s: out of memory", path);
	else if (compress2(z, &zlen, raw, (uLong)rawlen, 6) != Z_OK)
		snprintf(err, errlen, "%s: zlib failed to compress the image", path);
	else
		rc = write_atomic(path, gw, gh, c, z, zlen, err, errlen);
	free(z);
	return rc;
}

int rt_png_write_grid(const char *path, const float *x, int64_t n, int64_t c, int64_t h,
                      int64_t w, int64_t scale, char *err, size_t errlen)
{
	int64_t gh, gw;
	scale = scale > 0 ? scale : rt_grid_scale(h, w);
	if (n < 1 || (c != 1 && c != 3) || h < 1 || w < 1) {
		snprintf(err, errlen, "%s: cannot make a grid of %lld images of %lld x %lld x %lld "
		         "(want n >= 1 and 1 or 3 channels)", path, (long long)n, (long long)c,
		         (long long)h, (long long)w);
		return RT_ERR;
	}
	rt_grid_size(n, h, w, scale, &gh, &gw);
	if (gh > MAX_SIDE || gw > MAX_SIDE) {
		snprintf(err, errlen, "%s: a %lld x %lld grid is too large", path, (long long)gw,
		         (long long)gh);
		return RT_ERR;
	}
	size_t rawlen = 0;
	unsigned char *raw = render(x, n, c, h, w, scale, gh, gw, &rawlen);
	if (!raw) {
		snprintf(err, errlen, "%s: out of memory", path);
		return RT_ERR;
	}
	int rc = encode(path, raw, rawlen, gw, gh, c, err, errlen);
	free(raw);
	return rc;
}

int rt_png_write_pixels(const char *path, const uint8_t *px, int64_t h, int64_t w, int64_t c,
                        char *err, size_t errlen)
{
	if ((c != 1 && c != 3) || h < 1 || w < 1 || h > MAX_SIDE || w > MAX_SIDE) {
		snprintf(err, errlen, "%s: cannot write a %lld x %lld image of %lld channels", path,
		         (long long)w, (long long)h, (long long)c);
		return RT_ERR;
	}
	size_t stride = 1 + (size_t)(w * c);
	unsigned char *raw = malloc((size_t)h * stride);
	if (!raw) {
		snprintf(err, errlen, "%s: out of memory", path);
		return RT_ERR;
	}
	for (int64_t y = 0; y < h; y++) {
		raw[(size_t)y * stride] = 0;
		memcpy(raw + (size_t)y * stride + 1, px + (size_t)(y * w * c), (size_t)(w * c));
	}
	int rc = encode(path, raw, (size_t)h * stride, w, h, c, err, errlen);
	free(raw);
	return rc;
}
