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
#include <sys/stat.h>

#include "data.h"
#include "data_impl.h"
#include "tensor.h"

enum { IDX_U8_RANK3 = 0x00000803, IDX_U8_RANK1 = 0x00000801, IDX_MAX_SIDE = 4096,
       IDX_HEADER = 16, IDX_LABELS_HEADER = 8 };

static uint32_t big_endian(const unsigned char *b)
{
	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
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

/* The first `size` bytes of f into *head (malloc'd); an error when the
 * file is shorter. */
static int read_head(gzFile f, const char *path, size_t size, uint8_t **head, char *err,
                     size_t errlen)
{
	size_t len = 0;
	int rc = rt_data_read(f, path, size, head, &len, err, errlen);
	if (rc == RT_OK && len < size) {
		snprintf(err, errlen, "%s: too short for an IDX header (%zu bytes)", path, len);
		rc = RT_ERR;
	}
	return rc;
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
	int rc = read_head(f, path, IDX_HEADER, &head, err, errlen);
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

static int cifar(const char *path, const int64_t *m, rt_images *out, char *err,
                 size_t errlen)
{
	if (m[0] != 3 || m[1] != 32 || m[2] != 32)
		return rt_data_size_error(path, 3, 32, 32, m[0], m[1], m[2], err, errlen);
	return rt_cifar_read(path, out, err, errlen);
}

/* A file: CIFAR or an image by its name, IDX or PNG by its first bytes. */
static int open_file(const char *path, const int64_t *m, const rt_image_opts *o,
                     rt_images *out, char *err, size_t errlen)
{
	static const uint8_t png_sig[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };
	if (rt_data_ends_with(path, ".bin") || rt_data_ends_with(path, ".bin.gz"))
		return cifar(path, m, out, err, errlen);
	if (rt_image_name(path))
		return rt_imagedir_read(path, m[0], m[1], m[2], o, out, err, errlen);
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
		rc = rt_imagedir_read(path, m[0], m[1], m[2], o, out, err, errlen);
	else if (rc == RT_OK) {
		snprintf(err, errlen, "%s: %s", path, len == 0 ? "empty file" :
		         "not a data set ddpmc reads (an IDX file, a CIFAR-10 .bin batch, "
		         "an image, or a folder of them)");
		rc = RT_ERR;
	}
	free(head);
	return rc;
}

static int open_dir(const char *dir, const int64_t *m, const rt_image_opts *o,
                    rt_images *out, char *err, size_t errlen)
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
	return rt_imagedir_read(dir, m[0], m[1], m[2], o, out, err, errlen);
}

/* Conversions that cannot give the model's channels. */
static int check_opts(const char *path, int64_t c, const rt_image_opts *o, char *err,
                      size_t errlen)
{
	if (!o || o->channels == RT_CHANNELS_AS_IS ||
	    (o->channels == RT_CHANNELS_GREY ? c == 1 : c == 3))
		return RT_OK;
	snprintf(err, errlen, "%s: converting the images to %s, but the model takes %lld-channel "
	         "images", path, o->channels == RT_CHANNELS_GREY ? "grey" : "RGB", (long long)c);
	return RT_ERR;
}

int rt_dataset_open(const char *spec, int64_t c, int64_t h, int64_t w,
                    const rt_image_opts *opts, rt_images *out, char *err, size_t errlen)
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
	if (check_opts(path, c, opts, err, errlen) != RT_OK)
		return RT_ERR;
	return S_ISDIR(st.st_mode) ? open_dir(path, m, opts, out, err, errlen)
	                           : open_file(path, m, opts, out, err, errlen);
}

/* ---- labels ---- */

/* The labels after the header: exactly n bytes, then the end. */
static int labels_body(gzFile f, const char *path, int64_t n, uint8_t **labels, char *err,
                       size_t errlen)
{
	size_t len = 0;
	if (rt_data_read(f, path, (size_t)n + 1, labels, &len, err, errlen) != RT_OK)
		return RT_ERR;
	if (len != (size_t)n) {
		snprintf(err, errlen, "%s: %s: the header promises %lld labels, the file holds %s",
		         path, len < (size_t)n ? "short read" : "corrupt", (long long)n,
		         len < (size_t)n ? "fewer" : "more");
		return RT_ERR;
	}
	return RT_OK;
}

