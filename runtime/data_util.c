/* data_util.c: what every data reader shares (zlib reading, size errors)
 * and images to floats. Readers (data.c, cifar.c, image_dir.c,
 * image_read.c) call into this file, never the other way, so the data
 * module has no call cycle. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data.h"
#include "data_impl.h"
#include "tensor.h"

int rt_data_ends_with(const char *name, const char *suffix)
{
	size_t n = strlen(name), s = strlen(suffix);
	return n >= s && strcmp(name + n - s, suffix) == 0;
}

int rt_data_open_error(const char *path, char *err, size_t errlen)
{
	snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
	return RT_ERR;
}

gzFile rt_data_gzopen(const char *path, char *err, size_t errlen)
{
	errno = 0;
	gzFile f = gzopen(path, "rb");
	if (!f)
		snprintf(err, errlen, "%s: cannot open: %s", path,
		         errno ? strerror(errno) : "out of memory");
	else
		gzbuffer(f, 1 << 17);
	return f;
}

/* The message of f's last error. */
static const char *gz_message(gzFile f)
{
	int code = 0;
	const char *m = gzerror(f, &code);
	if (code == Z_ERRNO)
		return strerror(errno);
	return m && *m ? m : "read error";
}

int rt_data_read(gzFile f, const char *path, size_t limit, uint8_t **buf, size_t *len,
                 char *err, size_t errlen)
{
	size_t cap = *len;
	while (*len < limit) {
		if (*len == cap) {
			size_t grow = cap < (1u << 20) ? (1u << 20) : cap;
			cap = limit - *len < grow ? limit : cap + grow;
			uint8_t *p = realloc(*buf, cap);
			if (!p) {
				snprintf(err, errlen, "%s: out of memory for %zu bytes", path, cap);
				return RT_ERR;
			}
			*buf = p;
		}
		size_t want = cap - *len;
		int got = gzread(f, *buf + *len, want > (1u << 30) ? 1u << 30 : (unsigned)want);
		if (got < 0) {
			snprintf(err, errlen, "%s: corrupt or unreadable (%s)", path, gz_message(f));
			return RT_ERR;
		}
		if (got == 0) {
			/* gzread reports a gzip stream cut short as a plain end of
			 * file; only gzerror tells */
			int code = Z_OK;
			gzerror(f, &code);
			if (code == Z_OK)
				break;
			snprintf(err, errlen, "%s: truncated gzip stream (%s)", path, gz_message(f));
			return RT_ERR;
		}
		*len += (size_t)got;
	}
	return RT_OK;
}

static void describe(char *s, size_t len, int64_t c, int64_t h, int64_t w)
{
	const char *kind = c == 1 ? "grey" : c == 3 ? "RGB" : NULL;
	if (kind)
		snprintf(s, len, "%lldx%lld %s", (long long)h, (long long)w, kind);
	else
		snprintf(s, len, "%lldx%lld with %lld channels", (long long)h, (long long)w,
		         (long long)c);
}

int rt_data_size_error(const char *path, int64_t c, int64_t h, int64_t w, int64_t mc,
                       int64_t mh, int64_t mw, char *err, size_t errlen)
{
	char have[64], want[64];
	describe(have, sizeof have, c, h, w);
	describe(want, sizeof want, mc, mh, mw);
	snprintf(err, errlen, "%s: images are %s, the model takes %s", path, have, want);
	return RT_ERR;
}

void rt_images_batch(const rt_images *im, int64_t first, int64_t count, float *out)
{
	int64_t size = im->c * im->h * im->w;
	for (int64_t k = 0; k < count; k++)
		rt_images_scaled(im, (first + k) % im->n, 0, out + k * size);
}

/* The window (top, left, h, w) of image src (c, sh, sw) scaled to [-1, 1]
 * into out (c, h, w), mirrored left-right when flip is set. */
static void scale_window(const uint8_t *src, int64_t c, int64_t sh, int64_t sw, int64_t top,
                         int64_t left, int64_t h, int64_t w, int flip, float *out)
{
	for (int64_t k = 0; k < c; k++)
		for (int64_t y = 0; y < h; y++, out += w) {
			const uint8_t *row = src + (k * sh + top + y) * sw + left;
			for (int64_t x = 0; x < w; x++)
				out[x] = (float)row[flip ? w - 1 - x : x] / 127.5f - 1.0f;
		}
}

void rt_images_scaled(const rt_images *im, int64_t i, int flip, float *out)
{
	int64_t c = im->c, h = im->h, w = im->w;
	scale_window(im->pixels + i * c * h * w, c, h, w, 0, 0, h, w, flip, out);
}

void rt_images_drawn(const rt_images *im, int64_t i, uint64_t seed, int64_t q, int flip,
                     float *out)
{
	if (!im->full) {
		rt_images_scaled(im, i, flip, out);
		return;
	}
	const int64_t *d = im->full_dims + 3 * i;   /* offset, height, width */
	int64_t top, left;
	rt_data_crop(seed, q, d[1], d[2], im->h, im->w, &top, &left);
	scale_window(im->full + d[0], im->c, d[1], d[2], top, left, im->h, im->w, flip, out);
}

void rt_images_free(rt_images *im)
{
	free(im->pixels);
	free(im->labels);
	free(im->full);
	free(im->full_dims);
	memset(im, 0, sizeof *im);
}
