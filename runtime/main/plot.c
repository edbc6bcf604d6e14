/* plot.c: the loss curve of a training run as a PNG (cli.h).
 *
 * A W x H RGB picture, white; the plot area is inset by margins that hold
 * the tick labels, drawn in a 3x5 pixel font at twice its size. x is the
 * step (linear, from the first to the last logged step), y the loss
 * (log10, from the smallest to the largest positive loss_mean, padded by
 * 5%). Ticks: 5 on each axis with grey grid lines; the curve joins the
 * points with straight lines (Bresenham). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "image.h"
#include "tensor.h"

enum { W = 640, H = 400, LEFT = 70, RIGHT = 20, TOP = 20, BOTTOM = 40, SCALE = 2, TICKS = 5 };

typedef struct {
	uint8_t *px;            /* (H, W, 3) */
} canvas;

static void dot(canvas *c, int x, int y, const uint8_t rgb[3])
{
	if (x >= 0 && x < W && y >= 0 && y < H)
		memcpy(c->px + 3 * ((size_t)y * W + (size_t)x), rgb, 3);
}

static void line(canvas *c, int x0, int y0, int x1, int y1, const uint8_t rgb[3])
{
	int dx = abs(x1 - x0), dy = -abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
	for (int e = dx + dy;;) {
		dot(c, x0, y0, rgb);
		if (x0 == x1 && y0 == y1)
			break;
		int e2 = 2 * e;
		if (e2 >= dy)
			e += dy, x0 += sx;
		if (e2 <= dx)
			e += dx, y0 += sy;
	}
}

/* The 3x5 font: each glyph five rows of three bits, the high bit left. */
static const struct { char ch; uint8_t rows[5]; } font[] = {
	{ '0', { 7, 5, 5, 5, 7 } }, { '1', { 2, 6, 2, 2, 7 } }, { '2', { 7, 1, 7, 4, 7 } },
	{ '3', { 7, 1, 7, 1, 7 } }, { '4', { 5, 5, 7, 1, 1 } }, { '5', { 7, 4, 7, 1, 7 } },
	{ '6', { 7, 4, 7, 5, 7 } }, { '7', { 7, 1, 1, 1, 1 } }, { '8', { 7, 5, 7, 5, 7 } },
	{ '9', { 7, 5, 7, 1, 7 } }, { '.', { 0, 0, 0, 0, 2 } }, { '-', { 0, 0, 7, 0, 0 } },
	{ '+', { 0, 2, 7, 2, 0 } }, { 'e', { 0, 3, 7, 4, 3 } }, { 's', { 3, 4, 2, 1, 6 } },
	{ 't', { 2, 7, 2, 2, 3 } }, { 'p', { 0, 6, 5, 6, 4 } }, { 'l', { 6, 2, 2, 2, 7 } },
	{ 'o', { 0, 2, 5, 5, 2 } },
};

static int text_width(const char *s)
{
	return (int)strlen(s) * 4 * SCALE;
}

/* s with its top-left corner at (x, y). */
static void text(canvas *c, int x, int y, const char *s, const uint8_t rgb[3])
{
	for (; *s; s++, x += 4 * SCALE)
		for (size_t g = 0; g < sizeof font / sizeof *font; g++)
			if (font[g].ch == *s)
				for (int r = 0; r < 5 * SCALE; r++)
					for (int k = 0; k < 3 * SCALE; k++)
						if (font[g].rows[r / SCALE] >> (2 - k / SCALE) & 1)
							dot(c, x + k, y + r, rgb);
}

typedef struct {
	double x0, x1, y0, y1;  /* data ranges: step, log10(loss) */
} axes;

static int px_x(const axes *a, double x)
{
	return LEFT + (int)lround((x - a->x0) / (a->x1 - a->x0) * (W - LEFT - RIGHT - 1));
}

static int px_y(const axes *a, double ly)
{
	return H - BOTTOM - 1 - (int)lround((ly - a->y0) / (a->y1 - a->y0) * (H - TOP - BOTTOM - 1));
}

static void ranges(const cli_metric *m, int64_t n, axes *a)
{
	double lo = INFINITY, hi = -INFINITY;
	for (int64_t i = 0; i < n; i++)
		if (m[i].loss_mean > 0 && isfinite(m[i].loss_mean)) {
			lo = fmin(lo, log10(m[i].loss_mean));
			hi = fmax(hi, log10(m[i].loss_mean));
		}
	if (!(lo <= hi))
		lo = -1, hi = 0;
	double pad = hi - lo > 1e-3 ? 0.05 * (hi - lo) : 0.05;
	a->y0 = lo - pad, a->y1 = hi + pad;
	a->x0 = (double)m[0].step, a->x1 = (double)m[n - 1].step;
	if (a->x1 <= a->x0)
		a->x1 = a->x0 + 1;
}

static void frame(canvas *c, const axes *a)
{
	static const uint8_t grid[3] = { 225, 225, 225 }, ink[3] = { 0, 0, 0 };
	char s[32];
	for (int k = 0; k < TICKS; k++) {
		double f = (double)k / (TICKS - 1);
		double xv = a->x0 + f * (a->x1 - a->x0), yv = a->y0 + f * (a->y1 - a->y0);
		int x = px_x(a, xv), y = px_y(a, yv);
		line(c, x, TOP, x, H - BOTTOM - 1, grid);
		line(c, LEFT, y, W - RIGHT - 1, y, grid);
		snprintf(s, sizeof s, "%.0f", xv);
		text(c, x - text_width(s) / 2, H - BOTTOM + 6, s, ink);
		snprintf(s, sizeof s, "%.3g", pow(10, yv));
		text(c, LEFT - 6 - text_width(s), y - 5, s, ink);
	}
	line(c, LEFT, TOP, LEFT, H - BOTTOM - 1, ink);
	line(c, LEFT, H - BOTTOM - 1, W - RIGHT - 1, H - BOTTOM - 1, ink);
	text(c, W - RIGHT - text_width("step"), H - 14, "step", ink);
	text(c, 4, 4, "loss", ink);
}

int cli_plot_loss(const char *path, const cli_metric *m, int64_t n, char *err, size_t errlen)
{
	static const uint8_t blue[3] = { 31, 119, 180 };
	canvas c = { malloc((size_t)W * H * 3) };
	if (!c.px) {
		snprintf(err, errlen, "%s: out of memory", path);
		return RT_ERR;
	}
	memset(c.px, 255, (size_t)W * H * 3);
	axes a = { 0, 1, -1, 0 };
	if (n > 0)
		ranges(m, n, &a);
	frame(&c, &a);
	int have = 0, px = 0, py = 0;
	for (int64_t i = 0; i < n; i++) {
		if (!(m[i].loss_mean > 0) || !isfinite(m[i].loss_mean))
			continue;
		int x = px_x(&a, (double)m[i].step), y = px_y(&a, log10(m[i].loss_mean));
		if (have)
			line(&c, px, py, x, y, blue);
		else
			dot(&c, x, y, blue);
		px = x, py = y, have = 1;
	}
	int rc = rt_png_write_pixels(path, c.px, H, W, 3, err, errlen);
	free(c.px);
	return rc;
}
