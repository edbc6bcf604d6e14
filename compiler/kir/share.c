/* share: the kernel ABI's arguments, and kernels that share one function.
 *
 * A kernel's function is called with its own buffers, in the order of
 * kir_args (first use: loads in expression order, then stores), not with
 * the program's whole buffer table. So two kernels that differ only in
 * which buffers they touch (the same layer shape again in a U-Net, the
 * forward pass in every entry) are one function: kir_share numbers the
 * distinct kernels across programs, and backends generate each once.
 *
 * requires: programs out of kir_lower (buffers and kernels final).
 * establishes: k->arg[0..narg) for every kernel; k->fn the same for two
 *   kernels exactly when their canonical forms (kernel_key, tiles
 *   included) are equal.
 * Also the signatures a tuning file keys its results by: a kernel's (its
 * canonical form without the tile) and a convolution's. */
#include <stdlib.h>
#include <string.h>

#include "kir.h"

static void add_arg(kir_kernel *k, int buf)
{
	for (int j = 0; j < k->narg; j++)
		if (k->arg[j] == buf)
			return;
	k->arg[k->narg++] = buf;
}

void kir_set_args(kir_kernel *k)
{
	free(k->arg);
	k->arg = malloc((size_t)(k->nx + k->nst + 1) * sizeof *k->arg);
	k->narg = 0;
	for (int i = 0; i < k->nx; i++)
		if (k->x[i].kind == KX_LOAD)
			add_arg(k, k->x[i].buf);
	for (int s = 0; s < k->nst; s++)
		add_arg(k, k->st[s].buf);
}

int kir_arg_of(const kir_kernel *k, int buf)
{
	for (int j = 0; j < k->narg; j++)
		if (k->arg[j] == buf)
			return j;
	return -1;
}

/* --- the canonical form: everything code generation reads, buffers as
 *     argument numbers with their dtypes ------------------------------- */

static void put(rt_strbuf *b, const void *v, size_t n)
{
	rt_sb_put(b, (const char *)v, n);
}

static void put_int(rt_strbuf *b, int64_t v)
{
	put(b, &v, sizeof v);
}

/* The canonical form of k into b; with its tile or without (a signature). */
static void kernel_key(const kir_program *p, const kir_kernel *k, int with_tile, rt_strbuf *b)
{
	b->len = 0;
	if (with_tile)
		put_int(b, k->tile.var[0]), put_int(b, k->tile.var[1]), put_int(b, k->tile.copies[0]),
			put_int(b, k->tile.copies[1]);
	put_int(b, k->rank), put_int(b, k->nred), put_int(b, k->nacc);
	for (int v = 0; v < k->rank + k->nred; v++)
		put_int(b, k->ext[v]), put_int(b, k->tile_hint[v]);
	for (int j = 0; j < k->nacc; j++)
		put_int(b, k->red_op[j]), put_int(b, k->red_value[j]);
	for (int j = 0; j < k->narg; j++)
		put_int(b, p->buf[k->arg[j]].dtype);
	for (int i = 0; i < k->nx; i++) {
		const kir_expr *e = &k->x[i];
		put_int(b, e->kind), put_int(b, e->type), put_int(b, e->op);
		put_int(b, e->a), put_int(b, e->b), put_int(b, e->c);
		put(b, &e->value, sizeof e->value);
		put_int(b, e->var), put_int(b, e->kind == KX_LOAD ? kir_arg_of(k, e->buf) : -1);
		put_int(b, e->stream), put_int(b, e->acc), put_int(b, e->round);
	}
	for (int s = 0; s < k->nst; s++) {
		const kir_store *st = &k->st[s];
		put_int(b, kir_arg_of(k, st->buf)), put_int(b, st->index), put_int(b, st->value);
		put_int(b, st->inner);
	}
	put_int(b, k->nseg);
	for (int s = 0; s < k->nseg; s++) {
		const kir_segment *g = &k->seg[s];
		put_int(b, g->rank), put_int(b, g->nred), put_int(b, g->st0), put_int(b, g->nst);
		for (int v = 0; v < g->rank + g->nred; v++)
			put_int(b, g->ext[v]);
		for (int j = 0; j < k->nacc; j++)
			put_int(b, g->red_value[j]);
	}
}

static uint64_t hash_of(const rt_strbuf *b)
{
	return rt_fnv1a(RT_FNV1A_START, b->p, b->len);
}

static void put_shape(rt_strbuf *b, const ir_shape *s)
{
	put_int(b, s->rank);
	for (int d = 0; d < s->rank; d++)
		put_int(b, s->d[d]);
}

uint64_t kir_conv_signature(const ir_graph *g, const ir_node *n)
{
	rt_strbuf b = { 0 };
	put(&b, "conv", 4);     /* apart from every kernel's form */
	put_int(&b, n->op), put_int(&b, n->dtype);
	for (int i = 0; i < 2; i++) {
		const ir_node *in = &g->nodes[n->in[i]];
		put_int(&b, in->dtype);
		put_shape(&b, &in->shape);
	}
	put_shape(&b, &n->shape);
	put(&b, &n->a.conv, sizeof n->a.conv);
	uint64_t h = hash_of(&b);
	rt_sb_free(&b);
	return h;
}

typedef struct {
	uint64_t hash;
	char *key;
	size_t len;
	int fn;
} slot;

/* The slot of key b in an open-addressing table of cap slots (a power of
 * two): its match, or the empty slot where it goes. */
static slot *find(slot *t, size_t cap, const rt_strbuf *b, uint64_t h)
{
	for (size_t i = h & (cap - 1);; i = (i + 1) & (cap - 1))
		if (!t[i].key || (t[i].hash == h && t[i].len == b->len && !memcmp(t[i].key, b->p, b->len)))
			return &t[i];
}

uint64_t kir_kernel_signature(const kir_program *p, kir_kernel *k)
{
	rt_strbuf b = { 0 };
	kir_set_args(k);
	kernel_key(p, k, 0, &b);
	uint64_t h = hash_of(&b);
	rt_sb_free(&b);
	return h;
}

int kir_share(kir_program **progs, int n)
{
	size_t total = 0, cap = 16;
	for (int i = 0; i < n; i++)
		total += (size_t)progs[i]->nk;
	while (cap < 2 * total)
		cap *= 2;
	slot *t = calloc(cap, sizeof *t);
	rt_strbuf b = { 0 };
	int nfn = 0;
	for (int i = 0; i < n; i++)
		for (int j = 0; j < progs[i]->nk; j++) {
			kir_kernel *k = &progs[i]->k[j];
			kir_set_args(k);
			kernel_key(progs[i], k, 1, &b);
			uint64_t h = hash_of(&b);
			slot *s = find(t, cap, &b, h);
			if (!s->key) {
				*s = (slot){ h, malloc(b.len + 1), b.len, nfn++ };
				memcpy(s->key, b.p, b.len);
			}
			k->fn = s->fn;
		}
	for (size_t i = 0; i < cap; i++)
		free(t[i].key);
	free(t);
	rt_sb_free(&b);
	return nfn;
}
