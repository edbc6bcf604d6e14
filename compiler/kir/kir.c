/* kir.c: kernel IR builders, verifier, dumps and the reference evaluator.
 * The lowering from the graph lives in lower.c. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kir.h"
#include "philox.h"

static int same_expr(const kir_expr *a, const kir_expr *b)
{
	return a->kind == b->kind && a->type == b->type && a->op == b->op && a->a == b->a &&
	       a->b == b->b && a->c == b->c && a->value == b->value && a->var == b->var &&
	       a->buf == b->buf && a->stream == b->stream && a->round == b->round && a->acc == b->acc;
}

/* The builders' index of a kernel's expressions: open addressing over
 * positions in x by the expressions' hash, covering x[0..n) but for
 * accumulators (never shared). Entries of x added past n without push
 * (merged or batched kernels) are indexed before a lookup; an index that
 * covers more than the kernel has (a merge's abandoned copy added to it)
 * is rebuilt. Of equal expressions it holds the last, as a scan from the
 * end would find. */
struct kir_cse {
	int *slot;              /* positions in x; -1: empty */
	int cap, used, n;
};

static uint64_t mix(uint64_t h, uint64_t v)
{
	return (h ^ v) * 0x100000001b3ULL;
}

static uint64_t expr_hash(const kir_expr *e)
{
	uint64_t bits, h = 0xcbf29ce484222325ULL;
	memcpy(&bits, &e->value, sizeof bits);
	h = mix(mix(mix(h, (uint64_t)e->kind), (uint64_t)e->type), (uint64_t)e->op);
	h = mix(mix(mix(h, (uint64_t)e->a), (uint64_t)e->b), (uint64_t)e->c);
	h = mix(mix(mix(h, bits), (uint64_t)e->var), (uint64_t)e->buf);
	h = mix(mix(mix(h, (uint64_t)e->stream), (uint64_t)e->round), (uint64_t)e->acc);
	/* A product carries low bits up, never down: without this the table's
	 * low bits would not see a constant's exponent (64.0 and 28.0 alike). */
	h = (h ^ (h >> 33)) * 0xff51afd7ed558ccdULL;
	h = (h ^ (h >> 33)) * 0xc4ceb9fe1a85ec53ULL;
	return h ^ (h >> 33);
}

/* The slot of x[i]'s equal in c, or of the empty slot where it goes. */
static int *cse_slot(struct kir_cse *c, const kir_expr *x, const kir_expr *e)
{
	for (uint64_t i = expr_hash(e) & (uint64_t)(c->cap - 1);; i = (i + 1) & (uint64_t)(c->cap - 1))
		if (c->slot[i] < 0 || same_expr(&x[c->slot[i]], e))
			return &c->slot[i];
}

static void cse_reset(struct kir_cse *c, int cap)
{
	free(c->slot);
	c->slot = malloc((size_t)cap * sizeof *c->slot);
	if (!c->slot)
		abort();
	for (int i = 0; i < cap; i++)
		c->slot[i] = -1;
	c->cap = cap;
	c->used = c->n = 0;
}

/* k's index, covering all of k->x. */
static struct kir_cse *indexed(kir_kernel *k)
{
	struct kir_cse *c = k->cse;
	if (!c && !(c = k->cse = calloc(1, sizeof *c)))
		abort();
	if (!c->slot || c->n > k->nx || 2 * (c->used + k->nx - c->n) > c->cap) {
		int cap = 64;
		while (cap < 4 * k->nx)
			cap *= 2;
		cse_reset(c, cap);
	}
	for (; c->n < k->nx; c->n++)
		if (k->x[c->n].kind != KX_ACC) {
			int *s = cse_slot(c, k->x, &k->x[c->n]);
			c->used += *s < 0;
			*s = c->n;
		}
	return c;
}

void kir_drop_index(kir_kernel *k)
{
	if (k->cse)
		free(k->cse->slot);
	free(k->cse);
	k->cse = NULL;
}

void kir_kernel_free(kir_kernel *k)
{
	kir_drop_index(k);
	free(k->x);
	free(k->st);
	free(k->seg);
	free(k->arg);
}

