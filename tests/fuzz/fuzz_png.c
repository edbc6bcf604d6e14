/* fuzz_png: rt_png_read (data.h) on arbitrary bytes, for a grey and for
 * an RGB model of the size the IHDR names (1 x 1 when it names none or
 * over 2^16 pixels, which exercises the size check instead).
 *
 * A PNG chunk ends with a CRC-32 that random mutations almost never keep
 * right, so before reading, the harness rewrites the CRC of every whole
 * chunk it can walk to: the fuzzer then explores what lies behind the
 * check. Contract: RT_OK, or RT_ERR with "PATH: ...". */
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *f = malloc(size ? size : 1), *px = NULL;
	FUZZ_CHECK(f != NULL);
	memcpy(f, data, size);
	if (size >= SIG)
		fix_crcs(f, size);
	int64_t h, w;
	model_size(f, size, &h, &w);
	const char *path = fuzz_path(f, size);
	FUZZ_CHECK((px = malloc((size_t)(3 * h * w))) != NULL);
	for (int64_t c = 1; c <= 3; c += 2) {
		char err[512];
		if (rt_png_read(path, c, h, w, px, err, sizeof err) != RT_OK)
			fuzz_check_file_message(err);
		else
			fuzz_touch(px, (size_t)(c * h * w));
	}
	free(px);
	free(f);
	return 0;
}
