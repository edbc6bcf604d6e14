/* plan: the static memory plan of a kernel program.
 * requires: kernels in execution order; temporaries with their sizes.
 * establishes: every temporary has an arena offset (64-byte aligned) such
 *   that no two temporaries live at the same time overlap; arena_bytes is
 *   the peak. A temporary lives from the first kernel that stores it to the
 *   last kernel that loads it. First fit over the offsets in use. */
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

/* Lowest offset where [off, off+size) misses every buffer live at kernel n. */
static int64_t first_fit(const kir_program *p, const span *sp, const char *placed, int n,
                         int64_t size)
{
	int64_t off = 0;
	for (int moved = 1; moved;) {
		moved = 0;
		for (int b = 0; b < p->nbuf; b++) {
			const kir_buffer *o = &p->buf[b];
			if (!placed[b] || sp[b].last < n || sp[b].first > n)
				continue;
			if (off < o->offset + bytes_of(o) && o->offset < off + size) {
				off = o->offset + bytes_of(o);
				moved = 1;
			}
		}
	}
	return off;
}

void kir_plan_memory(kir_program *p)
{
	span *sp = malloc((size_t)(p->nbuf + 1) * sizeof *sp);
	char *placed = calloc((size_t)p->nbuf + 1, 1);
	if (!sp || !placed)
		abort();
	live_spans(p, sp);
	p->arena_bytes = 0;
	for (int n = 0; n < p->nk; n++)
		for (int b = 0; b < p->nbuf; b++) {
			kir_buffer *buf = &p->buf[b];
			if (buf->kind != KB_TEMP || sp[b].first != n || placed[b])
				continue;
			buf->offset = first_fit(p, sp, placed, n, bytes_of(buf));
			placed[b] = 1;
			if (buf->offset + bytes_of(buf) > p->arena_bytes)
				p->arena_bytes = buf->offset + bytes_of(buf);
		}
	free(sp);
	free(placed);
}