/* Appends e, or returns an equal expression already there: every
 * expression is pure, so equal ones are computed once (CSE). */
static int push(kir_kernel *k, kir_expr e)
{
	if (e.kind != KX_ACC) {
		int *s = cse_slot(indexed(k), k->x, &e);
		if (*s >= 0)
			return *s;
	}
	k->x = ir_grow(k->x, k->nx, &k->xcap, sizeof *k->x);
	k->x[k->nx] = e;
	return k->nx++;
}

int kir_is_batch(const kir_kernel *k)
{
	return k->nseg > 0 && k->nacc == 0;
}

int kir_is_joint(const kir_kernel *k)
{
	return k->nseg > 0 && k->nacc > 0;
}

kir_kernel kir_segment_view(const kir_kernel *k, int s)
{
	const kir_segment *g = &k->seg[s];
	kir_kernel v = *k;
	v.seg = NULL;
	v.nseg = 0;
	v.rank = g->rank;
	v.nred = g->nred;
	memcpy(v.ext, g->ext, sizeof v.ext);
	memcpy(v.red_value, g->red_value, sizeof v.red_value);
	v.st = k->st + g->st0;
	v.nst = g->nst;
	return v;
}

int kir_is_empty(const kir_kernel *k)
{
	int empty = 0;
	for (int v = 0; v < k->rank + k->nred && !k->nseg; v++)
		empty |= k->ext[v] == 0;
	return empty;
}

int64_t kir_rows(const kir_kernel *k)
{
	int64_t rows = 1;
	if (kir_is_batch(k)) {
		rows = 0;
		for (int s = 0; s < k->nseg; s++) {
			kir_kernel v = kir_segment_view(k, s);
			rows += kir_rows(&v);
		}
		return rows;
	}
	for (int v = 0; v < k->rank - 1; v++)
		rows *= k->ext[v];
	return rows;
}

kir_type kir_type_of(rt_dtype dt)
{
	return dt == RT_I32 ? KT_I32 : KT_F32;
}

int kir_const(kir_kernel *k, kir_type t, double v)
{
	return push(k, (kir_expr){ .kind = KX_CONST, .type = t, .value = v, .a = -1, .b = -1, .c = -1 });
}

int kir_var(kir_kernel *k, int var)
{
	return push(k, (kir_expr){ .kind = KX_VAR, .type = KT_IDX, .var = var, .a = -1, .b = -1, .c = -1 });
}

int kir_load(kir_kernel *k, const kir_program *p, int buf, int index)
{
	return push(k, (kir_expr){ .kind = KX_LOAD, .type = kir_type_of(p->buf[buf].dtype),
	                           .buf = buf, .a = index, .b = -1, .c = -1 });
}

int kir_op(kir_kernel *k, kir_type t, ir_opcode op, int a, int b, int c)
{
	return push(k, (kir_expr){ .kind = KX_OP, .type = t, .op = op, .a = a, .b = b, .c = c });
}

int kir_cast(kir_kernel *k, kir_type t, int a, rt_dtype round)
{
	return push(k, (kir_expr){ .kind = KX_OP, .type = t, .op = OP_cast, .a = a, .b = -1, .c = -1,
	                           .round = t == KT_F32 ? round : RT_F32 });
}

int kir_mod(kir_kernel *k, int a, int b)
{
	return push(k, (kir_expr){ .kind = KX_MOD, .type = KT_IDX, .a = a, .b = b, .c = -1 });
}

int kir_acc(kir_kernel *k, kir_type t, int acc)
{
	for (int i = 0; i < k->nx; i++)
		if (k->x[i].kind == KX_ACC && k->x[i].acc == acc && k->x[i].type == t)
			return i;
	return push(k, (kir_expr){ .kind = KX_ACC, .type = t, .acc = acc, .a = -1, .b = -1, .c = -1 });
}

int kir_acc_add(kir_kernel *k, ir_opcode op, int value)
{
	if (k->nacc >= KIR_MAXACC)      /* callers check */
		abort();
	k->red_op[k->nacc] = op;
	k->red_value[k->nacc] = value;
	return k->nacc++;
}

