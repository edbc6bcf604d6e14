/* fuzz_idx: the IDX readers (data.h) on arbitrary bytes, gzipped or raw:
 * rt_idx_read_images, and rt_idx_read_labels for the count the header
 * names. Contract: RT_OK with n x 1 x h x w pixels (or n labels), or
 * RT_ERR with "PATH: ..." and nothing allocated. */
#include <stdlib.h>

#include "data.h"
#include "fuzz.h"
#include "tensor.h"

static void images(const char *path)
{
	rt_images im;
	char err[512];
	if (rt_idx_read_images(path, &im, err, sizeof err) != RT_OK) {
		fuzz_check_file_message(err);
		FUZZ_CHECK(im.pixels == NULL && im.labels == NULL && im.n == 0);
		return;
	}
	FUZZ_CHECK(im.n > 0 && im.c == 1 && im.h > 0 && im.w > 0);
	fuzz_touch(im.pixels, (size_t)(im.n * im.h * im.w));
	rt_images_free(&im);
}

/* n: the count in bytes 4..7 (big-endian) of a raw labels header. */
static void labels(const char *path, const uint8_t *data, size_t size)
{
	int64_t n = size >= 8 ? (int64_t)data[4] << 24 | data[5] << 16 | data[6] << 8 | data[7]
	                      : 1;
	uint8_t *lab;
	char err[512];
	if (rt_idx_read_labels(path, n, &lab, err, sizeof err) != RT_OK) {
		fuzz_check_file_message(err);
		FUZZ_CHECK(lab == NULL);
		return;
	}
	fuzz_touch(lab, (size_t)n);
	free(lab);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *path = fuzz_path(data, size);
	images(path);
	labels(path, data, size);
	return 0;
}
