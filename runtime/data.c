/* data.c: the data set a spec names (rt_dataset_open), IDX image files
 * (MNIST, Fashion-MNIST), and images to floats.
 *
 * IDX files go through zlib so that gzipped and raw files read alike. The
 * header is big-endian: a 4-byte magic (0, 0, type 0x08 = u8, rank 3),
 * then one u32 per dim (N, H, W); the N * H * W pixel bytes follow and end
 * the file. Reading to the end also makes zlib check the gzip CRC. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "data.h"
#include "data_impl.h"
#include "tensor.h"

enum { IDX_U8_RANK3 = 0x00000803, IDX_MAX_SIDE = 4096, IDX_HEADER = 16 };

static uint32_t big_endian(const unsigned char *b)
{
	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

int rt_data_ends_with(const char *name, const char *suffix)
{
	size_t n = strlen(name), s = strlen(suffix);
	return n >= s && strcmp(name + n - s, suffix) == 0;
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

static int parse_header(const unsigned char *h, const char *path, rt_images *out,
                        char *err, size_t errlen)
{
	uint32_t magic = big_endian(h);
	if (magic != IDX_U8_RANK3) {
		snprintf(err, errlen, "%s: not an IDX image file (magic 0x%08x, want 0x%08x%s)",
		         path, magic, IDX_U8_RANK3,
		         magic == 0x00000801 ? "; this is a labels file" : "");
		return RT_ERR;
	}
	out->n = big_endian(h + 4);
	out->h = big_endian(h + 8);
	out->w = big_endian(h + 12);
	out->c = 1;
	if (out->n < 1 || out->h < 1 || out->w < 1 || out->h > IDX_MAX_SIDE ||
	    out->w > IDX_MAX_SIDE) {
		snprintf(err, errlen, "%s: corrupt IDX header: implausible dimensions %lld x %lld x %lld",
		         path, (long long)out->n, (long long)out->h, (long long)out->w);
		return RT_ERR;
	}
	return RT_OK;
}

/* The pixels after the header: exactly n * h * w bytes, then the end. */
static int idx_pixels(gzFile f, const char *path, rt_images *out, char *err, size_t errlen)
{
	size_t want = (size_t)(out->n * out->h * out->w), len = 0;
	if (rt_data_read(f, path, want + 1, &out->pixels, &len, err, errlen) != RT_OK)
		return RT_ERR;
	if (len < want) {
		snprintf(err, errlen, "%s: short read: the header promises %lld images of %lldx%lld "
		         "(%zu bytes), the file holds %zu", path, (long long)out->n,
		         (long long)out->h, (long long)out->w, want, len);
		return RT_ERR;
	}
	if (len > want) {
		snprintf(err, errlen, "%s: corrupt: data after the %lld images of %lldx%lld the "
		         "header promises (wrong dimensions?)", path, (long long)out->n,
		         (long long)out->h, (long long)out->w);
		return RT_ERR;
	}
	return RT_OK;
}

/* An IDX image file; when want is not NULL, its images must be that size
 * (c, h, w), checked before the pixels are read. */
static int idx_read(const char *path, const int64_t *want, rt_images *out, char *err,
                    size_t errlen)
{
	memset(out, 0, sizeof *out);
	gzFile f = rt_data_gzopen(path, err, errlen);
	if (!f)
		return RT_ERR;
	uint8_t *head = NULL;
	size_t len = 0;
	int rc = rt_data_read(f, path, IDX_HEADER, &head, &len, err, errlen);
	if (rc == RT_OK && len < IDX_HEADER) {
		snprintf(err, errlen, "%s: too short for an IDX header (%zu bytes)", path, len);
		rc = RT_ERR;
	}
	if (rc == RT_OK)
		rc = parse_header(head, path, out, err, errlen);
	if (rc == RT_OK && want && (want[0] != 1 || want[1] != out->h || want[2] != out->w))
		rc = rt_data_size_error(path, 1, out->h, out->w, want[0], want[1], want[2], err,
		                        errlen);
	if (rc == RT_OK)
		rc = idx_pixels(f, path, out, err, errlen);
	free(head);
	gzclose(f);
	if (rc != RT_OK)
		rt_images_free(out);
	return rc;
}

int rt_idx_read_images(const char *path, rt_images *out, char *err, size_t errlen)
{
	return idx_read(path, NULL, out, err, errlen);
}

void rt_images_batch(const rt_images *im, int64_t first, int64_t count, float *out)
{
	int64_t size = im->c * im->h * im->w;
	for (int64_t k = 0; k < count; k++)
		rt_images_scaled(im, (first + k) % im->n, 0, out + k * size);
}

void rt_images_scaled(const rt_images *im, int64_t i, int flip, float *out)
{
	int64_t w = im->w, rows = im->c * im->h;
	const uint8_t *src = im->pixels + i * rows * w;
	for (int64_t r = 0; r < rows; r++, src += w, out += w)
		for (int64_t x = 0; x < w; x++)
			out[x] = (float)src[flip ? w - 1 - x : x] / 127.5f - 1.0f;
}