int kir_random(kir_kernel *k, ir_opcode op, int elem, int seed, int step, int stream)
{
	return push(k, (kir_expr){ .kind = KX_RANDOM, .type = KT_F32, .op = op, .a = elem, .b = seed,
	                           .c = step, .stream = stream });
}

int kir_copy_expr(kir_kernel *to, const kir_program *p, const kir_expr *e, const int *map, int var_shift,
                  int acc_shift)
{
	int x = e->a >= 0 ? map[e->a] : -1, y = e->b >= 0 ? map[e->b] : -1;
	int z = e->c >= 0 ? map[e->c] : -1;
	switch (e->kind) {
	case KX_CONST: return kir_const(to, e->type, e->value);
	case KX_VAR: return kir_var(to, e->var + var_shift);
	case KX_ACC: return kir_acc(to, e->type, e->acc + acc_shift);
	case KX_MOD: return kir_mod(to, x, y);
	case KX_RANDOM: return kir_random(to, e->op, x, y, z, e->stream);
	case KX_LOAD: return kir_load(to, p, e->buf, x);
	case KX_OP:
		return e->op == OP_cast ? kir_cast(to, e->type, x, e->round) : kir_op(to, e->type, e->op, x, y, z);
	}
	return -1;
}

/* The stack holds a path of operands, ids strictly decreasing from i: at
 * most i + 1 entries, each pushed when its user finds it first undone. */
void kir_mark_operands(const kir_kernel *k, char *used)
{
	for (int i = k->nx - 1; i >= 0; i--)
		for (int j = 0; j < 3 && used[i]; j++)
			if ((&k->x[i].a)[j] >= 0)
				used[(&k->x[i].a)[j]] = 1;
}

void kir_mark_used(const kir_kernel *k, char *used)
{
	for (int j = 0; j < k->nacc; j++)
		used[k->red_value[j]] = 1;
	for (int s = 0; s < k->nst; s++)
		used[k->st[s].value] = used[k->st[s].index] = 1;
	kir_mark_operands(k, used);
}

/* Marks what k's stores and terms (a joint reduction's every segment's)
 * use directly. */
static void mark_roots(const kir_kernel *k, char *used)
{
	for (int s = 0; kir_is_joint(k) && s < k->nseg; s++)
		for (int j = 0; j < k->nacc; j++)
			used[k->seg[s].red_value[j]] = 1;
	for (int j = 0; j < k->nacc; j++)
		used[k->red_value[j]] = 1;
	for (int s = 0; s < k->nst; s++)
		used[k->st[s].value] = used[k->st[s].index] = 1;
}

void kir_mark_elements(const kir_kernel *k, char *wide)
{
	char *other = calloc((size_t)k->nx + 1, 1);
	memset(wide, 0, (size_t)k->nx);
	mark_roots(k, wide);
	kir_mark_operands(k, wide);
	mark_roots(k, other);
	for (int i = k->nx - 1; i >= 0; i--)
		for (int j = k->x[i].kind == KX_RANDOM; j < 3 && other[i]; j++)
			if ((&k->x[i].a)[j] >= 0)
				other[(&k->x[i].a)[j]] = 1;
	for (int i = 0; i < k->nx; i++)
		wide[i] = wide[i] && !other[i] && k->x[i].type == KT_IDX && k->x[i].kind != KX_ACC;
	free(other);
}

int kir_buffer_count(const kir_kernel *k, int nbuf)
{
	char *in = calloc((size_t)nbuf + 1, 1), *used = calloc((size_t)k->nx + 1, 1);
	int n = 0;
	mark_roots(k, used);
	kir_mark_operands(k, used);
	for (int i = 0; i < k->nx; i++)
		if (used[i] && k->x[i].kind == KX_LOAD)
			in[k->x[i].buf] = 1;
	for (int s = 0; s < k->nst; s++)
		in[k->st[s].buf] = 1;
	for (int b = 0; b < nbuf; b++)
		n += in[b];
	free(in);
	free(used);
	return n;
}

