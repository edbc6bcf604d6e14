/* fuzz_cifar: rt_cifar_read (data.h) on one arbitrary batch file,
 * gzipped or raw. Contract: RT_OK with n x 3 x 32 x 32 pixels, or RT_ERR
 * with "PATH: ..." and nothing allocated. */
#include "data.h"
#include "fuzz.h"
#include "tensor.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *path = fuzz_path(data, size);
	rt_images im;
	char err[512];
	if (rt_cifar_read(path, &im, err, sizeof err) != RT_OK) {
		fuzz_check_file_message(err);
		FUZZ_CHECK(im.pixels == NULL && im.n == 0);
		return 0;
	}
	FUZZ_CHECK(im.n > 0 && im.c == 3 && im.h == 32 && im.w == 32 && !im.labels);
	fuzz_touch(im.pixels, (size_t)im.n * 3 * 32 * 32);
	rt_images_free(&im);
	return 0;
}
