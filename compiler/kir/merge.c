/* merge: horizontal fusion of adjacent kernels.
 *
 * requires: kernels in execution order (lower.c), before the memory plan.
 * establishes: adjacent kernels become one where that computes the same
 *   values, in three shapes:
 *   - side by side: no reductions, identical domains; one kernel with
 *     several stores (an optimizer's moments, weights and EMA of one
 *     parameter);
 *   - accumulators in sequence: both reductions (not contractions) over
 *     identical domains and reduction domains; b's accumulators run after
 *     a's (GroupNorm's sum, then its sum of squares about the mean);
 *   - inside the loop: a reduces to one point and b is elementwise over
 *     a's reduction domain and reads what a reads; b's stores become inner
 *     stores of a's last accumulator, b's vars a's reduction vars (the MSE
 *     loss and its gradient, one pass over the error).
 *   A load of a buffer an earlier part stores, at the index it stores,
 *   becomes that stored value. A merge is refused when it could change a
 *   result: a part reads a buffer an earlier part writes at another index,
 *   writes a buffer an earlier part reads at another index, or two parts
 *   write one buffer. Temporaries no kernel reads any more lose their store
 *   and their size (dead stores).
 * Fewer kernels also means less compile time. */
#include <stdlib.h>
#include <string.h>

#include "kir.h"

/* How b's expressions and stores land in a. */
typedef struct {
	int var_shift;          /* b's var v is a's var v + var_shift */
	int acc_shift;          /* b's accumulator j is a's j + acc_shift */
	int inner;              /* b's stores run inside a's last loop */
} placement;

static int is_contraction(const kir_kernel *k)
{
	for (int v = 0; v < k->rank; v++)
		if (k->tile_hint[v])
			return 1;
	return 0;
}

static int same_exts(const int64_t *a, const int64_t *b, int n)
{
	for (int v = 0; v < n; v++)
		if (a[v] != b[v])
			return 0;
	return 1;
}

/* Whether b can join a, and how. */
static int place(const kir_kernel *a, const kir_kernel *b, placement *pl)
{
	*pl = (placement){ 0, a->nacc, 0 };
	if (is_contraction(a) || is_contraction(b))
		return 0;
	if (a->rank == b->rank && a->nred == b->nred && a->nacc + b->nacc <= KIR_MAXACC)
		return same_exts(a->ext, b->ext, a->rank + a->nred);
	int64_t points = 1;
	for (int v = 0; v < a->rank; v++)
		points *= a->ext[v];
	*pl = (placement){ a->rank, 0, 1 };
	return a->nred && !b->nred && points == 1 && b->rank == a->nred &&
	       same_exts(a->ext + a->rank, b->ext, b->rank);
}

static int store_of(const kir_kernel *k, int buf)
{
	for (int s = 0; s < k->nst; s++)
		if (k->st[s].buf == buf)
			return s;
	return -1;
}

/* Copies expression e of b into a (operands already mapped); -1 when the
 * copy would read a value a overwrites at another point, or (inside a's
 * loop) any value a stores. */
static int copy_expr(kir_kernel *a, const kir_program *p, const kir_expr *e, const int *map,
                     const placement *pl)
{
	int x = e->a >= 0 ? map[e->a] : -1, y = e->b >= 0 ? map[e->b] : -1;
	int z = e->c >= 0 ? map[e->c] : -1;
	switch (e->kind) {
	case KX_CONST: return kir_const(a, e->type, e->value);
	case KX_VAR: return kir_var(a, e->var + pl->var_shift);
	case KX_ACC: return kir_acc(a, e->type, e->acc + pl->acc_shift);
	case KX_MOD: return kir_mod(a, x, y);
	case KX_RANDOM: return kir_random(a, e->op, x, y, z, e->stream);
	case KX_OP:
		return e->op == OP_cast ? kir_cast(a, e->type, x, e->round) : kir_op(a, e->type, e->op, x, y, z);
	case KX_LOAD: {
		int s = store_of(a, e->buf);
		if (s < 0)
			return kir_load(a, p, e->buf, x);
		return a->st[s].index == x && !pl->inner ? a->st[s].value : -1;
	}
	}
	return -1;
}

/* b's stores may not touch a buffer a reads at another index (inside a's
 * loop: at all), or writes. */
static int stores_ok(const kir_kernel *a, const kir_kernel *b, const int *map, const placement *pl)
{
	for (int s = 0; s < b->nst; s++) {
		int buf = b->st[s].buf, idx = map[b->st[s].index];
		if (store_of(a, buf) >= 0)
			return 0;
		for (int i = 0; i < a->nx; i++)
			if (a->x[i].kind == KX_LOAD && a->x[i].buf == buf && (a->x[i].a != idx || pl->inner))
				return 0;
	}
	return 1;
}

/* Inside a's loop b must read, at a varying index, something a reads
 * there (the point of one pass); a's loop runs on one thread, b's domain
 * no longer in parallel. */
static int shares_a_load(const kir_kernel *b, const int *map, int anx)
{
	for (int i = 0; i < b->nx; i++)
		if (b->x[i].kind == KX_LOAD && map[i] < anx && b->x[b->x[i].a].kind != KX_CONST)
			return 1;
	return 0;
}

/* b's accumulators and stores, after its expressions, into m. */
static void add_parts(kir_kernel *m, const kir_kernel *b, const int *map, const placement *pl)
{
	for (int j = 0; j < b->nacc; j++)
		kir_acc_add(m, b->red_op[j], map[b->red_value[j]]);
	for (int s = 0; s < b->nst; s++) {
		const kir_store *st = &b->st[s];
		if (pl->inner)
			kir_store_inner(m, m->nacc - 1, st->buf, map[st->index], map[st->value]);
		else if (st->inner)
			kir_store_inner(m, st->inner - 1 + pl->acc_shift, st->buf, map[st->index], map[st->value]);
		else
			kir_store_add(m, st->buf, map[st->index], map[st->value]);
	}
}

/* Merges b into a copy of a; on success replaces a and returns 1. */
static int try_merge(kir_kernel *a, const kir_kernel *b, const kir_program *p, ir_graph *g)
{
	placement pl;
	if (!place(a, b, &pl))
		return 0;
	kir_kernel m = *a;
	m.x = malloc((size_t)(a->xcap + b->nx + 1) * sizeof *m.x);
	m.st = malloc((size_t)(a->nst + b->nst + 1) * sizeof *m.st);
	m.xcap = a->xcap + b->nx + 1;
	m.stcap = a->nst + b->nst + 1;
	memcpy(m.x, a->x, (size_t)a->nx * sizeof *m.x);
	memcpy(m.st, a->st, (size_t)a->nst * sizeof *m.st);
	int *map = malloc((size_t)(b->nx + 1) * sizeof *map), ok = 1;
	for (int i = 0; ok && i < b->nx; i++)
		ok = (map[i] = copy_expr(&m, p, &b->x[i], map, &pl)) >= 0;
	ok = ok && stores_ok(a, b, map, &pl) && (!pl.inner || shares_a_load(b, map, a->nx));
	if (ok)
		add_parts(&m, b, map, &pl);
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
		if (out > 0 && try_merge(&p->k[out - 1], &p->k[n], p, p->g)) {
			free(p->k[n].x);
			free(p->k[n].st);
			continue;
		}
		p->k[out++] = p->k[n];
	}
	p->nk = out;
	drop_dead_stores(p);
}