void kir_walk(const kir_kernel *k, int i, kir_done_fn done, kir_visit_fn visit, void *ctx)
{
	if (i < 0 || done(ctx, i))
		return;
	int *stack = malloc((size_t)(i + 1) * sizeof *stack), n = 0;
	if (!stack)
		abort();
	stack[n++] = i;
	while (n > 0) {
		const kir_expr *e = &k->x[stack[n - 1]];
		int next = -1;
		for (int j = 0; j < 3 && next < 0; j++)
			if ((&e->a)[j] >= 0 && !done(ctx, (&e->a)[j]))
				next = (&e->a)[j];
		if (next >= 0)
			stack[n++] = next;
		else
			visit(ctx, stack[--n]);
	}
	free(stack);
}

void kir_store_add(kir_kernel *k, int buf, int index, int value)
{
	k->st = ir_grow(k->st, k->nst, &k->stcap, sizeof *k->st);
	k->st[k->nst++] = (kir_store){ buf, index, value, 0 };
}

void kir_store_inner(kir_kernel *k, int acc, int buf, int index, int value)
{
	kir_store_add(k, buf, index, value);
	k->st[k->nst - 1].inner = acc + 1;
}

void kir_buffer_unused(kir_buffer *b)
{
	b->numel = 0;
	b->shape = (ir_shape){ 1, { 0 } };
}

void kir_program_free(kir_program *p)
{
	if (!p)
		return;
	for (int n = 0; n < p->nk; n++)
		kir_kernel_free(&p->k[n]);
	free(p->k);
	free(p->buf);
	p->k = NULL;
	p->buf = NULL;
	p->nk = p->nbuf = p->kcap = p->bufcap = 0;
}

/* --- verify ------------------------------------------------------------ */

static int bad(char *err, size_t len, const kir_kernel *k, int i, const char *what)
{
	snprintf(err, len, "kernel %s: expression %d: %s", k->name, i, what);
	return -1;
}

/* Expression i of k, whose vars are 0 .. nvars-1. */
static int verify_expr(const kir_program *p, const kir_kernel *k, int i, int nvars, char *err, size_t len)
{
	const kir_expr *e = &k->x[i];
	int ops[3] = { e->a, e->b, e->c };
	for (int j = 0; j < 3; j++)
		if (ops[j] >= i)
			return bad(err, len, k, i, "operand does not come before its user");
	switch (e->kind) {
	case KX_VAR:
		return e->var < nvars ? 0 : bad(err, len, k, i, "var out of range");
	case KX_LOAD:
		if (e->buf < 0 || e->buf >= p->nbuf || k->x[e->a].type != KT_IDX)
			return bad(err, len, k, i, "load of no buffer or by a non-index");
		return 0;
	case KX_ACC:
		return e->acc >= 0 && e->acc < k->nacc ? 0 : bad(err, len, k, i, "no such accumulator");
	case KX_MOD:
		return k->x[e->a].type == KT_IDX && k->x[e->b].type == KT_IDX ? 0
		       : bad(err, len, k, i, "mod of non-indices");
	case KX_OP:
		return e->a >= 0 && (ir_ops[e->op].flags & ELEMWISE) ? 0
		       : bad(err, len, k, i, "op is not elementwise or lacks operands");
	case KX_CONST: case KX_RANDOM:
		return 0;
	}
	return bad(err, len, k, i, "no such kind of expression");
}

/* accs[i]: bit j set when expression i reads accumulator j. */
static unsigned *acc_reads(const kir_kernel *k)
{
	unsigned *accs = calloc((size_t)k->nx + 1, sizeof *accs);
	for (int i = 0; i < k->nx; i++) {
		const kir_expr *e = &k->x[i];
		if (e->kind == KX_ACC)
			accs[i] = 1u << e->acc;
		else
			for (int j = 0; j < 3; j++)
				if ((&e->a)[j] >= 0 && e->kind != KX_VAR && e->kind != KX_CONST)
					accs[i] |= accs[(&e->a)[j]];
	}
	return accs;
}