int rt_idx_read_labels(const char *path, int64_t n, uint8_t **labels, char *err,
                       size_t errlen)
{
	*labels = NULL;
	gzFile f = rt_data_gzopen(path, err, errlen);
	if (!f)
		return RT_ERR;
	uint8_t *head = NULL;
	int rc = read_head(f, path, IDX_LABELS_HEADER, &head, err, errlen);
	if (rc == RT_OK && big_endian(head) != IDX_U8_RANK1) {
		snprintf(err, errlen, "%s: not an IDX labels file (magic 0x%08x, want 0x%08x)", path,
		         big_endian(head), IDX_U8_RANK1);
		rc = RT_ERR;
	}
	if (rc == RT_OK && big_endian(head + 4) != (uint64_t)n) {
		snprintf(err, errlen, "%s: %u labels for %lld images", path, big_endian(head + 4),
		         (long long)n);
		rc = RT_ERR;
	}
	if (rc == RT_OK)
		rc = labels_body(f, path, n, labels, err, errlen);
	free(head);
	gzclose(f);
	if (rc != RT_OK) {
		free(*labels);
		*labels = NULL;
	}
	return rc;
}

static int is_file(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && !S_ISDIR(st.st_mode);
}

/* The IDX images file spec names, into path; 0, or -1 when it names none. */
static int idx_file_of(const char *spec, char *path, size_t len)
{
	static const char *names[] = { "train-images-idx3-ubyte.gz", "train-images-idx3-ubyte" };
	const char *p = strcmp(spec, "fashion-mnist") == 0 ? RT_FASHION_MNIST : spec;
	struct stat st;
	if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode)) {
		snprintf(path, len, "%s", p);
		return rt_data_ends_with(p, ".bin") || rt_data_ends_with(p, ".bin.gz") ||
		       rt_image_name(p) ? -1 : 0;
	}
	for (int i = 0; i < 2; i++) {
		snprintf(path, len, "%s/%s", p, names[i]);
		if (is_file(path))
			return 0;
	}
	return -1;
}

int rt_idx_sibling(const char *spec, const char *from, const char *to, char *out,
                   size_t outlen, char *err, size_t errlen)
{
	char path[4096];
	if (idx_file_of(spec, path, sizeof path)) {
		snprintf(err, errlen, "%s: not an IDX data set", spec);
		return RT_ERR;
	}
	const char *slash = strrchr(path, '/'), *base = slash ? slash + 1 : path;
	const char *at = strstr(base, from);
	if (!at) {
		snprintf(err, errlen, "%s: the file name has no '%s' to make the name of its %s "
		         "file from", path, from, to);
		return RT_ERR;
	}
	int n = snprintf(out, outlen, "%.*s%s%s", (int)(at - path), path, to, at + strlen(from));
	if (n < 0 || (size_t)n >= outlen) {
		snprintf(err, errlen, "%s: path too long", path);
		return RT_ERR;
	}
	if (is_file(out))
		return RT_OK;
	char other[4096];                       /* the name with or without ".gz" */
	size_t k = strlen(out);
	if (rt_data_ends_with(out, ".gz"))
		snprintf(other, sizeof other, "%.*s", (int)(k - 3), out);
	else
		snprintf(other, sizeof other, "%s.gz", out);
	if (is_file(other)) {
		snprintf(out, outlen, "%s", other);
		return RT_OK;
	}
	snprintf(err, errlen, "%s: cannot open: %s", out, strerror(ENOENT));
	return RT_ERR;
}

int rt_dataset_labels(const char *spec, rt_images *im, char *err, size_t errlen)
{
	char path[4096], why[4200];
	if (im->labels)         /* an image folder's classes */
		return RT_OK;
	if (rt_idx_sibling(spec, "-images-idx3-", "-labels-idx1-", path, sizeof path, why,
	                   sizeof why) != RT_OK) {
		snprintf(err, errlen, "labels: %s (the program's train_step takes labels: they are "
		         "read from the IDX labels file beside the images, e.g. "
		         "train-labels-idx1-ubyte.gz beside train-images-idx3-ubyte.gz, or from "
		         "the class folders of an image folder)", why);
		return RT_ERR;
	}
	free(im->labels);
	return rt_idx_read_labels(path, im->n, &im->labels, err, errlen);
}
