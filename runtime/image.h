/* image: sample grids (and plain images) as PNG files.
 *
 * A grid lays out n images of C x H x W (C = 1: grey, C = 3: RGB) in
 * cols = ceil(sqrt(n)) columns and ceil(n / cols) rows, with a 2-pixel
 * black border around and between the images (torchvision's make_grid
 * with padding 2). Small images are magnified so that they can be seen:
 * each pixel becomes a K x K block (nearest neighbour), K = ceil(64 / max(H,
 * W)) unless given (28 x 28: K = 3, 84 px; 32 x 32: 2; 64 and more: 1);
 * width = cols * (W K + 2) + 2, height = rows * (H K + 2) + 2.
 * Values are in [-1, 1]: each is clipped (NaN counts as -1) and quantised
 * as round((x + 1) * 127.5) (docs/semantics.md §4). */
#ifndef DDPMC_RUNTIME_IMAGE_H
#define DDPMC_RUNTIME_IMAGE_H

#include <stddef.h>
#include <stdint.h>

/* The pixel byte of a value in [-1, 1]. */
uint8_t rt_quantise(float x);

/* The magnification K of h x w images: each at least 64 pixels a side. */
int64_t rt_grid_scale(int64_t h, int64_t w);
/* The grid's size in pixels at magnification scale. */
void rt_grid_size(int64_t n, int64_t h, int64_t w, int64_t scale, int64_t *grid_h,
                  int64_t *grid_w);

/* Writes images x (n, c, h, w) as a grid to path, magnified scale times
 * (0: rt_grid_scale's): 8-bit PNG, written to PATH.tmp.<pid> then renamed
 * over path. Returns RT_OK, or RT_ERR with a message naming the file in err. */
int rt_png_write_grid(const char *path, const float *x, int64_t n, int64_t c, int64_t h,
                      int64_t w, int64_t scale, char *err, size_t errlen);

/* Writes an image of bytes px (h, w, c), channels interleaved (c = 1: grey,
 * 3: RGB), as an 8-bit PNG, atomically as rt_png_write_grid does. */
int rt_png_write_pixels(const char *path, const uint8_t *px, int64_t h, int64_t w, int64_t c,
                        char *err, size_t errlen);

#endif