/* Accumulator j's loop reads only accumulators before it; a kernel has
 * accumulators exactly when it has a reduction. */
static int verify_accs(const kir_kernel *k, char *err, size_t len)
{
	if ((k->nred > 0) != (k->nacc > 0) || k->nacc > KIR_MAXACC)
		return bad(err, len, k, -1, "reduction without accumulators, or the reverse");
	unsigned *accs = acc_reads(k);
	int ok = 1;
	for (int j = 0; j < k->nacc; j++)
		ok &= k->red_value[j] >= 0 && k->red_value[j] < k->nx &&
		      (accs[k->red_value[j]] >> j) == 0;
	for (int s = 0; s < k->nst; s++)
		if (k->st[s].inner > 0)
			ok &= k->st[s].inner <= k->nacc &&
			      ((accs[k->st[s].value] | accs[k->st[s].index]) >> (k->st[s].inner - 1)) == 0;
	free(accs);
	if (!ok)
		return bad(err, len, k, -1, "a reduction loop reads its own or a later accumulator");
	for (int s = 0; s < k->nst; s++)
		for (int i = 0; k->st[s].inner > 0 && i < k->nx; i++)
			if (k->x[i].kind == KX_LOAD && k->x[i].buf == k->st[s].buf)
				return bad(err, len, k, i, "loads a buffer an inner store writes");
	return 0;
}

/* Every expression of k, whose vars are 0 .. nvars-1. */
static int verify_exprs(const kir_program *p, const kir_kernel *k, int nvars, char *err, size_t len)
{
	if (nvars > KIR_MAXVAR)
		return bad(err, len, k, -1, "too many loop vars");
	for (int i = 0; i < k->nx; i++)
		if (verify_expr(p, k, i, nvars, err, len) < 0)
			return -1;
	return 0;
}

/* The stores and accumulators of a kernel without segments (a segment's
 * view, or a plain kernel). */
static int verify_plain(const kir_program *p, const kir_kernel *k, char *err, size_t len)
{
	for (int s = 0; s < k->nst; s++)
		if (k->st[s].buf < 0 || k->st[s].buf >= p->nbuf || k->st[s].index >= k->nx ||
		    k->st[s].value >= k->nx || p->buf[k->st[s].buf].kind == KB_CONST)
			return bad(err, len, k, s, "store is malformed");
	return verify_accs(k, err, len);
}

/* A joint reduction is one point whose stores all run after the loops; a
 * batch's segments own its stores, in order, and reduce nothing. */
static int verify_segments(const kir_program *p, const kir_kernel *k, char *err, size_t len)
{
	int next = 0, nvars = 0;
	for (int s = 0; s < k->nseg; s++)
		if (k->seg[s].rank + k->seg[s].nred > nvars)
			nvars = k->seg[s].rank + k->seg[s].nred;
	if (verify_exprs(p, k, nvars, err, len) < 0)
		return -1;
	for (int s = 0; s < k->nseg; s++) {
		kir_kernel v = kir_segment_view(k, s);
		int joint = kir_is_joint(k);
		if (joint ? v.rank != 0 || v.nred == 0 || v.nst != 0 : v.nred != 0 || k->seg[s].st0 != next)
			return bad(err, len, k, -1, "a segment does not fit its kernel's kind");
		next += v.nst;
		if (verify_plain(p, &v, err, len) < 0)
			return -1;
	}
	if (kir_is_joint(k))
		for (int s = 0; s < k->nst; s++)
			if (k->rank != 0 || k->st[s].inner)
				return bad(err, len, k, s, "a joint reduction's store is not after its loops");
	return kir_is_batch(k) && next != k->nst ? bad(err, len, k, -1, "a store belongs to no segment") : 0;
}

int kir_verify(const kir_program *p, char *err, size_t len)
{
	for (int n = 0; n < p->nk; n++) {
		const kir_kernel *k = &p->k[n];
		if (k->nseg ? verify_segments(p, k, err, len) < 0
		    : verify_exprs(p, k, k->rank + k->nred, err, len) < 0 || verify_plain(p, k, err, len) < 0)
			return -1;
	}
	return 0;
}

