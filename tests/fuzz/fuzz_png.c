/* fuzz_png: rt_image_read (data.h, stb_image underneath) on arbitrary
 * bytes, for a grey and for an RGB model: as is, converting channels (both
 * at the size the IHDR names; 1 x 1 when it names none or over 2^16
 * pixels, which exercises the size check instead), and resized and
 * centre-cropped to 5 x 7 when the file claims at most 2^16 pixels. PNG
 * is most seeds' format (JPEG, HDR, PNM, TGA and BMP ones exercise
 * image_check.c); the other formats stb_image reads are reached by
 * mutation.
 *
 * A PNG chunk ends with a CRC-32 that random mutations almost never keep
 * right, so before reading, the harness rewrites the CRC of every whole
 * chunk it can walk to: the fuzzer then explores what lies behind the
 * check. Contract: RT_OK with an image of the promised size, or RT_ERR
 * with "PATH: ..." and nothing allocated. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "data.h"
#include "fuzz.h"
#include "tensor.h"

enum { SIG = 8, MAX_PIXELS = 1 << 16 };

static uint32_t be32(const uint8_t *b)
{
	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* Rewrites the CRC of each chunk (length, type, data, CRC) of f[0..size). */
static void fix_crcs(uint8_t *f, size_t size)
{
	for (size_t at = SIG; at + 12 <= size;) {
		uint32_t len = be32(f + at);
		if (len > size - at - 12)
			break;
		uint32_t crc = (uint32_t)crc32(0, f + at + 4, len + 4);
		uint8_t *c = f + at + 8 + len;
		c[0] = (uint8_t)(crc >> 24), c[1] = (uint8_t)(crc >> 16);
		c[2] = (uint8_t)(crc >> 8), c[3] = (uint8_t)crc;
		at += 12 + (size_t)len;
	}
}

/* The model size: the IHDR's when plausible, else 1 x 1. */
static void model_size(const uint8_t *f, size_t size, int64_t *h, int64_t *w)
{
	*h = *w = 1;
	if (size < SIG + 16 || memcmp(f + SIG + 4, "IHDR", 4) != 0)
		return;
	uint64_t fw = be32(f + SIG + 8), fh = be32(f + SIG + 12);
	if (fw >= 1 && fh >= 1 && fw * fh <= MAX_PIXELS)
		*h = (int64_t)fh, *w = (int64_t)fw;
}

/* One read of the file at path; checks the contract. */
static void read_once(const char *path, int64_t c, int64_t h, int64_t w,
                      const rt_image_opts *o)
{
	char err[512];
	uint8_t *px = (uint8_t *)1;
	int64_t ih = -1, iw = -1;
	if (rt_image_read(path, c, h, w, o, &px, &ih, &iw, err, sizeof err) != RT_OK) {
		FUZZ_CHECK(px == NULL);
		fuzz_check_file_message(err);
		return;
	}
	FUZZ_CHECK(o->resize || o->crop ? ih >= h && iw >= w : ih == h && iw == w);
	fuzz_touch(px, (size_t)(c * ih * iw));
	free(px);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *f = malloc(size ? size : 1);
	FUZZ_CHECK(f != NULL);
	memcpy(f, data, size);
	if (size >= SIG)
		fix_crcs(f, size);
	int64_t h, w;
	model_size(f, size, &h, &w);
	const char *path = fuzz_path(f, size);
	/* resizing decodes whatever size the file claims (up to 2^26 pixels,
	 * seconds a run): only files that claim at most MAX_PIXELS are resized */
	int64_t fh, fw;
	char err[512];
	int small = rt_image_size(path, &fh, &fw, err, sizeof err) == RT_OK &&
	            fh * fw <= MAX_PIXELS;
	const rt_image_opts as_is = { 0 }, fit = { 1, RT_CROP_CENTER, RT_CHANNELS_AS_IS };
	for (int64_t c = 1; c <= 3; c += 2) {
		const rt_image_opts convert = { 0, RT_CROP_NONE,
		                                c == 1 ? RT_CHANNELS_GREY : RT_CHANNELS_RGB };
		read_once(path, c, h, w, &as_is);
		read_once(path, c, h, w, &convert);
		if (small)
			read_once(path, c, 5, 7, &fit);
	}
	free(f);
	return 0;
}
