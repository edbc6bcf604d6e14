/* split_args: kernels within a target's limit on the buffers they take.
 *
 * requires: kernels after kir_merge (batches and joint reductions formed),
 *   before the memory plan.
 * establishes: with max_args > 0, no batch, no elementwise kernel of
 *   several stores and no joint reduction (kir.h) touches more than
 *   max_args distinct buffers. An OpenCL device takes a kernel's buffers
 *   as arguments, 8 bytes each, within its CL_DEVICE_MAX_PARAMETER_SIZE
 *   (at least 1024 bytes; 2048 on Intel's GPUs), and the optimizer's
 *   kernels touch every parameter:
 *   - a batch, or an elementwise kernel of several stores (parameters of
 *     one shape updated side by side), becomes several: its units are
 *     groups of stores of one segment that read nothing another group
 *     writes (an update in place stays in one group), as many to each
 *     part as fit, alike units (their code apart from buffers and
 *     extents) together so that each form of code is rendered about
 *     once;
 *   - a joint reduction becomes chunk kernels, each a joint reduction over
 *     consecutive segments that stores its accumulators' totals into a
 *     temporary T[chunk][acc], then the kernel itself, now reducing T in
 *     chunk order (a sum of sums: the totals differ from one pass by
 *     rounding), its stores as before. Left whole where an accumulator's
 *     term reads another's total (chunks would see only their own) or is
 *     not f32.
 *   A unit that alone takes more stays in a kernel of its own, over the
 *   limit; so do kernels of other kinds, which the lowering built within
 *   it (lower.c). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kir.h"

/* What a kernel splits into: units, each a segment of a joint reduction
 * or a group of stores of one segment (of a plain kernel: of the kernel)
 * that reads nothing another group of that segment writes: two stores are
 * in one group when one's value or index loads the buffer the other
 * stores, or both store one buffer (an update in place: its parts must
 * run together). */
typedef struct {
	int n;
	int *seg;               /* (n) the unit's segment; -1: the kernel has none */
	int *first, *count;     /* its stores: st[first .. first + count) */
	kir_store *st;          /* the kernel's stores grouped by unit */
} unit_set;

static void units_free(unit_set *U)
{
	free(U->seg);
	free(U->first);
	free(U->count);
	free(U->st);
}

static int root(int *parent, int x)
{
	while (parent[x] != x)
		x = parent[x] = parent[parent[x]];
	return x;
}

/* in[b] = 1 for every buffer an expression that `used` marks loads. */
static void mark_loads(const kir_kernel *k, const char *used, char *in)
{
	for (int i = 0; i < k->nx; i++)
		if (used[i] && k->x[i].kind == KX_LOAD)
			in[k->x[i].buf] = 1;
}

/* Marks the terms of joint reduction k's segments [s0, s1) and their
 * operands in used. */
static void mark_terms(const kir_kernel *k, int s0, int s1, char *used)
{
	for (int s = s0; s < s1; s++)
		for (int j = 0; j < k->nacc; j++)
			used[k->seg[s].red_value[j]] = 1;
	kir_mark_operands(k, used);
}

/* The groups of stores [a, b) of k (one segment's) appended to U as units
 * of segment seg, each group's stores in k's order. */
static void group_stores(const kir_kernel *k, int a, int b, int seg, unit_set *U, int nbuf)
{
	int n = b - a, *parent = malloc(((size_t)n + 1) * sizeof *parent);
	char *used = malloc((size_t)k->nx + 1), *in = malloc((size_t)nbuf + 1);
	for (int t = 0; t < n; t++)
		parent[t] = t;
	for (int t = 0; t < n; t++) {
		memset(used, 0, (size_t)k->nx);
		memset(in, 0, (size_t)nbuf);
		used[k->st[a + t].index] = used[k->st[a + t].value] = 1;
		kir_mark_operands(k, used);
		mark_loads(k, used, in);
		for (int t2 = 0; t2 < n; t2++)
			if (in[k->st[a + t2].buf] || k->st[a + t2].buf == k->st[a + t].buf)
				parent[root(parent, t2)] = root(parent, t);
	}
	char *begun = calloc((size_t)n + 1, 1);    /* by root: its group has its unit */
	for (int t = 0; t < n; t++) {
		int r = root(parent, t), u = U->n;
		if (begun[r])
			continue;
		begun[r] = 1;
		U->n++;
		U->seg[u] = seg;
		U->first[u] = u ? U->first[u - 1] + U->count[u - 1] : 0;
		U->count[u] = 0;
		for (int t2 = t; t2 < n; t2++)
			if (root(parent, t2) == r)
				U->st[U->first[u] + U->count[u]++] = k->st[a + t2];
	}
	free(begun);
	free(parent);
	free(used);
	free(in);
}

