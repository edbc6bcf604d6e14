/* data: training images read from the files data sets ship in.
 *
 * Images are N x C x H x W bytes (0..255), row-major, as stored; scaling to
 * [-1, 1] (x/127.5 - 1) happens when a batch is made. Readers return
 * RT_OK, or RT_ERR with a one-line message naming the file and what is
 * wrong (wrong magic, wrong dimensions, short read). */
#ifndef DDPMC_RUNTIME_DATA_H
#define DDPMC_RUNTIME_DATA_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
	int64_t n, c, h, w;
	uint8_t *pixels;        /* n * c * h * w */
} rt_images;

/* An IDX image file (magic 0x00000803: u8 data, 3 dims), gzipped or raw. */
int rt_idx_read_images(const char *path, rt_images *out, char *err, size_t errlen);

/* Writes images [first, first + count) wrapping around, scaled to [-1, 1],
 * into out (count * c * h * w floats). */
void rt_images_batch(const rt_images *im, int64_t first, int64_t count, float *out);

void rt_images_free(rt_images *im);

#endif