/* --- dump and report ---------------------------------------------------- */

static void dump_expr(const kir_kernel *k, int i, FILE *f)
{
	const kir_expr *e = &k->x[i];
	static const char *types[] = { "idx", "f32", "i32" };
	fprintf(f, "    x%d:%s = ", i, types[e->type]);
	switch (e->kind) {
	case KX_CONST: fprintf(f, "%.9g\n", e->value); break;
	case KX_VAR: fprintf(f, "v%d\n", e->var); break;
	case KX_LOAD: fprintf(f, "load b%d[x%d]\n", e->buf, e->a); break;
	case KX_ACC: fprintf(f, "acc%d\n", e->acc); break;
	case KX_MOD: fprintf(f, "x%d %% x%d\n", e->a, e->b); break;
	case KX_RANDOM:
		fprintf(f, "%s(elem x%d, seed x%d, step x%d, stream %d)\n", ir_ops[e->op].name, e->a, e->b,
		        e->c, e->stream);
		break;
	case KX_OP:
		fprintf(f, "%s(x%d", ir_ops[e->op].name, e->a);
		if (e->b >= 0)
			fprintf(f, ", x%d", e->b);
		if (e->c >= 0)
			fprintf(f, ", x%d", e->c);
		fprintf(f, ")\n");
		break;
	}
}

static void dump_domain(const kir_kernel *k, FILE *f)
{
	fprintf(f, " domain");
	for (int v = 0; v < k->rank; v++)
		fprintf(f, " %lld", (long long)k->ext[v]);
	if (k->nred) {
		fprintf(f, " reduce");
		for (int v = 0; v < k->nred; v++)
			fprintf(f, " %lld", (long long)k->ext[k->rank + v]);
		for (int j = 0; j < k->nacc; j++)
			fprintf(f, ", acc%d = %s of x%d", j, ir_ops[k->red_op[j]].name, k->red_value[j]);
	}
	fputc('\n', f);
}

static void dump_stores(const kir_kernel *k, FILE *f)
{
	for (int s = 0; s < k->nst; s++) {
		fprintf(f, "    store b%d[x%d] = x%d", k->st[s].buf, k->st[s].index, k->st[s].value);
		if (k->st[s].inner)
			fprintf(f, " (in acc%d's loop)", k->st[s].inner - 1);
		fputc('\n', f);
	}
}

void kir_dump(const kir_program *p, FILE *f)
{
	static const char *kinds[] = { "param", "input", "output", "temp", "const" };
	for (int b = 0; b < p->nbuf; b++)
		fprintf(f, "b%d: %s %s %lld%s%s @%lld\n", b, kinds[p->buf[b].kind],
		        rt_dtype_name(p->buf[b].dtype), (long long)p->buf[b].numel,
		        p->buf[b].name ? " " : "", p->buf[b].name ? p->buf[b].name : "",
		        (long long)p->buf[b].offset);
	for (int n = 0; n < p->nk; n++) {
		const kir_kernel *k = &p->k[n];
		fprintf(f, "kernel %s:", k->name);
		if (k->nseg)
			fprintf(f, " %s of %d segments\n", kir_is_joint(k) ? "joint reduction" : "batch", k->nseg);
		else
			dump_domain(k, f);
		for (int i = 0; i < k->nx; i++)
			dump_expr(k, i, f);
		for (int s = 0; s < k->nseg; s++) {
			kir_kernel v = kir_segment_view(k, s);
			fprintf(f, "  segment %d:", s);
			dump_domain(&v, f);
			dump_stores(&v, f);
		}
		if (!kir_is_batch(k))
			dump_stores(k, f);
	}
}

/* "  [tile 7 x 1 of vars 3, -1: tuned, 85.1 GFLOP/s]" and the line's end. */
static void report_tile(const kir_tile *t, FILE *f)
{
	if (t->source == KIR_TILE_OPEN) {
		fputc('\n', f);
		return;
	}
	if (t->var[0] < 0)
		fprintf(f, "  [no tile");
	else
		fprintf(f, "  [tile %d x %d of vars %d, %d", t->copies[0], t->copies[1], t->var[0],
		        t->var[1]);
	if (t->source == KIR_TILE_TUNED)
		fprintf(f, ": tuned, %.1f GFLOP/s]\n", t->gflops);
	else
		fprintf(f, ": cost model]\n");
}

