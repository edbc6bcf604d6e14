/* merge: horizontal fusion of adjacent kernels, and batches.
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
 *   write one buffer; and under a limit of buffers a kernel (max_args > 0:
 *   OpenCL's arguments), when the kernel would take more and
 *   kir_split_args could not part it into kernels within the limit (a
 *   reduction other than a joint one; a store that now computes a value
 *   the lowering stored to keep a kernel within it, lower.c). Temporaries no kernel reads any more lose their
 *   store and their size (dead stores).
 * Then runs of adjacent elementwise kernels that write only state and
 * outputs, and touch nothing another of them writes (the optimizer's
 * update of each parameter, the step counters), become one batch kernel
 * (kir.h), with a segment per kernel. Fewer kernels also means less compile time. */
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

/* Joint reductions (kir.h) over the same pieces, or two plain kernels. */
static int same_segments(const kir_kernel *a, const kir_kernel *b)
{
	if (a->nseg != b->nseg)
		return 0;
	for (int s = 0; s < a->nseg; s++)
		if (a->seg[s].nred != b->seg[s].nred || !same_exts(a->seg[s].ext, b->seg[s].ext, a->seg[s].nred))
			return 0;
	return 1;
}

static int64_t points_of(const kir_kernel *k)
{
	int64_t points = 1;
	for (int v = 0; v < k->rank; v++)
		points *= k->ext[v];
	return points;
}

/* Whether b can join a, and how. */
static int place(const kir_kernel *a, const kir_kernel *b, placement *pl)
{
	*pl = (placement){ 0, a->nacc, 0 };
	if (is_contraction(a) || is_contraction(b) || a->nacc + b->nacc > KIR_MAXACC)
		return 0;
	if (a->rank == b->rank && a->nred == b->nred)
		return same_exts(a->ext, b->ext, a->rank + a->nred) && same_segments(a, b);
	if (a->rank == 0 && b->rank == 0 && (!a->nred || !b->nred))
		return 1;               /* one point: b's stores after a's */
	*pl = (placement){ a->rank, 0, 1 };
	return a->nred && !b->nred && !a->nseg && points_of(a) == 1 && b->rank == a->nred &&
	       same_exts(a->ext + a->rank, b->ext, b->rank);
}

/* m's reduction after b joined a (pl): the one of whichever reduces, and
 * for a joint reduction its segments with b's terms mapped into m. */
static void join_reductions(kir_kernel *m, const kir_kernel *a, const kir_kernel *b, const int *map,
                            const placement *pl)
{
	if (!a->nred && b->nred) {
		m->nred = b->nred;
		memcpy(m->ext + m->rank, b->ext + b->rank, (size_t)b->nred * sizeof *m->ext);
	}
	const kir_kernel *from = a->nseg ? a : b;
	m->nseg = from->nseg;
	m->seg = from->nseg ? malloc((size_t)from->nseg * sizeof *m->seg) : NULL;
	for (int s = 0; s < m->nseg; s++) {
		m->seg[s] = from->seg[s];
		for (int j = 0; j < b->nacc && b->nseg; j++)
			m->seg[s].red_value[pl->acc_shift + j] = map[b->seg[s].red_value[j]];
	}
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
	int s = e->kind == KX_LOAD ? store_of(a, e->buf) : -1;
	if (s >= 0)
		return a->st[s].index == map[e->a] && !pl->inner ? a->st[s].value : -1;
	return kir_copy_expr(a, p, e, map, pl->var_shift, pl->acc_shift);
}

/* b's stores may not touch a buffer a reads at another index (inside a's
 * loop: at all, nor one b reads itself, an update in place: kir_verify
 * refuses a load of a buffer an inner store writes), or writes. */