/* k's units into U. */
static void units_of(const kir_kernel *k, int nbuf, unit_set *U)
{
	size_t most = (size_t)(k->nseg + k->nst) + 1;
	*U = (unit_set){ 0, malloc(most * sizeof(int)), malloc(most * sizeof(int)), malloc(most * sizeof(int)),
	                 malloc(((size_t)k->nst + 1) * sizeof *U->st) };
	if (kir_is_joint(k))
		for (int s = 0; s < k->nseg; s++)
			U->seg[U->n] = s, U->first[U->n] = 0, U->count[U->n++] = 0;
	else if (k->nseg)
		for (int s = 0; s < k->nseg; s++)
			group_stores(k, k->seg[s].st0, k->seg[s].st0 + k->seg[s].nst, s, U, nbuf);
	else
		group_stores(k, 0, k->nst, -1, U, nbuf);
}

/* Unit u of k as a kernel of its own over k's expressions: its segment
 * (or k) with the unit's stores. */
static kir_kernel unit_view(const kir_kernel *k, const unit_set *U, int u)
{
	kir_kernel v = U->seg[u] >= 0 ? kir_segment_view(k, U->seg[u]) : *k;
	if (!kir_is_joint(k))
		v.st = U->st + U->first[u], v.nst = U->count[u];
	return v;
}

/* The buffers that unit u of k reads or writes, marked in `in` (p->nbuf;
 * cleared first): those its terms or stores load, and those it stores. */
static void unit_buffers(const kir_kernel *k, const unit_set *U, int u, char *used, char *in, int nbuf)
{
	kir_kernel v = unit_view(k, U, u);
	memset(used, 0, (size_t)k->nx);
	memset(in, 0, (size_t)nbuf);
	kir_mark_used(&v, used);
	mark_loads(k, used, in);
	for (int t = 0; t < v.nst; t++)
		in[v.st[t].buf] = 1;
}

/* Units order[s0, end) of k, the most that together touch at most max
 * buffers (besides `reserved` others), at least one; returns end. */
static int chunk_end(const kir_kernel *k, const unit_set *U, const int *order, int s0, int max, int reserved,
                     int nbuf)
{
	char *used = malloc((size_t)k->nx + 1), *in = malloc((size_t)nbuf + 1), *all = calloc((size_t)nbuf + 1, 1);
	int count = reserved, s = s0;
	for (; s < U->n; s++) {
		unit_buffers(k, U, order[s], used, in, nbuf);
		int more = 0;
		for (int b = 0; b < nbuf; b++)
			more += in[b] && !all[b];
		if (s > s0 && count + more > max)
			break;
		count += more;
		for (int b = 0; b < nbuf; b++)
			all[b] |= in[b];
	}
	free(used);
	free(in);
	free(all);
	return s;
}

/* The expressions of `from` that `used` marks, appended to `to` in order;
 * map[i]: expression i's id in `to`. */
static void copy_used(kir_kernel *to, const kir_program *p, const kir_kernel *from, const char *used, int *map)
{
	for (int i = 0; i < from->nx; i++)
		map[i] = used[i] ? kir_copy_expr(to, p, &from->x[i], map, 0, 0) : -1;
}

static const char *chunk_name(const kir_program *p, const char *name, int c)
{
	size_t len = strlen(name) + 16;
	char *out = ir_alloc(p->g, len);
	snprintf(out, len, "%s_c%d", name, c);
	return out;
}

/* Units order[s0, s1) of k (a batch, or an elementwise kernel of several
 * stores) as a kernel of their own: a batch of a segment per unit, or the
 * one unit as a plain kernel over its segment's domain. */
static kir_kernel stores_part(const kir_program *p, const kir_kernel *k, const unit_set *U, const int *order,
                              int s0, int s1, int c)
{
	kir_kernel m = { .name = chunk_name(p, k->name, c), .ops = k->ops };
	char *used = calloc((size_t)k->nx + 1, 1);
	int *map = malloc(((size_t)k->nx + 1) * sizeof *map);
	for (int s = s0; s < s1; s++) {
		kir_kernel v = unit_view(k, U, order[s]);
		kir_mark_used(&v, used);
	}
	copy_used(&m, p, k, used, map);
	if (s1 - s0 > 1)
		m.seg = malloc((size_t)(s1 - s0) * sizeof *m.seg);
	for (int s = s0; s < s1; s++) {
		kir_kernel v = unit_view(k, U, order[s]);
		kir_segment g = { .rank = v.rank, .st0 = m.nst, .nst = v.nst };
		memcpy(g.ext, v.ext, sizeof g.ext);
		for (int t = 0; t < v.nst; t++)
			kir_store_add(&m, v.st[t].buf, map[v.st[t].index], map[v.st[t].value]);
		if (m.seg)
			m.seg[m.nseg++] = g;
	}
	kir_kernel first = unit_view(k, U, order[s0]);
	m.rank = first.rank;
	memcpy(m.ext, first.ext, sizeof m.ext);
	if (!k->nseg)
		memcpy(m.tile_hint, k->tile_hint, sizeof m.tile_hint);
	free(used);
	free(map);
	kir_drop_index(&m);
	return m;
}