void kir_report(const kir_program *p, FILE *f)
{
	double flops = 0, bytes = 0;
	fprintf(f, "entry %s: %d kernels\n", p->entry, p->nk);
	for (int n = 0; n < p->nk; n++) {
		const kir_kernel *k = &p->k[n];
		fprintf(f, "  %-28s %10.4g MFLOP %10.4g MB  %s", k->name, k->flops / 1e6, k->bytes / 1e6,
		        k->ops ? k->ops : "");
		report_tile(&k->tile, f);
		flops += k->flops;
		bytes += k->bytes;
	}
	fprintf(f, "  total: %.4g GFLOP, %.4g MB moved, arena peak %.4g MB, %lld nodes rebuilt after fusion conflicts\n",
	        flops / 1e9, bytes / 1e6, (double)p->arena_bytes / 1e6, (long long)p->rebuilt);
}

/* --- the reference evaluator -------------------------------------------- */

typedef struct {
	const kir_program *p;
	const kir_kernel *k;
	void **bufs;
	int64_t var[KIR_MAXVAR];
	double acc[KIR_MAXACC];
	double *val;            /* per expression */
} evaluator;

/* An elementwise op as ir_scalar computes it, rounded to f32 or, on
 * integers, truncated toward zero (division, casts and the f32 math the
 * backends do on integers all truncate). */
static double eval_op(ir_opcode op, kir_type t, double a, double b, double c)
{
	double r = ir_scalar(op, a, b, c);
	return t == KT_F32 ? (double)(float)r : trunc(r);
}

void kir_index_values(const kir_kernel *k, const int64_t *vars, int64_t *val)
{
	for (int i = 0; i < k->nx; i++) {
		const kir_expr *e = &k->x[i];
		int64_t a = e->a >= 0 ? val[e->a] : 0, b = e->b >= 0 ? val[e->b] : 0, c = e->c >= 0 ? val[e->c] : 0;
		int known = a != KIR_UNKNOWN && b != KIR_UNKNOWN && c != KIR_UNKNOWN;
		double r = NAN;
		if (e->kind == KX_CONST)
			r = e->value;
		else if (e->kind == KX_VAR)
			r = (double)vars[e->var];
		else if (e->kind == KX_MOD && known && b > 0 && a >= 0)
			r = (double)(a % b);
		else if (e->kind == KX_OP && e->type == KT_IDX && e->op != OP_cast && known && (e->op != OP_div || b != 0))
			r = eval_op(e->op, KT_IDX, (double)a, (double)b, (double)c);
		val[i] = fabs(r) < 0x1p62 ? (int64_t)r : KIR_UNKNOWN;
	}
}

static double eval_random(const kir_expr *e, double elem, double seed, double step)
{
	float out;
	uint64_t stream = (uint64_t)(uint32_t)(int32_t)step << 16 | (uint16_t)e->stream;
	uint64_t key = (uint32_t)(int32_t)seed;
	(e->op == OP_rng_normal ? rt_philox_normal : rt_philox_uniform)(key, stream, (uint64_t)elem, 1, &out);
	return out;
}

static double eval_expr(evaluator *ev, int i)
{
	const kir_expr *e = &ev->k->x[i];
	const double *v = ev->val;
	switch (e->kind) {
	case KX_CONST: return e->type == KT_F32 ? (double)(float)e->value : e->value;
	case KX_VAR: return (double)ev->var[e->var];
	case KX_LOAD: {
		int64_t at = (int64_t)v[e->a];
		if (at < 0 || at >= ev->p->buf[e->buf].numel)   /* another segment's, say: unused */
			return NAN;
		double x = rt_load(ev->p->buf[e->buf].dtype, ev->bufs[e->buf], at);
		return e->type == KT_F32 ? (double)(float)x : x;
	}
	case KX_ACC: return ev->acc[e->acc];
	case KX_MOD: return (double)((int64_t)v[e->a] % (int64_t)v[e->b]);
	case KX_RANDOM: return eval_random(e, v[e->a], v[e->b], v[e->c]);
	case KX_OP:
		if (e->op == OP_cast && e->round != RT_F32) {   /* round as storage would */
			uint16_t h;
			rt_store(e->round, &h, 0, v[e->a]);
			return rt_load(e->round, &h, 0);
		}
		return eval_op(e->op, e->type, v[e->a], e->b >= 0 ? v[e->b] : 0, e->c >= 0 ? v[e->c] : 0);
	}
	return 0;
}