void rt_images_free(rt_images *im)
{
	free(im->pixels);
	memset(im, 0, sizeof *im);
}

/* ---- rt_dataset_open: which reader a spec names ---- */

/* 1 when folder dir has an entry named PREFIX*SUFFIX. */
static int has_entry(const char *dir, const char *prefix, const char *suffix)
{
	DIR *d = opendir(dir);
	int found = 0;
	for (struct dirent *e; d && !found && (e = readdir(d));)
		found = strncmp(e->d_name, prefix, strlen(prefix)) == 0 &&
		        rt_data_ends_with(e->d_name, suffix);
	if (d)
		closedir(d);
	return found;
}

/* One PNG file as a data set of one image. */
static int single_png(const char *path, const int64_t *m, rt_images *out, char *err,
                      size_t errlen)
{
	*out = (rt_images){ 1, m[0], m[1], m[2], malloc((size_t)(m[0] * m[1] * m[2])) };
	if (!out->pixels) {
		snprintf(err, errlen, "%s: out of memory", path);
		return RT_ERR;
	}
	int rc = rt_png_read(path, m[0], m[1], m[2], out->pixels, err, errlen);
	if (rc != RT_OK)
		rt_images_free(out);
	return rc;
}

static int cifar(const char *path, const int64_t *m, rt_images *out, char *err,
                 size_t errlen)
{
	if (m[0] != 3 || m[1] != 32 || m[2] != 32)
		return rt_data_size_error(path, 3, 32, 32, m[0], m[1], m[2], err, errlen);
	return rt_cifar_read(path, out, err, errlen);
}

/* A file: CIFAR by its name, IDX or PNG by its first bytes. */
static int open_file(const char *path, const int64_t *m, rt_images *out, char *err,
                     size_t errlen)
{
	static const uint8_t png_sig[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };
	size_t n = strlen(path);
	if (rt_data_ends_with(path, ".bin") || rt_data_ends_with(path, ".bin.gz"))
		return cifar(path, m, out, err, errlen);
	if (n > 4 && strcasecmp(path + n - 4, ".png") == 0)
		return single_png(path, m, out, err, errlen);
	gzFile f = rt_data_gzopen(path, err, errlen);
	if (!f)
		return RT_ERR;
	uint8_t *head = NULL;
	size_t len = 0;
	int rc = rt_data_read(f, path, sizeof png_sig, &head, &len, err, errlen);
	int direct = gzdirect(f);
	gzclose(f);
	if (rc == RT_OK && len >= 2 && head[0] == 0 && head[1] == 0)
		rc = idx_read(path, m, out, err, errlen);
	else if (rc == RT_OK && direct && len == sizeof png_sig && !memcmp(head, png_sig, len))
		rc = single_png(path, m, out, err, errlen);
	else if (rc == RT_OK) {
		snprintf(err, errlen, "%s: %s", path, len == 0 ? "empty file" :
		         "not a data set ddpmc reads (an IDX file, a CIFAR-10 .bin batch, "
		         "a PNG, or a folder of them)");
		rc = RT_ERR;
	}
	free(head);
	return rc;
}

static int open_dir(const char *dir, const int64_t *m, rt_images *out, char *err,
                    size_t errlen)
{
	static const char *idx_names[] = { "train-images-idx3-ubyte.gz",
	                                   "train-images-idx3-ubyte" };
	if (has_entry(dir, "data_batch_", ".bin") || has_entry(dir, "data_batch_", ".bin.gz"))
		return cifar(dir, m, out, err, errlen);
	for (int i = 0; i < 2; i++) {
		char path[4096];
		struct stat st;
		snprintf(path, sizeof path, "%s/%s", dir, idx_names[i]);
		if (stat(path, &st) == 0 && !S_ISDIR(st.st_mode))
			return idx_read(path, m, out, err, errlen);
	}
	return rt_pngdir_read(dir, m[0], m[1], m[2], out, err, errlen);
}

int rt_dataset_open(const char *spec, int64_t c, int64_t h, int64_t w, rt_images *out,
                    char *err, size_t errlen)
{
	memset(out, 0, sizeof *out);
	int fashion = strcmp(spec, "fashion-mnist") == 0;
	const char *path = fashion ? RT_FASHION_MNIST : spec;
	const int64_t m[3] = { c, h, w };
	struct stat st;
	if (c < 1 || h < 1 || w < 1 || h > 1 << 16 || w > 1 << 16 || c > 4) {
		snprintf(err, errlen, "%s: the model's image size %lldx%lldx%lld is not one data can "
		         "have", path, (long long)c, (long long)h, (long long)w);
		return RT_ERR;
	}
	if (stat(path, &st) != 0) {
		snprintf(err, errlen, "%s: cannot open: %s%s", path, strerror(errno),
		         fashion ? " (install Debian's dataset-fashion-mnist package)" : "");
		return RT_ERR;
	}
	return S_ISDIR(st.st_mode) ? open_dir(path, m, out, err, errlen)
	                           : open_file(path, m, out, err, errlen);
}
