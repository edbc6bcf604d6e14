/* image_read.c: one image file for a model of c x h x w (rt_image_read,
 * data.h), decoded by stb_image (Debian's libstb), its channels made the
 * model's and its size fitted by the rt_image_opts.
 *
 * The file is read into memory; its header is read first (stbi_info): its
 * channels and size are checked before any image-sized allocation, so a
 * file that claims a huge image costs nothing, and before that what
 * stb_image would trust in it (rt_image_check, image_check.c). stb_image
 * then decodes it to the file's kind, grey (1) or RGB (3), which drops
 * alpha; the conversion to the model's channels and the resize follow, on
 * planes (c, height, width). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <stb/stb_image.h>

#include "data.h"
#include "data_impl.h"
#include "tensor.h"

enum { MAX_PIXELS = 1 << 26, MAX_FILE = 1 << 30 };

typedef struct {
	uint8_t *p;             /* (len) the whole file */
	size_t len;
} file_bytes;

/* The whole file at path into *b (at most MAX_FILE bytes; the buffer
 * grows with what is read). */
static int read_file(const char *path, file_bytes *b, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return rt_data_open_error(path, err, errlen);
	size_t cap = 0, got = 1;
	int rc = RT_OK;
	while (rc == RT_OK && got > 0) {
		if (b->len == cap && cap >= MAX_FILE) {
			snprintf(err, errlen, "%s: over %d bytes: not an image ddpmc reads", path, MAX_FILE);
			rc = RT_ERR;
		} else if (b->len == cap) {
			uint8_t *p = realloc(b->p, cap = cap ? 2 * cap : 1 << 16);
			if (!p) {
				snprintf(err, errlen, "%s: out of memory for %zu bytes", path, cap);
				rc = RT_ERR;
			} else
				b->p = p;
		} else
			b->len += got = fread(b->p + b->len, 1, cap - b->len, f);
	}
	if (rc == RT_OK && ferror(f)) {
		snprintf(err, errlen, "%s: read error", path);
		rc = RT_ERR;
	}
	fclose(f);
	return rc;
}

int rt_image_name(const char *name)
{
	static const char *const ext[] = { ".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tga",
	                                   ".psd", ".hdr", ".pic", ".pnm", ".ppm", ".pgm" };
	size_t n = strlen(name);
	for (size_t i = 0; i < sizeof ext / sizeof *ext; i++) {
		size_t k = strlen(ext[i]);
		if (n > k && strcasecmp(name + n - k, ext[i]) == 0)
			return 1;
	}
	return 0;
}

/* stb_image's failure reason, printable on one line: it can quote an
 * unknown PNG chunk's four bytes, which may be any bytes. */