/* Evaluates every expression; the ones that depend on unset vars, the
 * accumulator or another segment's vars get values that are simply not
 * used (a load out of its buffer's bounds gives NaN, and would show). */
static void eval_all(evaluator *ev)
{
	for (int i = 0; i < ev->k->nx; i++)
		ev->val[i] = eval_expr(ev, i);
}

/* Steps vars [from, from+count) through their extents; 0 when done. */
static int next_point(evaluator *ev, int from, int count)
{
	for (int v = from + count - 1; v >= from; v--) {
		if (++ev->var[v] < ev->k->ext[v])
			return 1;
		ev->var[v] = 0;
	}
	return 0;
}

/* Stores with this `inner` at the current point. */
static void eval_stores(evaluator *ev, int inner)
{
	const kir_kernel *k = ev->k;
	for (int s = 0; s < k->nst; s++)
		if (k->st[s].inner == inner)
			rt_store(ev->p->buf[k->st[s].buf].dtype, ev->bufs[k->st[s].buf],
			         (int64_t)ev->val[k->st[s].index], ev->val[k->st[s].value]);
}

/* Accumulator j's loop over the reduction domain, with its inner stores,
 * continuing from acc. */
static double eval_acc(evaluator *ev, int j, double acc)
{
	const kir_kernel *k = ev->k;
	int max = k->red_op[j] == OP_max;
	for (int v = k->rank; v < k->rank + k->nred; v++)
		ev->var[v] = 0;
	if (kir_is_empty(k))
		return acc;
	do {
		eval_all(ev);
		double x = ev->val[k->red_value[j]];
		double r = ir_scalar(k->red_op[j], acc, x, 0);
		acc = max ? r : (double)(float)r;
		eval_stores(ev, j + 1);
	} while (next_point(ev, k->rank, k->nred));
	return acc;
}

/* Accumulator j through the reduction of every segment in turn (of the
 * kernel itself when it has none). */
static void eval_joint_acc(evaluator *ev, int j)
{
	const kir_kernel *k = ev->k;
	double acc = k->red_op[j] == OP_max ? -INFINITY : 0;
	if (!k->nseg)
		acc = eval_acc(ev, j, acc);
	for (int s = 0; s < k->nseg; s++) {
		kir_kernel v = kir_segment_view(k, s);
		ev->k = &v;
		acc = eval_acc(ev, j, acc);
		ev->k = k;
	}
	ev->acc[j] = acc;
}

static void eval_point(evaluator *ev)
{
	for (int j = 0; j < ev->k->nacc; j++)
		eval_joint_acc(ev, j);
	eval_all(ev);
	eval_stores(ev, 0);
}

static void eval_kernel(evaluator *ev)
{
	if (!kir_is_empty(ev->k))
		do
			eval_point(ev);
		while (next_point(ev, 0, ev->k->rank));
}

void kir_eval(const kir_program *p, void **bufs)
{
	for (int n = 0; n < p->nk; n++) {
		const kir_kernel *k = &p->k[n];
		evaluator ev = { p, k, bufs, { 0 }, { 0 }, calloc((size_t)k->nx + 1, sizeof(double)) };
		if (kir_is_batch(k))
			for (int s = 0; s < k->nseg; s++) {
				kir_kernel v = kir_segment_view(k, s);
				ev.k = &v;
				eval_kernel(&ev);
			}
		else
			eval_kernel(&ev);
		free(ev.val);
	}
}