static int stores_ok(const kir_kernel *a, const kir_kernel *b, const int *map, const placement *pl)
{
	for (int s = 0; s < b->nst; s++) {
		int buf = b->st[s].buf, idx = map[b->st[s].index];
		if (store_of(a, buf) >= 0)
			return 0;
		for (int i = 0; i < a->nx; i++)
			if (a->x[i].kind == KX_LOAD && a->x[i].buf == buf && (a->x[i].a != idx || pl->inner))
				return 0;
		for (int i = 0; pl->inner && i < b->nx; i++)
			if (b->x[i].kind == KX_LOAD && b->x[i].buf == buf)
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
static int try_merge(kir_kernel *a, const kir_kernel *b, const kir_program *p, int max_args)
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
	if (ok) {
		add_parts(&m, b, map, &pl);
		join_reductions(&m, a, b, map, &pl);
		ok = max_args <= 0 || kir_split_fits(p, &m, max_args);
		if (!ok)
			free(m.seg);
	}
	free(map);
	kir_drop_index(&m);
	if (!ok) {
		free(m.x);
		free(m.st);
		return 0;
	}
	size_t len = strlen(a->ops) + strlen(b->ops) + 4;
	char *ops = ir_alloc(p->g, len);
	snprintf(ops, len, "%s | %s", a->ops, b->ops);
	m.ops = ops;
	free(a->x);
	free(a->st);
	free(a->seg);
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
			kir_buffer_unused(&p->buf[b]);
	free(read);
}

/* --- batches: the state updates of a step as one kernel ------------------ */

/* A kernel that may join a batch: elementwise, writing only state and
 * the entry's results. */
static int batchable(const kir_program *p, const kir_kernel *k)
{
	if (k->nred || k->nseg || is_contraction(k))
		return 0;
	for (int s = 0; s < k->nst; s++)
		if (p->buf[k->st[s].buf].kind != KB_PARAM && p->buf[k->st[s].buf].kind != KB_OUTPUT)
			return 0;
	return 1;
}

static int loads_buffer(const kir_kernel *k, int buf)
{
	for (int i = 0; i < k->nx; i++)
		if (k->x[i].kind == KX_LOAD && k->x[i].buf == buf)
			return 1;
	return 0;
}

/* Neither of a and b reads or writes what the other writes. */
static int independent(const kir_kernel *a, const kir_kernel *b)
{
	for (int s = 0; s < b->nst; s++)
		if (store_of(a, b->st[s].buf) >= 0 || loads_buffer(a, b->st[s].buf))
			return 0;
	for (int s = 0; s < a->nst; s++)
		if (loads_buffer(b, a->st[s].buf))
			return 0;
	return 1;
}

/* The union of the words of the members' op lists, for --report. */
static const char *batch_ops(const kir_kernel *k, int n, ir_graph *g)
{
	char ops[512] = " ", word[64];
	for (int i = 0; i < n; i++)
		for (const char *c = k[i].ops; c && *c; c++) {
			int len = (int)strcspn(c, " |");
			snprintf(word, sizeof word, " %.*s ", len, c);
			if (len && strlen(ops) + strlen(word) < sizeof ops && !strstr(ops, word))
				strcat(ops, word + 1);
			c += len - (c[len] == 0);
		}
	size_t len = strlen(ops) + 32;
	char *out = ir_alloc(g, len);
	snprintf(out, len, "batch of %d:%.*s", n, (int)strlen(ops) - 1, ops);
	return out;
}

/* One batch kernel (kir.h) of k[0..n): their expressions one after the
 * other, a segment per kernel with its domain and stores. */
static kir_kernel batch_of(const kir_kernel *k, int n, ir_graph *g)
{
	kir_kernel m = { 0 };
	for (int i = 0; i < n; i++)
		m.nx += k[i].nx, m.nst += k[i].nst;
	m.x = malloc((size_t)m.nx * sizeof *m.x);
	m.st = malloc((size_t)m.nst * sizeof *m.st);
	m.xcap = m.nx, m.stcap = m.nst;
	m.seg = malloc((size_t)n * sizeof *m.seg);
	m.nseg = n;
	int nx = 0, nst = 0;
	for (int i = 0; i < n; i++) {
		m.seg[i] = (kir_segment){ .rank = k[i].rank, .st0 = nst, .nst = k[i].nst };
		memcpy(m.seg[i].ext, k[i].ext, sizeof m.seg[i].ext);
		for (int e = 0; e < k[i].nx; e++) {
			kir_expr x = k[i].x[e];
			x.a += x.a >= 0 ? nx : 0, x.b += x.b >= 0 ? nx : 0, x.c += x.c >= 0 ? nx : 0;
			m.x[nx + e] = x;
		}
		for (int s = 0; s < k[i].nst; s++) {
			kir_store st = k[i].st[s];
			st.index += nx, st.value += nx;
			m.st[nst++] = st;
		}
		nx += k[i].nx;
	}
	m.rank = k[0].rank;
	memcpy(m.ext, k[0].ext, sizeof m.ext);
	size_t len = strlen(k[0].name) + 8;
	char *name = ir_alloc(g, len);
	snprintf(name, len, "%s_batch", k[0].name);
	m.name = name;
	m.ops = batch_ops(k, n, g);
	return m;
}

/* Runs of adjacent batchable kernels, each independent of the others,
 * become one batch kernel. */
static void batch_state_updates(kir_program *p)
{
	int out = 0;
	for (int n = 0; n < p->nk;) {
		int end = n;
		while (end < p->nk && batchable(p, &p->k[end])) {
			int ok = 1;
			for (int i = n; i < end && ok; i++)
				ok = independent(&p->k[i], &p->k[end]);
			if (!ok)
				break;
			end++;
		}
		if (end - n < 2) {
			p->k[out++] = p->k[n++];
			continue;
		}
		kir_kernel m = batch_of(&p->k[n], end - n, p->g);
		for (int i = n; i < end; i++) {
			free(p->k[i].x);
			free(p->k[i].st);
		}
		p->k[out++] = m;
		n = end;
	}
	p->nk = out;
}

void kir_merge(kir_program *p, int max_args)
{
	int out = 0;
	for (int n = 0; n < p->nk; n++) {
		if (out > 0 && try_merge(&p->k[out - 1], &p->k[n], p, max_args)) {
			free(p->k[n].x);
			free(p->k[n].st);
			free(p->k[n].seg);
			continue;
		}
		p->k[out++] = p->k[n];
	}
	p->nk = out;
	drop_dead_stores(p);
	batch_state_updates(p);
}