static const char *stb_reason(char *buf, size_t len)
{
	const char *r = stbi_failure_reason();
	snprintf(buf, len, "%s", r ? r : "unknown failure");
	for (char *p = buf; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			*p = '?';
	return buf;
}

/* The image's kind against the model's channels and opts->channels. */
static int check_channels(const char *path, int file_c, int64_t c, rt_channels mode,
                          char *err, size_t errlen)
{
	if (file_c == c || (mode == RT_CHANNELS_GREY && c == 1) ||
	    (mode == RT_CHANNELS_RGB && c == 3))
		return RT_OK;
	if (c == 1)
		snprintf(err, errlen, "%s: an RGB image, the model takes grey images (--grey "
		         "converts to BT.601 luma)", path);
	else
		snprintf(err, errlen, "%s: a grey image, the model takes RGB images (--rgb "
		         "replicates grey to R = G = B)", path);
	return RT_ERR;
}

/* The smallest size of the image's aspect ratio that covers h x w (for a
 * square model, torchvision's Resize(h): the shorter side to h). */
static void cover_size(int64_t fh, int64_t fw, int64_t h, int64_t w, int64_t *th, int64_t *tw)
{
	if (h * fw >= w * fh) {
		*th = h;
		*tw = h * fw / fh > w ? h * fw / fh : w;
	} else {
		*tw = w;
		*th = w * fh / fw > h ? w * fh / fw : h;
	}
}

/* The size the image will have, (th, tw), checked against the model's. */
static int target_size(const char *path, int64_t fh, int64_t fw, int64_t h, int64_t w,
                       const rt_image_opts *o, int64_t *th, int64_t *tw, char *err,
                       size_t errlen)
{
	*th = fh, *tw = fw;
	if (fh * fw > MAX_PIXELS) {
		snprintf(err, errlen, "%s: image is %lldx%lld, over the %d pixels ddpmc reads", path,
		         (long long)fh, (long long)fw, MAX_PIXELS);
		return RT_ERR;
	}
	if (o->resize)
		cover_size(fh, fw, h, w, th, tw);
	if (*th * *tw > MAX_PIXELS) {
		snprintf(err, errlen, "%s: image is %lldx%lld; resized it would be %lldx%lld, over the "
		         "%d pixels ddpmc reads", path, (long long)fh, (long long)fw, (long long)*th,
		         (long long)*tw, MAX_PIXELS);
		return RT_ERR;
	}
	if (o->crop == RT_CROP_NONE && !o->resize && (fh != h || fw != w)) {
		snprintf(err, errlen, "%s: image is %lldx%lld, the model takes %lldx%lld (--resize "
		         "scales, --crop cuts)", path, (long long)fh, (long long)fw, (long long)h,
		         (long long)w);
		return RT_ERR;
	}
	if (*th < h || *tw < w) {
		snprintf(err, errlen, "%s: image is %lldx%lld, smaller than the model's %lldx%lld "
		         "(--resize scales it up)", path, (long long)fh, (long long)fw, (long long)h,
		         (long long)w);
		return RT_ERR;
	}
	return RT_OK;
}

/* in (n, file_c) interleaved to out (c, n) planes: kept, BT.601 luma as
 * PIL computes it, or grey replicated. */
static void to_planes(const uint8_t *in, int file_c, int64_t c, int64_t n, uint8_t *out)
{
	for (int64_t i = 0; i < n; i++) {
		const uint8_t *p = in + i * file_c;
		if (file_c == 3 && c == 1)
			out[i] = (uint8_t)((19595u * p[0] + 38470u * p[1] + 7471u * p[2] + 0x8000u) >> 16);
		for (int64_t k = 0; k < c && !(file_c == 3 && c == 1); k++)
			out[k * n + i] = p[file_c == 1 ? 0 : k];
	}
}

/* Decodes the file's bytes (fh x fw of kind file_c) into *planes (c, fh,
 * fw). */
static int decode(const file_bytes *b, const char *path, int file_c, int64_t c, int64_t fh,
                  int64_t fw, uint8_t **planes, char *err, size_t errlen)
{
	int x, y, n;
	char why[64];
	uint8_t *px = stbi_load_from_memory(b->p, (int)b->len, &x, &y, &n, file_c);
	if (!px || x != fw || y != fh) {
		snprintf(err, errlen, "%s: corrupt image (stb_image: %s)", path,
		         px ? "size differs from its header" : stb_reason(why, sizeof why));
		stbi_image_free(px);
		return RT_ERR;
	}
	*planes = malloc((size_t)(c * fh * fw));
	if (*planes)
		to_planes(px, file_c, c, fh * fw, *planes);
	else
		snprintf(err, errlen, "%s: out of memory for a %lldx%lld image", path,
		         (long long)fh, (long long)fw);
	stbi_image_free(px);
	return *planes ? RT_OK : RT_ERR;
}

/* *px (c, fh, fw) resized in place of itself to (c, th, tw). */
static int resize(const char *path, uint8_t **px, int64_t c, int64_t fh, int64_t fw,
                  int64_t th, int64_t tw, char *err, size_t errlen)
{
	if (th == fh && tw == fw)
		return RT_OK;
	uint8_t *out = malloc((size_t)(c * th * tw));
	if (!out || rt_image_resize(*px, c, fh, fw, out, th, tw) != RT_OK) {
		snprintf(err, errlen, "%s: out of memory resizing to %lldx%lld", path, (long long)th,
		         (long long)tw);
		free(out);
		return RT_ERR;
	}
	free(*px);
	*px = out;
	return RT_OK;
}

/* The file's header: its size and kind (1 grey, 3 RGB). */
static int header(const file_bytes *b, const char *path, int64_t *fh, int64_t *fw,
                  int *file_c, char *err, size_t errlen)
{
	int x, y, n;
	char why[64];
	char buf[160];
	const char *wrong = rt_image_check(b->p, b->len, buf, sizeof buf);
	if (wrong) {
		snprintf(err, errlen, "%s: %s", path, wrong);
		return RT_ERR;
	}
	if (!stbi_info_from_memory(b->p, (int)b->len, &x, &y, &n)) {
		snprintf(err, errlen, "%s: not an image ddpmc reads (stb_image: %s)", path,
		         stb_reason(why, sizeof why));
		return RT_ERR;
	}
	if (x < 1 || y < 1) {   /* stb_image's PNM header accepts a size of 0 */
		snprintf(err, errlen, "%s: corrupt image: its header says %dx%d pixels", path, y, x);
		return RT_ERR;
	}
	*fh = y, *fw = x, *file_c = n <= 2 ? 1 : 3;
	return RT_OK;
}

int rt_image_size(const char *path, int64_t *h, int64_t *w, char *err, size_t errlen)
{
	file_bytes b = { NULL, 0 };
	int file_c;
	*h = *w = 0;
	int rc = read_file(path, &b, err, errlen);
	if (rc == RT_OK)
		rc = header(&b, path, h, w, &file_c, err, errlen);
	free(b.p);
	return rc;
}

int rt_image_read(const char *path, int64_t c, int64_t h, int64_t w,
                  const rt_image_opts *opts, uint8_t **px, int64_t *ih, int64_t *iw,
                  char *err, size_t errlen)
{
	static const rt_image_opts as_is = { 0 };
	const rt_image_opts *o = opts ? opts : &as_is;
	*px = NULL;
	if (c != 1 && c != 3) {
		snprintf(err, errlen, "%s: the model takes %lld-channel images; image files give 1 "
		         "(grey) or 3 (RGB)", path, (long long)c);
		return RT_ERR;
	}
	file_bytes b = { NULL, 0 };
	int64_t fh = 0, fw = 0, th = 0, tw = 0;
	int file_c = 0;
	int rc = read_file(path, &b, err, errlen);
	if (rc == RT_OK)
		rc = header(&b, path, &fh, &fw, &file_c, err, errlen);
	if (rc == RT_OK)
		rc = check_channels(path, file_c, c, o->channels, err, errlen);
	if (rc == RT_OK)
		rc = target_size(path, fh, fw, h, w, o, &th, &tw, err, errlen);
	if (rc == RT_OK)
		rc = decode(&b, path, file_c, c, fh, fw, px, err, errlen);
	free(b.p);
	if (rc == RT_OK)
		rc = resize(path, px, c, fh, fw, th, tw, err, errlen);
	if (rc != RT_OK) {
		free(*px);
		*px = NULL;
		th = tw = 0;
	}
	*ih = th, *iw = tw;
	return rc;
}
