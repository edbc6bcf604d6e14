/* plan: the static memory plan of a kernel program.
 * requires: kernels in execution order; temporaries with their sizes.
 * establishes: every temporary has an arena offset (64-byte aligned) such
 *   that no two temporaries live at the same time overlap; arena_bytes is
 *   the peak. A temporary lives from the first kernel that stores it to the
 *   last kernel that loads it.
 *
 * Two placements, the smaller peak kept (the first on a tie): temporaries
 * in order of first use, and largest first (as TensorFlow Lite's greedy by
 * size), each at the lowest offset clear of those already placed that
 * live at the same time. In order of first use, small buffers freed early
 * leave gaps a later large one cannot use; largest first packs the
 * activations a train step keeps for its backward pass more tightly. */
#include <stdlib.h>

#include "kir.h"

enum { ALIGN = 64 };

typedef struct {
	int first, last;        /* kernel indices; first = -1: never written */
} span;

static void live_spans(const kir_program *p, span *sp)
{
	for (int b = 0; b < p->nbuf; b++)
		sp[b] = (span){ -1, -1 };
	for (int n = 0; n < p->nk; n++) {
		const kir_kernel *k = &p->k[n];
		for (int s = 0; s < k->nst; s++)
			if (sp[k->st[s].buf].first < 0)
				sp[k->st[s].buf].first = n;
		for (int i = 0; i < k->nx; i++)
			if (k->x[i].kind == KX_LOAD)
				sp[k->x[i].buf].last = n;
	}
	for (int b = 0; b < p->nbuf; b++)
		if (sp[b].last < sp[b].first)
			sp[b].last = sp[b].first;
}

static int64_t bytes_of(const kir_buffer *b)
{
	int64_t n = b->numel * (int64_t)rt_dtype_size(b->dtype);
	return (n + ALIGN - 1) / ALIGN * ALIGN;
}

/* Lowest offset where buffer b misses every placed buffer live at the
 * same time. */
static int64_t lowest_fit(const kir_program *p, const span *sp, const char *placed, int b)
{
	int64_t off = 0, size = bytes_of(&p->buf[b]);
	for (int moved = 1; moved;) {
		moved = 0;
		for (int o = 0; o < p->nbuf; o++) {
			const kir_buffer *ob = &p->buf[o];
			if (!placed[o] || sp[o].last < sp[b].first || sp[o].first > sp[b].last)
				continue;
			if (off < ob->offset + bytes_of(ob) && ob->offset < off + size) {
				off = ob->offset + bytes_of(ob);
				moved = 1;
			}
		}
	}
	return off;
}

/* A temporary as the placements order them: by first use (then number),
 * or by size, largest first (then by first use and number). */
typedef struct {
	int64_t bytes;
	int first, buf;
} temporary;

static int by_first_use(const void *a, const void *b)
{
	const temporary *x = a, *y = b;
	return x->first != y->first ? (x->first > y->first) - (x->first < y->first)
	                            : (x->buf > y->buf) - (x->buf < y->buf);
}

static int by_size(const void *a, const void *b)
{
	const temporary *x = a, *y = b;
	return x->bytes != y->bytes ? (x->bytes < y->bytes) - (x->bytes > y->bytes) : by_first_use(a, b);
}

/* Places the temporaries t[0..n) sorted by cmp; returns the peak and each
 * one's offset in offsets[buffer]. */
static int64_t place_sorted(kir_program *p, const span *sp, temporary *t, int n,
                            int (*cmp)(const void *, const void *), char *placed, int64_t *offsets)
{
	int64_t peak = 0;
	qsort(t, (size_t)n, sizeof *t, cmp);
	for (int b = 0; b < p->nbuf; b++)
		placed[b] = 0;
	for (int i = 0; i < n; i++) {
		kir_buffer *buf = &p->buf[t[i].buf];
		buf->offset = lowest_fit(p, sp, placed, t[i].buf);
		placed[t[i].buf] = 1;
		offsets[t[i].buf] = buf->offset;
		peak = buf->offset + t[i].bytes > peak ? buf->offset + t[i].bytes : peak;
	}
	return peak;
}

void kir_plan_memory(kir_program *p)
{
	size_t nb = (size_t)p->nbuf + 1;
	span *sp = malloc(nb * sizeof *sp);
	char *placed = calloc(nb, 1);
	temporary *t = malloc(nb * sizeof *t);
	int64_t *by_time = malloc(nb * sizeof *by_time), *largest = malloc(nb * sizeof *largest);
	if (!sp || !placed || !t || !by_time || !largest)
		abort();
	live_spans(p, sp);
	int n = 0;
	for (int b = 0; b < p->nbuf; b++)
		if (p->buf[b].kind == KB_TEMP && sp[b].first >= 0)
			t[n++] = (temporary){ bytes_of(&p->buf[b]), sp[b].first, b };
	int64_t time_peak = place_sorted(p, sp, t, n, by_first_use, placed, by_time);
	int64_t size_peak = place_sorted(p, sp, t, n, by_size, placed, largest);
	const int64_t *kept = time_peak <= size_peak ? by_time : largest;
	for (int i = 0; i < n; i++)
		p->buf[t[i].buf].offset = kept[t[i].buf];
	p->arena_bytes = time_peak <= size_peak ? time_peak : size_peak;
	free(sp);
	free(placed);
	free(t);
	free(by_time);
	free(largest);
}
