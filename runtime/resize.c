/* resize.c: rt_image_resize (data.h), PIL's bilinear resampling of byte
 * images, the filter torchvision's Resize applies to PIL images
 * (antialiased: when shrinking by s, the triangle is s times wider, so
 * every input pixel counts and none is skipped).
 *
 * One axis of n_in pixels to n_out: scale = n_in / n_out, s = max(1, scale);
 * output pixel x is centred at (x + 0.5) * scale in input coordinates and
 * takes input pixels j in [floor(centre - s + 0.5), floor(centre + s + 0.5))
 * (clipped to the image) with weights max(0, 1 - |j + 0.5 - centre| / s),
 * divided by their sum. Rows are resampled first, then columns, in float;
 * the result is rounded to the nearest byte once. */
#include <math.h>
#include <stdlib.h>

#include "data.h"
#include "tensor.h"

typedef struct {
	int64_t taps;           /* the most input pixels one output pixel reads */
	int64_t *first;         /* (n_out) its first input pixel */
	int64_t *count;         /* (n_out) how many it reads */
	float *weight;          /* (n_out, taps) their weights, summing to 1 */
} axis_filter;

static void axis_free(axis_filter *a)
{
	free(a->first);
	free(a->count);
	free(a->weight);
}

/* The weights of one output pixel centred at `centre`. */
static void axis_pixel(axis_filter *a, int64_t x, double centre, double s, int64_t n_in)
{
	int64_t lo = (int64_t)floor(centre - s + 0.5), hi = (int64_t)floor(centre + s + 0.5);
	lo = lo < 0 ? 0 : lo;
	hi = hi > n_in ? n_in : hi;
	float *w = a->weight + x * a->taps;
	double sum = 0;
	for (int64_t j = lo; j < hi; j++) {
		double d = fabs((double)j + 0.5 - centre) / s;
		w[j - lo] = d < 1 ? (float)(1 - d) : 0.0f;
		sum += w[j - lo];
	}
	for (int64_t j = lo; j < hi && sum > 0; j++)
		w[j - lo] = (float)(w[j - lo] / sum);
	a->first[x] = lo;
	a->count[x] = hi - lo;
}

static int axis_make(axis_filter *a, int64_t n_in, int64_t n_out)
{
	double scale = (double)n_in / (double)n_out, s = scale > 1 ? scale : 1;
	a->taps = (int64_t)ceil(2 * s) + 2;
	a->first = malloc((size_t)n_out * sizeof *a->first);
	a->count = malloc((size_t)n_out * sizeof *a->count);
	a->weight = calloc((size_t)(n_out * a->taps), sizeof *a->weight);
	if (!a->first || !a->count || !a->weight)
		return -1;
	for (int64_t x = 0; x < n_out; x++)
		axis_pixel(a, x, ((double)x + 0.5) * scale, s, n_in);
	return 0;
}

/* One plane: src (sh, sw) -> rows (sh, dw) -> dst (dh, dw). */
static void resize_plane(const uint8_t *src, int64_t sh, int64_t sw, float *rows,
                         const axis_filter *fx, const axis_filter *fy, uint8_t *dst,
                         int64_t dh, int64_t dw)
{
	for (int64_t y = 0; y < sh; y++)
		for (int64_t x = 0; x < dw; x++) {
			const float *w = fx->weight + x * fx->taps;
			const uint8_t *in = src + y * sw + fx->first[x];
			float v = 0;
			for (int64_t k = 0; k < fx->count[x]; k++)
				v += w[k] * (float)in[k];
			rows[y * dw + x] = v;
		}
	for (int64_t y = 0; y < dh; y++)
		for (int64_t x = 0; x < dw; x++) {
			const float *w = fy->weight + y * fy->taps;
			float v = 0;
			for (int64_t k = 0; k < fy->count[y]; k++)
				v += w[k] * rows[(fy->first[y] + k) * dw + x];
			v = roundf(v);
			dst[y * dw + x] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
		}
}

int rt_image_resize(const uint8_t *src, int64_t c, int64_t sh, int64_t sw, uint8_t *dst,
                    int64_t dh, int64_t dw)
{
	axis_filter fx = { 0 }, fy = { 0 };
	float *rows = malloc((size_t)(sh * dw) * sizeof *rows);
	int ok = rows && axis_make(&fx, sw, dw) == 0 && axis_make(&fy, sh, dh) == 0;
	for (int64_t k = 0; ok && k < c; k++)
		resize_plane(src + k * sh * sw, sh, sw, rows, &fx, &fy, dst + k * dh * dw, dh, dw);
	axis_free(&fx);
	axis_free(&fy);
	free(rows);
	return ok ? RT_OK : RT_ERR;
}