/* Whether a term of joint reduction k reads an accumulator's total, or
 * is not f32 (the chunks' totals are kept in an f32 temporary). */
static int reads_totals(const kir_kernel *k)
{
	char *used = calloc((size_t)k->nx + 1, 1);
	int reads = 0;
	for (int j = 0; j < k->nacc; j++)
		reads |= k->x[k->red_value[j]].type != KT_F32;
	mark_terms(k, 0, k->nseg, used);
	for (int i = 0; i < k->nx; i++)
		reads |= used[i] && k->x[i].kind == KX_ACC;
	free(used);
	return reads;
}

/* Segments [s0, s1) of joint reduction k (in order: the sum's order) as
 * a joint reduction of their own storing accumulator j's total at
 * T[c * nacc + j]. */
static kir_kernel joint_part(const kir_program *p, const kir_kernel *k, int s0, int s1, int c, int tbuf)
{
	kir_kernel m = { .name = chunk_name(p, k->name, c), .ops = k->ops, .nred = 1 };
	char *used = calloc((size_t)k->nx + 1, 1);
	int *map = malloc(((size_t)k->nx + 1) * sizeof *map);
	mark_terms(k, s0, s1, used);
	copy_used(&m, p, k, used, map);
	m.seg = malloc((size_t)(s1 - s0) * sizeof *m.seg);
	for (int s = s0; s < s1; s++) {
		kir_segment g = k->seg[s];
		for (int j = 0; j < k->nacc; j++)
			g.red_value[j] = map[g.red_value[j]];
		m.seg[m.nseg++] = g;
		int64_t len = 1;
		for (int v = 0; v < g.nred; v++)
			len *= g.ext[v];
		m.ext[0] += len;
	}
	for (int j = 0; j < k->nacc; j++) {
		kir_acc_add(&m, k->red_op[j], m.seg[0].red_value[j]);
		int at = kir_const(&m, KT_IDX, (double)(c * k->nacc + j));
		kir_store_add(&m, tbuf, at, kir_acc(&m, KT_F32, j));
	}
	free(used);
	free(map);
	kir_drop_index(&m);
	return m;
}

/* Joint reduction k once its chunks stored T (nchunks x nacc): a reduction
 * over the chunks of T, then k's own stores. */
static kir_kernel joint_total(const kir_program *p, const kir_kernel *k, int nchunks, int tbuf)
{
	kir_kernel m = { .name = k->name, .ops = k->ops, .nred = 1, .ext = { nchunks } };
	char *used = calloc((size_t)k->nx + 1, 1);
	int *map = malloc(((size_t)k->nx + 1) * sizeof *map);
	for (int j = 0; j < k->nacc; j++) {
		int r = kir_var(&m, 0), n = kir_const(&m, KT_IDX, k->nacc), at = kir_const(&m, KT_IDX, j);
		int idx = kir_op(&m, KT_IDX, OP_add, kir_op(&m, KT_IDX, OP_mul, r, n, -1), at, -1);
		kir_acc_add(&m, k->red_op[j], kir_load(&m, p, tbuf, idx));
	}
	for (int s = 0; s < k->nst; s++)
		used[k->st[s].index] = used[k->st[s].value] = 1;
	kir_mark_operands(k, used);
	copy_used(&m, p, k, used, map);
	for (int s = 0; s < k->nst; s++)
		kir_store_add(&m, k->st[s].buf, map[k->st[s].index], map[k->st[s].value]);
	free(used);
	free(map);
	kir_drop_index(&m);
	return m;
}

/* A new f32 temporary of n elements. */
static int new_temp(kir_program *p, int64_t n)
{
	p->buf = ir_grow(p->buf, p->nbuf, &p->bufcap, sizeof *p->buf);
	p->buf[p->nbuf] = (kir_buffer){ .kind = KB_TEMP, .dtype = RT_F32, .numel = n, .shape = { 1, { n } } };
	return p->nbuf++;
}

/* The units of k into order: for a batch or an elementwise kernel, alike
 * units together (their code apart from their buffers and extents: the
 * renderer writes a batch's alike segments once, so a split batch keeps
 * them together), stably; a joint reduction's segments as they are (the
 * order of its sum). */
