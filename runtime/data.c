/* data.c: IDX image files (MNIST, Fashion-MNIST), through zlib so that
 * gzipped and raw files read alike. The header is big-endian: a 4-byte
 * magic (0, 0, type 0x08 = u8, rank 3), then one u32 per dim. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "data.h"
#include "tensor.h"

enum { IDX_U8_RANK3 = 0x00000803 };

static uint32_t big_endian(const unsigned char *b)
{
	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* Reads exactly len bytes; 0 on success. */
static int read_all(gzFile f, void *buf, size_t len)
{
	unsigned char *p = buf;
	while (len > 0) {
		unsigned chunk = len > (1u << 30) ? 1u << 30 : (unsigned)len;
		int got = gzread(f, p, chunk);
		if (got <= 0)
			return -1;
		p += got;
		len -= (size_t)got;
	}
	return 0;
}

static int parse_header(const unsigned char *h, const char *path, rt_images *out,
                        char *err, size_t errlen)
{
	uint32_t magic = big_endian(h);
	if (magic != IDX_U8_RANK3) {
		snprintf(err, errlen, "%s: not an IDX image file (magic 0x%08x, want 0x%08x)",
		         path, magic, IDX_U8_RANK3);
		return RT_ERR;
	}
	out->n = big_endian(h + 4);
	out->h = big_endian(h + 8);
	out->w = big_endian(h + 12);
	out->c = 1;
	if (out->n < 1 || out->h < 1 || out->w < 1 || out->h > 4096 || out->w > 4096) {
		snprintf(err, errlen, "%s: implausible dimensions %lld x %lld x %lld", path,
		         (long long)out->n, (long long)out->h, (long long)out->w);
		return RT_ERR;
	}
	return RT_OK;
}

int rt_idx_read_images(const char *path, rt_images *out, char *err, size_t errlen)
{
	unsigned char header[16];
	memset(out, 0, sizeof *out);
	gzFile f = gzopen(path, "rb");
	if (!f) {
		snprintf(err, errlen, "%s: cannot open", path);
		return RT_ERR;
	}
	int rc = RT_OK;
	if (read_all(f, header, sizeof header) != 0) {
		snprintf(err, errlen, "%s: too short for an IDX header (or corrupt gzip data)", path);
		rc = RT_ERR;
	}
	if (rc == RT_OK)
		rc = parse_header(header, path, out, err, errlen);
	size_t bytes = rc == RT_OK ? (size_t)(out->n * out->h * out->w) : 0;
	if (rc == RT_OK && !(out->pixels = malloc(bytes))) {
		snprintf(err, errlen, "%s: out of memory for %zu bytes", path, bytes);
		rc = RT_ERR;
	}
	if (rc == RT_OK && read_all(f, out->pixels, bytes) != 0) {
		snprintf(err, errlen, "%s: short read: the header promises %lld images of %lldx%lld",
		         path, (long long)out->n, (long long)out->h, (long long)out->w);
		rc = RT_ERR;
	}
	gzclose(f);
	if (rc != RT_OK)
		rt_images_free(out);
	return rc;
}

void rt_images_batch(const rt_images *im, int64_t first, int64_t count, float *out)
{
	int64_t size = im->c * im->h * im->w;
	for (int64_t k = 0; k < count; k++) {
		const uint8_t *src = im->pixels + ((first + k) % im->n) * size;
		for (int64_t i = 0; i < size; i++)
			out[k * size + i] = (float)src[i] / 127.5f - 1.0f;
	}
}

void rt_images_free(rt_images *im)
{
	free(im->pixels);
	memset(im, 0, sizeof *im);
}
