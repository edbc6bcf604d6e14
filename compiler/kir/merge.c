/* merge: horizontal fusion of adjacent kernels over the same domain.
 *
 * requires: kernels in execution order (lower.c), before the memory plan.
 * establishes: each run of adjacent kernels without reductions and with
 *   identical domains becomes one kernel with several stores, computing
 *   the same values: a load of a buffer an earlier part stores, at the
 *   index it stores, becomes that stored value. A merge is refused when it
 *   could change a result: a part reads a buffer an earlier part writes at
 *   another index, writes a buffer an earlier part reads at another index,
 *   or two parts write one buffer. Temporaries no kernel reads any more lose
 *   their store and their size (dead stores).
 * This is what puts an optimizer's moments, weights and EMA of one
 * parameter into one kernel, and cuts the kernel count (compile time). */
#include <stdlib.h>
#include <string.h>

#include "kir.h"

static int same_domain(const kir_kernel *a, const kir_kernel *b)
{
	if (a->nred || b->nred || a->rank != b->rank)
		return 0;
	for (int v = 0; v < a->rank; v++)
		if (a->ext[v] != b->ext[v])
			return 0;
	return 1;
}

static int store_of(const kir_kernel *k, int buf)
{
	for (int s = 0; s < k->nst; s++)
		if (k->st[s].buf == buf)
			return s;
	return -1;
}

/* Copies expression e of b into a (operands already mapped); -1 when the
 * copy would read a value a overwrites at another point. */
static int copy_expr(kir_kernel *a, const kir_program *p, const kir_expr *e, const int *map)
{
	int x = e->a >= 0 ? map[e->a] : -1, y = e->b >= 0 ? map[e->b] : -1;
	int z = e->c >= 0 ? map[e->c] : -1;
	switch (e->kind) {
	case KX_CONST: return kir_const(a, e->type, e->value);
	case KX_VAR: return kir_var(a, e->var);
	case KX_MOD: return kir_mod(a, x, y);
	case KX_RANDOM: return kir_random(a, e->op, x, y, z, e->stream);
	case KX_OP:
		return e->op == OP_cast ? kir_cast(a, e->type, x, e->round) : kir_op(a, e->type, e->op, x, y, z);
	case KX_LOAD: {
		int s = store_of(a, e->buf);
		if (s < 0)
			return kir_load(a, p, e->buf, x);
		return a->st[s].index == x ? a->st[s].value : -1;
	}
	default:
		return -1;
	}
}

/* b's stores may not touch a buffer a reads at another index, or writes. */
static int stores_ok(const kir_kernel *a, const kir_kernel *b, const int *map)
{
	for (int s = 0; s < b->nst; s++) {
		int buf = b->st[s].buf, idx = map[b->st[s].index];
		if (store_of(a, buf) >= 0)
			return 0;
		for (int i = 0; i < a->nx; i++)
			if (a->x[i].kind == KX_LOAD && a->x[i].buf == buf && a->x[i].a != idx)
				return 0;
	}
	return 1;
}

/* Merges b into a copy of a; on success replaces a and returns 1. */
static int try_merge(kir_kernel *a, const kir_kernel *b, const kir_program *p, ir_graph *g)
{
	kir_kernel m = *a;
	m.x = malloc((size_t)(a->xcap + b->nx + 1) * sizeof *m.x);
	m.st = malloc((size_t)(a->nst + b->nst + 1) * sizeof *m.st);
	m.xcap = a->xcap + b->nx + 1;
	m.stcap = a->nst + b->nst + 1;
	memcpy(m.x, a->x, (size_t)a->nx * sizeof *m.x);
	memcpy(m.st, a->st, (size_t)a->nst * sizeof *m.st);
	int *map = malloc((size_t)(b->nx + 1) * sizeof *map), ok = 1;
	for (int i = 0; ok && i < b->nx; i++)
		ok = (map[i] = copy_expr(&m, p, &b->x[i], map)) >= 0;
	ok = ok && stores_ok(a, b, map);
	for (int s = 0; ok && s < b->nst; s++)
		kir_store_add(&m, b->st[s].buf, map[b->st[s].index], map[b->st[s].value]);
	free(map);
	if (!ok) {
		free(m.x);
		free(m.st);
		return 0;
	}
	size_t len = strlen(a->ops) + strlen(b->ops) + 4;
	char *ops = ir_alloc(g, len);
	snprintf(ops, len, "%s | %s", a->ops, b->ops);
	m.ops = ops;
	free(a->x);
	free(a->st);
	*a = m;
	return 1;
}

/* Drops stores to temporaries that nothing loads. */
static void drop_dead_stores(kir_program *p)
{
	char *read = calloc((size_t)p->nbuf + 1, 1);
	for (int n = 0; n < p->nk; n++)
		for (int i = 0; i < p->k[n].nx; i++)
			if (p->k[n].x[i].kind == KX_LOAD)
				read[p->k[n].x[i].buf] = 1;
	for (int n = 0; n < p->nk; n++) {
		kir_kernel *k = &p->k[n];
		int kept = 0;
		for (int s = 0; s < k->nst; s++)
			if (p->buf[k->st[s].buf].kind != KB_TEMP || read[k->st[s].buf] || k->nst == 1)
				k->st[kept++] = k->st[s];
		k->nst = kept;
	}
	for (int b = 0; b < p->nbuf; b++)
		if (p->buf[b].kind == KB_TEMP && !read[b])
			p->buf[b].numel = 0;
	free(read);
}

void kir_merge(kir_program *p)
{
	int out = 0;
	for (int n = 0; n < p->nk; n++) {
		if (out > 0 && same_domain(&p->k[out - 1], &p->k[n]) &&
		    try_merge(&p->k[out - 1], &p->k[n], p, p->g)) {
			free(p->k[n].x);
			free(p->k[n].st);
			continue;
		}
		p->k[out++] = p->k[n];
	}
	p->nk = out;
	drop_dead_stores(p);
}