static void unit_order(const kir_program *p, const kir_kernel *k, const unit_set *U, int *order)
{
	uint64_t *sig = malloc(((size_t)U->n + 1) * sizeof *sig);
	for (int u = 0; u < U->n; u++) {
		order[u] = u;
		sig[u] = 0;
		if (kir_is_joint(k))
			continue;
		kir_kernel one = stores_part(p, k, U, order, u, u + 1, 0);
		memset(one.ext, 0, sizeof one.ext);
		sig[u] = kir_kernel_signature(p, &one);
		kir_kernel_free(&one);
	}
	for (int i = 1; i < U->n; i++)  /* insertion sort, stable: tens to hundreds */
		for (int j = i; j > 0 && sig[order[j]] < sig[order[j - 1]]; j--) {
			int t = order[j];
			order[j] = order[j - 1];
			order[j - 1] = t;
		}
	free(sig);
}

/* Kernel n of p, its units U, as the kernels out[0..) (room for U->n + 1). */
static int split_kernel(kir_program *p, int n, const unit_set *U, int max_args, kir_kernel *out)
{
	const kir_kernel *k = &p->k[n];
	int count = 0, c = 0, *order = malloc(((size_t)U->n + 1) * sizeof *order);
	unit_order(p, k, U, order);
	if (!kir_is_joint(k)) {
		for (int s0 = 0; s0 < U->n; c++) {
			int s1 = chunk_end(k, U, order, s0, max_args, 0, p->nbuf);
			out[count++] = stores_part(p, k, U, order, s0, s1, c);
			s0 = s1;
		}
		free(order);
		return count;
	}
	int chunks = 0;
	for (int s0 = 0; s0 < k->nseg; chunks++)
		s0 = chunk_end(k, U, order, s0, max_args, 1, p->nbuf);
	int tbuf = new_temp(p, (int64_t)chunks * k->nacc);
	for (int s0 = 0; s0 < k->nseg; c++) {
		int s1 = chunk_end(k, U, order, s0, max_args, 1, p->nbuf);
		out[count++] = joint_part(p, k, s0, s1, c, tbuf);
		s0 = s1;
	}
	out[count++] = joint_total(p, k, chunks, tbuf);
	free(order);
	return count;
}

/* Whether k is of a kind that splits: a batch, an elementwise kernel, or
 * a joint reduction whose terms read no total. */
static int splits(const kir_kernel *k)
{
	return kir_is_batch(k) || (kir_is_joint(k) && !reads_totals(k)) || (!k->nseg && !k->nacc);
}

static int over_limit(const kir_program *p, const kir_kernel *k, int max_args)
{
	return splits(k) && kir_buffer_count(k, p->nbuf) > max_args;
}

int kir_joint_last_buffers(const kir_kernel *k, int nbuf)
{
	kir_kernel stores = *k;
	stores.nacc = 0, stores.nseg = 0;
	return kir_buffer_count(&stores, nbuf) + 1;
}

int kir_split_fits(const kir_program *p, const kir_kernel *k, int max_args)
{
	if (kir_buffer_count(k, p->nbuf) <= max_args)
		return 1;
	if (!splits(k))
		return 0;
	unit_set U;
	units_of(k, p->nbuf, &U);
	char *used = malloc((size_t)k->nx + 1), *in = malloc((size_t)p->nbuf + 1);
	int fits = !kir_is_joint(k) || kir_joint_last_buffers(k, p->nbuf) <= max_args;
	for (int u = 0; u < U.n && fits; u++) {
		int count = kir_is_joint(k);
		unit_buffers(k, &U, u, used, in, p->nbuf);
		for (int b = 0; b < p->nbuf; b++)
			count += in[b];
		fits = count <= max_args;
	}
	free(used);
	free(in);
	units_free(&U);
	return fits;
}

void kir_split_args(kir_program *p, int max_args)
{
	if (max_args <= 0)
		return;
	for (int n = 0; n < p->nk; n++) {
		if (!over_limit(p, &p->k[n], max_args))
			continue;
		unit_set U;
		units_of(&p->k[n], p->nbuf, &U);
		/* one unit gains nothing by a split, but a joint reduction's
		 * segment does: its chunk, then its total */
		if (U.n < 2 && !kir_is_joint(&p->k[n])) {
			units_free(&U);
			continue;
		}
		kir_kernel *parts = malloc((size_t)(U.n + 2) * sizeof *parts);
		int count = split_kernel(p, n, &U, max_args, parts);
		units_free(&U);
		kir_kernel_free(&p->k[n]);
		for (int i = 1; i < count; i++)
			p->k = ir_grow(p->k, p->nk, &p->kcap, sizeof *p->k), p->nk++;
		memmove(&p->k[n + count], &p->k[n + 1], (size_t)(p->nk - count - n) * sizeof *p->k);
		memcpy(&p->k[n], parts, (size_t)count * sizeof *parts);
		free(parts);
		n += count - 1;
	}
}
