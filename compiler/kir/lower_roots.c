/* lower_roots: entry outputs and state updates, after every kernel is
 * built (lower_impl.h).
 *
 * requires: every materialized node has its buffer and kernel.
 * establishes: every output in a KB_OUTPUT buffer of its name (a copy
 *   kernel where the node's buffer is not that); every state update
 *   written into its param: in place, by the kernel that computes it,
 *   when that is safe, else by a copy kernel at the end; every update
 *   computed from the params' old values (an update to another param's
 *   old value reads a copy of it made before any param is written). */
#include <stdlib.h>
#include <string.h>

#include "lower_impl.h"

static int kernel_storing(const kir_program *p, int buf)
{
	for (int n = p->nk - 1; n >= 0; n--)
		for (int s = 0; s < p->k[n].nst; s++)
			if (p->k[n].st[s].buf == buf)
				return n;
	return -1;
}

/* dst[i] = src[i] over shape s: the kernel for roots that are not computed
 * into their own buffer (a param returned as an output, an unsafe update). */
static void copy_kernel(lower *L, int src, int dst, const ir_shape *s)
{
	kir_kernel k = { 0 };
	k.rank = s->rank;
	for (int r = 0; r < s->rank; r++)
		k.ext[r] = s->d[r];
	L->k = &k;
	int idx[IR_MAXDIM];
	for (int r = 0; r < k.rank; r++)
		idx[r] = kir_var(&k, r);
	int lin = lower_linearize(L, idx, s);
	kir_store_add(&k, dst, lin, kir_load(&k, L->p, src, lin));
	lower_append_kernel(L, &k, "copy", "copy");
}

static int updates_to(lower *L, int node)
{
	int n = 0;
	for (int i = 0; i < L->e->nupdates; i++)
		n += L->e->updates[i].node == node;
	return n;
}

/* Writing param P inside the kernel that computes its next value is safe
 * when the kernel reads P only at the index it stores to, no later
 * kernel reads P's old value, and no other root takes the value (its
 * copy would read the temporary the kernel no longer writes). Later
 * readers of the new value then read P. */
static int in_place_safe(lower *L, int node, int pbuf, int kn)
{
	const kir_program *p = L->p;
	if (kn < 0 || p->k[kn].nst != 1 || lower_output_name(L, node) || updates_to(L, node) > 1)
		return 0;
	const kir_kernel *k = &p->k[kn];
	for (int i = 0; i < k->nx; i++)
		if (k->x[i].kind == KX_LOAD && k->x[i].buf == pbuf && k->x[i].a != k->st[0].index)
			return 0;
	for (int n = kn + 1; n < p->nk; n++)
		for (int i = 0; i < p->k[n].nx; i++)
			if (p->k[n].x[i].kind == KX_LOAD && p->k[n].x[i].buf == pbuf)
				return 0;
	return 1;
}

/* The buffer update `name` takes its value from: the node's, or, when
 * that is another param (p3 = p12, a swap), a copy of it made now,
 * before any update writes a param in place (in_place_safe sees this
 * copy read the param) or by a copy kernel (those come after it). */
static int snapshot_param(lower *L, int node, const char *name)
{
	int b = L->buf_of[node];
	if (L->p->buf[b].kind != KB_PARAM || !strcmp(L->p->buf[b].name, name))
		return b;
	int t = lower_add_buffer(L, KB_TEMP, N(L, node), NULL);
	copy_kernel(L, b, t, &N(L, node)->shape);
	return t;
}

void lower_plan_roots(lower *L)
{
	kir_program *p = L->p;
	for (int i = 0; i < L->e->noutputs; i++) {
		int node = L->e->outputs[i].node, b = L->buf_of[node];
		if (p->buf[b].kind == KB_OUTPUT && !strcmp(p->buf[b].name, L->e->outputs[i].name))
			continue;
		int out = lower_add_buffer(L, KB_OUTPUT, N(L, node), L->e->outputs[i].name);
		copy_kernel(L, b, out, &N(L, node)->shape);
	}
	int *from = malloc((size_t)L->e->nupdates * sizeof *from + 1);
	if (!from)
		abort();
	for (int i = 0; i < L->e->nupdates; i++)
		from[i] = snapshot_param(L, L->e->updates[i].node, L->e->updates[i].name);
	for (int i = 0; i < L->e->nupdates; i++) {
		int node = L->e->updates[i].node, b = from[i];
		int pbuf = lower_param_buffer(L, L->e->updates[i].name);
		int kn = p->buf[b].kind == KB_TEMP ? kernel_storing(p, b) : -1;
		if (in_place_safe(L, node, pbuf, kn)) {
			p->k[kn].st[0].buf = pbuf;
			for (int n = kn + 1; n < p->nk; n++)
				for (int x = 0; x < p->k[n].nx; x++)
					if (p->k[n].x[x].kind == KX_LOAD && p->k[n].x[x].buf == b)
						p->k[n].x[x].buf = pbuf;
			kir_buffer_unused(&p->buf[b]);
		} else
			copy_kernel(L, b, pbuf, &N(L, node)->shape);
	}
	free(from);
}