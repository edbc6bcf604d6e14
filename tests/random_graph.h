/* random_graph: model scripts made at random, and the cmocka tests that
 * check one each, for the tests that hold a part of the compiler to the
 * reference interpreter on them (test_random_graphs: the lowering under
 * its every schedule; test_llvm and test_opencl: the code generators).
 *
 * Each seed makes one Lua script through the public API (gen_script): a
 * few inputs and params, then 3 to 25 ops over small tensors (dims 1 to
 * 7, ranks 1 to 4, odd sizes on purpose), each picked at random among
 * those valid for its operand's shape: elementwise ops with broadcasting
 * and scalars, reshape, permute, transpose, slice, chunk, cat of 2 to 6
 * tensors (now and then 12), pad, expand, upsample, sums, means, maxima
 * and variances over dims, joint reductions (a sum or max of flattened
 * tensors joined end to end), softmax (plus 1/16 of its operand) and
 * log_softmax, matmul, linear, conv2d and group_norm, and now and then
 * a random draw (a dropout mask or normal noise, its shard at times past
 * 2^31 elements along the stream) or an input stored in bf16 or f16.
 * Convolutions
 * (op_conv) have 1 to 6 output channels, or 16 to 48 (those the lowering
 * computes channels-last), often 3x3 with stride 1 and padding 1 (those
 * Winograd's algorithm takes); a quarter of the scripts start with a
 * convolution of their first input. Half the operands are the latest
 * node, the rest any earlier one, so nodes are often read several times
 * (fusion's hard case). Entry "main" returns 1 to 3 nodes (now and then
 * stored in bf16 or f16: kernel_check.h's compare allows one ulp); some scripts
 * (most of those with a convolution) also return the gradients of a
 * scalar loss, or of a node under a seed input, and update params, or
 * take an Adam step (ddpm.optim, its options at random). Each
 * node carries a bound on its magnitude; one past BOUND_MAX is scaled
 * down, and exp, log, sqrt, rsqrt and division only see operands that
 * keep them finite (log(x*x + 1), a / (b*b + 1)).
 *
 * run_random_graphs runs a test's check on each seed's script as a
 * cmocka test. DDPMC_RANDOM_GRAPHS=N runs N scripts (default: the
 * test's own count), DDPMC_RANDOM_SEED=S starts at seed S (default 1).
 * A failing seed's script is written to /tmp/ddpmc-random-graph-SEED.lua
 * and named with random_stage (what the check was running);
 * DDPMC_RANDOM_SEED=SEED DDPMC_RANDOM_GRAPHS=1 replays it
 * (DDPMC_TEST_DUMP=1 prints its kernels), DDPMC_RANDOM_SCRIPT=FILE
 * checks FILE instead (a script being reduced). */
#ifndef DDPMC_RANDOM_GRAPH_H
#define DDPMC_RANDOM_GRAPH_H

#include <ctype.h>

#include "kernel_check.h"

enum {
	MAX_VALUES = 160,       /* Lua allows 200 locals */
	MAX_LEAVES = 60,        /* a bit each in value.deps */
	MAX_NUMEL = 2048,       /* elements of any node */
	MAX_PRODUCTS = 60000,   /* products of a convolution */
};

static const double BOUND_MAX = 16;

/* --- the generator ------------------------------------------------------------------------------ */

typedef struct {
	int rank;
	int64_t d[4];
} shape;

typedef struct {
	shape s;
	double bound;           /* no element is larger in magnitude */
	uint64_t deps;          /* the leaves it is computed from, a bit each */
	int leaf;               /* index into gen.leaves, or -1 */
	int used;               /* a later node reads it */
} value;

typedef struct {
	int param;              /* a param, else an input */
	int value;
} leaf;

typedef struct {
	uint64_t rng;
	uint64_t rng_late;      /* a stream of its own for choices added later: old seeds' scripts stay */
	rt_strbuf lua;          /* the script */
	value v[MAX_VALUES];    /* v[i] is the script's local vI */
	int nv;
	leaf leaves[MAX_LEAVES];
	int nleaves;
	int convs;              /* convolutions made */
} gen;

/* splitmix64: the next number of the stream *state. */
static uint64_t splitmix(uint64_t *state)
{
	uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static uint64_t next_u64(gen *g)
{
	return splitmix(&g->rng);
}

/* Uniform in [lo, hi]. */
static int rnd(gen *g, int lo, int hi)
{
	return lo + (int)(next_u64(g) % (uint64_t)(hi - lo + 1));
}

static int chance(gen *g, int percent)
{
	return rnd(g, 0, 99) < percent;
}

/* chance() from the stream rng_late. */
static int late_chance(gen *g, int percent)
{
	return (int)(splitmix(&g->rng_late) % 100) < percent;
}

static int64_t numel(const shape *s)
{
	int64_t n = 1;
	for (int i = 0; i < s->rank; i++)
		n *= s->d[i];
	return n;
}

static void put_shape(rt_strbuf *b, const shape *s)
{
	rt_sb_puts(b, "{");
	for (int i = 0; i < s->rank; i++)
		rt_sb_printf(b, "%s %lld", i ? "," : "", (long long)s->d[i]);
	rt_sb_puts(b, s->rank ? " }" : "}");
}

/* A dim as the script names it: 0-based, now and then counted from the end. */
static int dim_name(gen *g, int d, int rank)
{
	return chance(g, 30) ? d - rank : d;
}

/* numpy broadcasting of a and b into *out (0 where they do not). */
static int broadcast(const shape *a, const shape *b, shape *out)
{
	out->rank = a->rank > b->rank ? a->rank : b->rank;
	for (int i = 0; i < out->rank; i++) {
		int ia = i - (out->rank - a->rank), ib = i - (out->rank - b->rank);
		int64_t da = ia >= 0 ? a->d[ia] : 1, db = ib >= 0 ? b->d[ib] : 1;
		if (da != db && da != 1 && db != 1)
			return 0;
		out->d[i] = da > db ? da : db;
	}
	return 1;
}

/* Marks used every node that expr names (vI). */
static void mark_used(gen *g, const char *expr)
{
	for (const char *c = expr; (c = strchr(c, 'v')); c++)
		if ((c == expr || !isalnum((unsigned char)c[-1])) && isdigit((unsigned char)c[1]))
			g->v[atoi(c + 1)].used = 1;
}

/* Appends `local vN = expr` (scaled to BOUND_MAX when bound is past it):
 * node N of shape s. */
static int add_value(gen *g, const shape *s, double bound, uint64_t deps, const char *expr)
{
	assert_true(g->nv < MAX_VALUES);
	mark_used(g, expr);
	value *v = &g->v[g->nv];
	*v = (value){ *s, 0, deps, -1, 0 };
	if (bound > BOUND_MAX) {
		rt_sb_printf(&g->lua, "local v%d = (%s) * %.9g\n", g->nv, expr, BOUND_MAX / bound);
		v->bound = BOUND_MAX;
	} else {
		rt_sb_printf(&g->lua, "local v%d = %s\n", g->nv, expr);
		v->bound = bound;
	}
	return g->nv++;
}

/* add_value of the expression built in *e, which it frees. */
static int add_value_from(gen *g, const shape *s, double bound, uint64_t deps, rt_strbuf *e)
{
	int v = add_value(g, s, bound, deps, e->p);
	free(e->p);
	return v;
}

static int room_for_leaf(const gen *g)
{
	return g->nleaves < MAX_LEAVES && g->nv < MAX_VALUES;
}

/* A new input (uniform in [-2, 2) when run) or param (normal or uniform
 * init) of shape s. */
static int add_leaf(gen *g, const shape *s, int param)
{
	rt_strbuf e = { 0 };
	int n = g->nleaves;
	double bound = 2;
	if (!param) {
		rt_sb_printf(&e, "ddpm.input('x%d', ", n);
		put_shape(&e, s);
		rt_sb_puts(&e, ")");
	} else {
		rt_sb_printf(&e, "ddpm.param('p%d', ", n);
		put_shape(&e, s);
		if (chance(g, 50))
			rt_sb_puts(&e, ", { init = 'normal', a = 0, b = 1 })"), bound = 5;
		else
			rt_sb_puts(&e, ", { init = 'uniform', a = -1, b = 1 })"), bound = 1;
	}
	int v = add_value_from(g, s, bound, 1ull << n, &e);
	g->v[v].leaf = n;
	g->leaves[g->nleaves++] = (leaf){ param, v };
	return v;
}

/* A shape of rank `rank` (0: 1 to 4), dims 1 to 7, at most 400 elements. */
static shape random_shape(gen *g, int rank)
{
	shape s;
	do {
		s.rank = rank ? rank : rnd(g, 1, 4);
		for (int i = 0; i < s.rank; i++)
			s.d[i] = rnd(g, 1, 7);
	} while (numel(&s) > 400);
	return s;
}

/* An operand: half the time the latest node, else any. */
static int pick(gen *g)
{
	return chance(g, 50) ? g->nv - 1 : rnd(g, 0, g->nv - 1);
}

/* --- ops: each makes a node from operand a, or returns -1 where a's shape does not suit --------- */

static int op_unary(gen *g, int a)
{
	static const struct { const char *fmt; int kind; } forms[] = {
		{ "-v%d", 0 }, { "v%d:abs()", 0 }, { "v%d:relu()", 0 }, { "ddpm.F.silu(v%d)", 0 },
		{ "v%d:sin()", 1 }, { "v%d:cos()", 1 }, { "v%d:tanh()", 1 }, { "v%d:sigmoid()", 1 },
		{ "(v%1$d * v%1$d + 1):log()", 2 }, { "(v%1$d * v%1$d + 1):sqrt()", 3 },
		{ "(v%1$d * v%1$d + 0.5):rsqrt()", 4 }, { "v%d:exp()", 5 },
	};
	const value *v = &g->v[a];
	int f = rnd(g, 0, TU_LEN(forms) - 1);
	double b = v->bound, bounds[] = { b, 1, log(b * b + 1), sqrt(b * b + 1), sqrt(2), exp(b) };
	char expr[128];
	if (forms[f].kind == 5 && b > 4)        /* e^4 at most */
		snprintf(expr, sizeof expr, "(v%d * %.9g):exp()", a, 4 / b), bounds[5] = exp(4);
	else
		snprintf(expr, sizeof expr, forms[f].fmt, a);
	shape s = v->s;
	return add_value(g, &s, bounds[forms[f].kind], v->deps, expr);
}

/* A shape that broadcasts with s: some of its dims 1, some of its size-1
 * dims grown, now and then one fewer or one more leading dim. */
static shape partner_shape(gen *g, const shape *s)
{
	shape p = *s;
	for (int i = 0; i < p.rank; i++)
		if (p.d[i] == 1 && chance(g, 30))
			p.d[i] = rnd(g, 2, 5);
		else if (chance(g, 30))
			p.d[i] = 1;
	if (p.rank > 1 && chance(g, 20)) {
		memmove(p.d, p.d + 1, (size_t)(p.rank - 1) * sizeof *p.d);
		p.rank--;
	} else if (p.rank < 4 && chance(g, 15)) {
		memmove(p.d + 1, p.d, (size_t)p.rank * sizeof *p.d);
		p.d[0] = rnd(g, 1, 4);
		p.rank++;
	}
	return p;
}

/* A constant node of shape s (at most 16 elements). */
static int add_constant(gen *g, const shape *s)
{
	rt_strbuf e = { 0 };
	rt_sb_puts(&e, "ddpm.constant({");
	for (int64_t i = 0; i < numel(s); i++)
		rt_sb_printf(&e, "%s %g", i ? "," : "", rnd(g, -16, 16) / 8.0);
	rt_sb_puts(&e, " }, ");
	put_shape(&e, s);
	rt_sb_puts(&e, ")");
	return add_value_from(g, s, 2, 0, &e);
}

/* A second operand for a, broadcasting with it into *out within
 * MAX_NUMEL: an earlier node, else a new leaf or constant. */
static int partner(gen *g, int a, shape *out)
{
	if (chance(g, 60)) {
		int start = rnd(g, 0, g->nv - 1);
		for (int k = 0; k < g->nv; k++) {
			int b = (start + k) % g->nv;
			if (broadcast(&g->v[a].s, &g->v[b].s, out) && numel(out) <= MAX_NUMEL)
				return b;
		}
	}
	shape p = partner_shape(g, &g->v[a].s);
	if (!broadcast(&g->v[a].s, &p, out) || numel(out) > MAX_NUMEL || !room_for_leaf(g))
		p = g->v[a].s;
	broadcast(&g->v[a].s, &p, out);
	if (numel(&p) <= 16 && chance(g, 15))
		return add_constant(g, &p);
	return add_leaf(g, &p, chance(g, 30));
}

static int op_binary(gen *g, int a)
{
	shape s;
	int b = partner(g, a, &s);
	const value *x = &g->v[a], *y = &g->v[b];
	double ba = x->bound, bb = y->bound, big = ba > bb ? ba : bb;
	char expr[256];
	double bound;
	switch (rnd(g, 0, 8)) {
	case 0: snprintf(expr, sizeof expr, "v%d + v%d", a, b), bound = ba + bb; break;
	case 1: snprintf(expr, sizeof expr, "v%d - v%d", a, b), bound = ba + bb; break;
	case 2: snprintf(expr, sizeof expr, "v%d * v%d", a, b), bound = ba * bb; break;
	case 3: snprintf(expr, sizeof expr, "v%d / (v%d * v%d + 1)", a, b, b), bound = ba; break;
	case 4: snprintf(expr, sizeof expr, "v%d / (v%d:abs() + 0.5)", a, b), bound = 2 * ba; break;
	case 5: snprintf(expr, sizeof expr, "ddpm.maximum(v%d, v%d)", a, b), bound = big; break;
	case 6: snprintf(expr, sizeof expr, "ddpm.minimum(v%d, v%d)", a, b), bound = big; break;
	/* a + 0.3, not a: a node equal to b but for rounding (b * -2.25 *
	 * 0.444444444, scaled back to BOUND_MAX, of -b) falls either way,
	 * the interpreter's doubles one way and f32 the other (twice the
	 * value); 0.3 no sum of the generator's constants makes */
	case 7: snprintf(expr, sizeof expr, "ddpm.where(ddpm.lt(v%d, v%d + 0.3), v%d, v%d * 0.5)", a, b, a, b),
		bound = big; break;
	/* not at 0, where a node that is 0 but for rounding (the mean of a
	 * group_norm's output) falls either way */
	default: snprintf(expr, sizeof expr, "ddpm.where(ddpm.gt(v%d, 0.25), v%d, v%d)", b, a, b), bound = big; break;
	}
	return add_value(g, &s, bound, x->deps | y->deps, expr);
}

static int op_scalar(gen *g, int a)
{
	const value *v = &g->v[a];
	double c = rnd(g, -20, 20) / 8.0, b = v->bound;
	c = c == 0 ? 1.25 : c;
	char expr[128];
	double bound;
	switch (rnd(g, 0, 5)) {
	case 0: snprintf(expr, sizeof expr, "v%d * %g", a, c), bound = b * fabs(c); break;
	case 1: snprintf(expr, sizeof expr, "v%d + %g", a, c), bound = b + fabs(c); break;
	case 2: snprintf(expr, sizeof expr, "%g - v%d", c, a), bound = b + fabs(c); break;
	case 3: snprintf(expr, sizeof expr, "v%d / %g", a, c), bound = b / fabs(c); break;
	case 4: snprintf(expr, sizeof expr, "ddpm.maximum(v%d, %g)", a, c), bound = fmax(b, fabs(c)); break;
	default: snprintf(expr, sizeof expr, "v%d ^ 2", a), bound = b * b; break;
	}
	shape s = v->s;
	return add_value(g, &s, bound, v->deps, expr);
}

/* A shape of rank 1 to 4 with n elements: n's prime factors dealt out. */
static shape factor_shape(gen *g, int64_t n)
{
	shape s = { rnd(g, 1, 4), { 1, 1, 1, 1 } };
	for (int64_t p = 2; n > 1; p++)
		while (n % p == 0) {
			s.d[rnd(g, 0, s.rank - 1)] *= p;
			n /= p;
		}
	return s;
}

static int op_reshape(gen *g, int a)
{
	const value *v = &g->v[a];
	shape s = factor_shape(g, numel(&v->s));
	int hole = chance(g, 30) ? rnd(g, 0, s.rank - 1) : -1;
	rt_strbuf e = { 0 };
	rt_sb_printf(&e, "v%d:reshape {", a);
	for (int i = 0; i < s.rank; i++)
		rt_sb_printf(&e, "%s %lld", i ? "," : "", i == hole ? -1LL : (long long)s.d[i]);
	rt_sb_puts(&e, " }");
	return add_value_from(g, &s, v->bound, v->deps, &e);
}

static int op_permute(gen *g, int a)
{
	const value *v = &g->v[a];
	int rank = v->s.rank;
	if (rank < 2)
		return -1;
	shape s = v->s;
	rt_strbuf e = { 0 };
	if (chance(g, 40)) {
		int i = rnd(g, 0, rank - 1), j = rnd(g, 0, rank - 1);
		s.d[i] = v->s.d[j], s.d[j] = v->s.d[i];
		rt_sb_printf(&e, "v%d:transpose(%d, %d)", a, dim_name(g, i, rank), dim_name(g, j, rank));
	} else {
		int perm[4] = { 0, 1, 2, 3 };
		for (int i = rank - 1; i > 0; i--) {
			int j = rnd(g, 0, i), t = perm[i];
			perm[i] = perm[j], perm[j] = t;
		}
		rt_sb_printf(&e, "v%d:permute {", a);
		for (int i = 0; i < rank; i++) {
			s.d[i] = v->s.d[perm[i]];
			rt_sb_printf(&e, "%s %d", i ? "," : "", dim_name(g, perm[i], rank));
		}
		rt_sb_puts(&e, " }");
	}
	return add_value_from(g, &s, v->bound, v->deps, &e);
}

/* x:slice(dim, start, stop, step), or one piece of x:chunk(n, dim). */
static int op_slice(gen *g, int a)
{
	const value *v = &g->v[a];
	if (v->s.rank < 1)
		return -1;
	int d = rnd(g, 0, v->s.rank - 1), len = (int)v->s.d[d], n = rnd(g, 2, 7);
	shape s = v->s;
	char expr[128];
	if (len % n == 0 && len > 1 && chance(g, 40)) {
		snprintf(expr, sizeof expr, "({ v%d:chunk(%d, %d) })[%d]", a, n, dim_name(g, d, s.rank), rnd(g, 1, n));
		s.d[d] = len / n;
	} else {
		int step = rnd(g, 1, 3), start = rnd(g, 0, len - 1), stop = rnd(g, start + 1, len);
		int named_stop = stop < len && chance(g, 30) ? stop - len : stop;
		snprintf(expr, sizeof expr, "v%d:slice(%d, %d, %d, %d)", a, dim_name(g, d, s.rank), start, named_stop,
		         step);
		s.d[d] = (stop - start + step - 1) / step;
	}
	return add_value(g, &s, v->bound, v->deps, expr);
}

/* A part for a cat of a along dim d: a itself, an earlier node that fits,
 * a:sin(), or a new input. */
typedef struct {
	int node;
	int sin;                /* the part is node:sin() */
} cat_part;

static cat_part pick_cat_part(gen *g, int a, int d)
{
	const value *v = &g->v[a];
	int choice = rnd(g, 0, 3);
	if (choice == 1)
		for (int k = 0, start = rnd(g, 0, g->nv - 1); k < g->nv; k++) {
			const value *w = &g->v[(start + k) % g->nv];
			int fits = w->s.rank == v->s.rank;
			for (int i = 0; fits && i < v->s.rank; i++)
				fits = i == d || w->s.d[i] == v->s.d[i];
			if (fits)
				return (cat_part){ (start + k) % g->nv, 0 };
		}
	if (choice == 3 && room_for_leaf(g)) {
		shape s = v->s;
		s.d[d] = rnd(g, 1, 7);
		return (cat_part){ add_leaf(g, &s, 0), 0 };
	}
	return (cat_part){ a, choice == 2 };
}

static int op_cat(gen *g, int a)
{
	if (g->v[a].s.rank < 1)
		return -1;
	shape s = g->v[a].s;
	int d = rnd(g, 0, s.rank - 1), parts = chance(g, 12) ? 12 : rnd(g, 2, 6);
	int64_t rest = numel(&s) / s.d[d], total = 0;
	double bound = 0;
	uint64_t deps = 0;
	rt_strbuf e = { 0 };
	rt_sb_puts(&e, "ddpm.cat({ ");
	for (int i = 0; i < parts; i++) {
		cat_part p = pick_cat_part(g, a, d);
		const value *v = &g->v[p.node];
		if (i >= 2 && (total + v->s.d[d]) * rest > MAX_NUMEL)
			break;
		rt_sb_printf(&e, "%sv%d%s", i ? ", " : "", p.node, p.sin ? ":sin()" : "");
		total += v->s.d[d];
		bound = fmax(bound, p.sin ? 1 : v->bound);
		deps |= v->deps;
	}
	rt_sb_printf(&e, " }, %d)", dim_name(g, d, s.rank));
	s.d[d] = total;
	return add_value_from(g, &s, bound, deps, &e);
}

/* A sum or max over several nodes flattened and joined end to end: a
 * joint reduction (kir.h), one kernel that reads each in place. */
static int op_joint(gen *g, int a)
{
	int parts = rnd(g, 2, 5);
	double bound = 0;
	uint64_t deps = 0;
	int64_t n = 0;
	int max = chance(g, 30);
	rt_strbuf e = { 0 };
	rt_sb_puts(&e, "ddpm.cat({ ");
	for (int i = 0; i < parts; i++) {
		int b = i ? pick(g) : a, square = chance(g, 50);
		rt_sb_printf(&e, square ? "%s(v%d * v%d):reshape { -1 }" : "%sv%d:reshape { -1 }", i ? ", " : "", b, b);
		bound = max ? fmax(bound, g->v[b].bound * (square ? g->v[b].bound : 1))
		            : bound + numel(&g->v[b].s) * g->v[b].bound * (square ? g->v[b].bound : 1);
		deps |= g->v[b].deps;
		n += numel(&g->v[b].s);
	}
	rt_sb_printf(&e, " }, 0):%s()", max ? "max" : "sum");
	shape s = { 0 };
	return add_value_from(g, &s, bound, deps, &e);
}

static int op_pad(gen *g, int a)
{
	const value *v = &g->v[a];
	if (v->s.rank < 1)
		return -1;
	shape s = v->s;
	int k = rnd(g, 1, s.rank < 3 ? s.rank : 3);
	static const char *fills[] = { "", ", 0.5", ", -1", ", 2" };
	static const double fill_bound[] = { 0, 0.5, 1, 2 };
	int f = rnd(g, 0, 3);
	rt_strbuf e = { 0 };
	rt_sb_printf(&e, "v%d:pad({", a);
	for (int i = 0; i < 2 * k; i++) {
		int p = rnd(g, 0, 2);
		s.d[s.rank - 1 - i / 2] += p;
		rt_sb_printf(&e, "%s %d", i ? "," : "", p);
	}
	rt_sb_printf(&e, " }%s)", fills[f]);
	if (numel(&s) <= MAX_NUMEL)
		return add_value_from(g, &s, fmax(v->bound, fill_bound[f]), v->deps, &e);
	free(e.p);
	return -1;
}

/* x:sum, mean, max or var over some dims (all: nil), keepdim or not. */
static int op_reduce(gen *g, int a)
{
	const value *v = &g->v[a];
	int rank = v->s.rank;
	if (rank < 1)
		return -1;
	static const char *names[] = { "sum", "mean", "max", "var" };
	int kind = rnd(g, 0, 3), keep = chance(g, 40), all = chance(g, 15);
	unsigned axes = all ? (1u << rank) - 1 : 0;
	while (!axes)
		axes = (unsigned)rnd(g, 0, (1 << rank) - 1);
	/* A max over exact ties (a convolution's outputs over a constant pad
	 * are one value for every image) takes its gradient wherever rounding
	 * puts the largest: Winograd F(4x4)'s differs per image, with the
	 * other values of the tile (seed 112466). An input's 0.05 of noise,
	 * far above rounding, breaks such ties the same way everywhere. */
	int noise = kind == 2 && room_for_leaf(g) ? add_leaf(g, &g->v[a].s, 0) : -1;
	rt_strbuf e = { 0 };
	if (noise >= 0)
		rt_sb_printf(&e, "(v%d + v%d * 0.05):%s(", a, noise, names[kind]);
	else
		rt_sb_printf(&e, "v%d:%s(", a, names[kind]);
	if (all)
		rt_sb_puts(&e, "nil");
	else if (__builtin_popcount(axes) == 1)
		rt_sb_printf(&e, "%d", dim_name(g, __builtin_ctz(axes), rank));
	else {
		rt_sb_puts(&e, "{");
		for (int i = 0, first = 1; i < rank; i++)
			if (axes >> i & 1)
				rt_sb_printf(&e, "%s %d", first ? "" : ",", dim_name(g, i, rank)), first = 0;
		rt_sb_puts(&e, " }");
	}
	rt_sb_puts(&e, keep ? ", true)" : ")");
	shape s = { 0 };
	int64_t n = 1;
	for (int i = 0; i < rank; i++) {
		if (axes >> i & 1)
			n *= v->s.d[i];
		if (!(axes >> i & 1) || keep)
			s.d[s.rank++] = axes >> i & 1 ? 1 : v->s.d[i];
	}
	double b = v->bound + (noise >= 0 ? 0.1 : 0), bounds[] = { b * (double)n, b, b, b * b };
	uint64_t deps = v->deps | (noise >= 0 ? g->v[noise].deps : 0);
	return add_value_from(g, &s, bounds[kind], deps, &e);
}

static int op_softmax(gen *g, int a)
{
	const value *v = &g->v[a];
	if (v->s.rank < 1)
		return -1;
	int d = rnd(g, 0, v->s.rank - 1), log_ = chance(g, 40);
	/* The gradient reaching the max that softmax subtracts is a sum over
	 * the dim that cancels to 0; its rounding, about N |g| eps sqrt(N)
	 * for N elements (log_softmax), reached 1.7e-4 at N = 178 (f32
	 * sums in the kernel, double in the interpreter): short dims only. */
	if (v->s.d[d] > 24)
		return -1;
	/* A softmax summed over its dim is 1 (its mean 1/n) but for
	 * rounding, the same everywhere: a max of that (through a concat,
	 * say) ties everywhere, and the interpreter's doubles and f32 pass
	 * its gradient to different elements (a weight's gradient was 0.6 of
	 * the interpreter's). So a softmax takes 1/16 of its input too. */
	const char *form = log_ ? "ddpm.F.log_softmax(v%1$d, %2$d)" : "ddpm.F.softmax(v%1$d, %2$d) + v%1$d * 0.0625";
	char expr[160];
	snprintf(expr, sizeof expr, form, a, dim_name(g, d, v->s.rank));
	shape s = v->s;
	return add_value(g, &s, log_ ? 2 * v->bound + log((double)v->s.d[d]) : 1 + v->bound / 16, v->deps, expr);
}

/* a:matmul(b) with b = a transposed, an earlier node or a new param; or
 * F.linear(a, w, bias) with new params. */
static int op_matmul(gen *g, int a)
{
	const value *v = &g->v[a];
	int r = v->s.rank;
	if (r < 1 || !room_for_leaf(g) || g->nleaves + 2 > MAX_LEAVES)
		return -1;
	shape s = v->s;
	int64_t k = s.d[r - 1];
	char expr[160];
	if (r == 1 || chance(g, 30)) {          /* linear */
		int out = rnd(g, 1, 7), bias = chance(g, 50);
		s.d[r - 1] = out;
		if (numel(&s) > MAX_NUMEL)
			return -1;
		int w = add_leaf(g, &(shape){ 2, { out, k } }, 1);
		int b = bias ? add_leaf(g, &(shape){ 1, { out } }, 1) : -1;
		if (bias)
			snprintf(expr, sizeof expr, "ddpm.F.linear(v%d, v%d, v%d)", a, w, b);
		else
			snprintf(expr, sizeof expr, "ddpm.F.linear(v%d, v%d)", a, w);
		double bound = (double)k * v->bound * g->v[w].bound + (bias ? g->v[b].bound : 0);
		return add_value(g, &s, bound, v->deps | g->v[w].deps | (bias ? g->v[b].deps : 0), expr);
	}
	int b;
	if (chance(g, 30)) {
		s.d[r - 1] = s.d[r - 2];
		if (numel(&s) > MAX_NUMEL)
			return -1;
		snprintf(expr, sizeof expr, "v%d:matmul(v%d:transpose(-1, -2))", a, a);
		b = a;
	} else {
		shape ws = v->s;
		ws.d[r - 2] = k;
		ws.d[r - 1] = rnd(g, 1, 7);
		s.d[r - 1] = ws.d[r - 1];
		if (numel(&s) > MAX_NUMEL || numel(&ws) > MAX_NUMEL)
			return -1;
		b = -1;
		for (int i = 0, start = rnd(g, 0, g->nv - 1); i < g->nv && b < 0 && chance(g, 60); i++) {
			const value *u = &g->v[(start + i) % g->nv];
			if (u->s.rank == r && !memcmp(u->s.d, ws.d, (size_t)(r - 1) * sizeof *ws.d))
				b = (start + i) % g->nv, s.d[r - 1] = u->s.d[r - 1];
		}
		if (b < 0)
			b = add_leaf(g, &ws, chance(g, 60));
		snprintf(expr, sizeof expr, "v%d:matmul(v%d)", a, b);
	}
	return add_value(g, &s, (double)k * v->bound * g->v[b].bound, v->deps | g->v[b].deps, expr);
}

/* A convolution's shape: output channels o, taps kh x kw, strides sh,
 * sw, padding p (top, bottom, left, right) and how the script spells it
 * (form 0: a number, 1: { ph, pw }, 2: all four). */
typedef struct {
	int o, kh, kw, sh, sw, form;
	int p[4];
} conv_spec;

/* Output channels 1 to 6, or (wide) 16 to 48 in steps of 8, which the
 * lowering computes channels-last, with the input gradient of a
 * convolution reading them (schedule_channels_last: from 16 in steps of
 * 8 on x86-64-v3, from 32 in steps of 16 on AVX-512 and OpenCL); taps 1
 * to 3, stride 1 to 2, padding 0 to 2; now and then 3x3, stride 1,
 * padding 1, which Winograd's algorithm takes (kir_winograd_candidate). */
static conv_spec random_conv(gen *g, int wide)
{
	conv_spec c;
	c.o = wide ? 8 * rnd(g, 2, 6) : rnd(g, 1, 6);
	c.kh = rnd(g, 1, 3), c.kw = rnd(g, 1, 3), c.sh = rnd(g, 1, 2), c.sw = rnd(g, 1, 2), c.form = rnd(g, 0, 2);
	for (int i = 0; i < 4; i++)
		c.p[i] = rnd(g, 0, 2);
	if (chance(g, 30))
		c = (conv_spec){ c.o, 3, 3, 1, 1, c.form, { 1, 1, 1, 1 } };
	if (c.form == 0)
		c.p[1] = c.p[2] = c.p[3] = c.p[0];
	else if (c.form == 1)
		c.p[1] = c.p[0], c.p[3] = c.p[2];
	return c;
}

/* Its options as the script spells them: "{ stride = ..., padding = ... }". */
static void put_conv_options(gen *g, const conv_spec *c, char *opts, size_t len)
{
	char pad[64];
	const int *p = c->p;
	if (c->form == 0)
		snprintf(pad, sizeof pad, "padding = %d", p[0]);
	else if (c->form == 1)
		snprintf(pad, sizeof pad, "padding = { %d, %d }", p[0], p[2]);
	else
		snprintf(pad, sizeof pad, "padding = { %d, %d, %d, %d }", p[0], p[1], p[2], p[3]);
	if (c->sh == c->sw && chance(g, 50))
		snprintf(opts, len, "{ stride = %d, %s }", c->sh, pad);
	else
		snprintf(opts, len, "{ stride = { %d, %d }, %s }", c->sh, c->sw, pad);
}

/* ddpm.conv2d(x, w, opts) or F.conv2d(x, w, bias, opts) of (N, C, H, W)
 * node a by convolution c with a new weight (O, C, KH, KW); -1 where it
 * does not fit a's size, or makes more than MAX_PRODUCTS products (the
 * interpreter's and kir_eval's time). */
static int conv_node(gen *g, int a, const conv_spec *c)
{
	const value *v = &g->v[a];
	if (v->s.rank != 4 || g->nleaves + 2 > MAX_LEAVES || g->nv + 3 > MAX_VALUES)
		return -1;
	int64_t n = v->s.d[0], ch = v->s.d[1], h = v->s.d[2], w = v->s.d[3];
	const int *p = c->p;
	if (h + p[0] + p[1] < c->kh || w + p[2] + p[3] < c->kw)
		return -1;
	shape s = { 4, { n, c->o, (h + p[0] + p[1] - c->kh) / c->sh + 1, (w + p[2] + p[3] - c->kw) / c->sw + 1 } };
	shape ws = { 4, { c->o, ch, c->kh, c->kw } };
	if (numel(&s) > MAX_NUMEL || numel(&ws) > MAX_NUMEL || numel(&s) * ch * c->kh * c->kw > MAX_PRODUCTS)
		return -1;
	int wt = add_leaf(g, &ws, 1), bias = chance(g, 40);
	int b = bias ? add_leaf(g, &(shape){ 1, { c->o } }, 1) : -1;
	char opts[128], expr[256];
	put_conv_options(g, c, opts, sizeof opts);
	if (bias)
		snprintf(expr, sizeof expr, "ddpm.F.conv2d(v%d, v%d, v%d, %s)", a, wt, b, opts);
	else
		snprintf(expr, sizeof expr, "ddpm.conv2d(v%d, v%d, %s)", a, wt, opts);
	double bound = (double)(ch * c->kh * c->kw) * v->bound * g->v[wt].bound + (bias ? g->v[b].bound : 0);
	g->convs++;
	return add_value(g, &s, bound, v->deps | g->v[wt].deps | (bias ? g->v[b].deps : 0), expr);
}

/* A convolution of a (random_conv), a third of them wide where that
 * fits; half the wide ones convolved again (narrow), so that the second
 * one's input gradient has wide channels. */
static int op_conv(gen *g, int a)
{
	conv_spec c = random_conv(g, chance(g, 35));
	int y = conv_node(g, a, &c);
	if (y < 0 && c.o > 6) {
		c.o = rnd(g, 1, 6);
		y = conv_node(g, a, &c);
	}
	if (y >= 0 && c.o > 6 && chance(g, 50)) {
		conv_spec next = random_conv(g, 0);
		int z = conv_node(g, y, &next);
		return z >= 0 ? z : y;
	}
	return y;
}

/* F.group_norm(x, groups, w, b, eps) of an (N, C, ...) node, groups a
 * divisor of C, w and b new params or nil. */
static int op_group_norm(gen *g, int a)
{
	const value *v = &g->v[a];
	if (v->s.rank < 2 || g->nleaves + 2 > MAX_LEAVES || g->nv + 3 > MAX_VALUES)
		return -1;
	int c = (int)v->s.d[1], groups;
	do
		groups = rnd(g, 1, c);
	while (c % groups);
	int has_w = chance(g, 60), has_b = chance(g, 60);
	int w = has_w ? add_leaf(g, &(shape){ 1, { c } }, 1) : -1, b = has_b ? add_leaf(g, &(shape){ 1, { c } }, 1) : -1;
	char wn[16] = "nil", bn[16] = "nil", expr[160];
	if (has_w)
		snprintf(wn, sizeof wn, "v%d", w);
	if (has_b)
		snprintf(bn, sizeof bn, "v%d", b);
	/* eps 0.1: a group of equal values (a pad's, an expand's) is x - mean
	 * = rounding, which 1/sqrt(var + eps) scales: by 316 at eps 1e-5 it
	 * made 5e-4 of f32 sums' rounding in the kernel. And the gradient of
	 * what shifts a whole group (a scalar bias before it) is 0 but for
	 * the rounding of a sum over the group it scales too: 1.6e-4 of 1.24
	 * at eps 1e-2 (a seed's gradient summed 9 times by an upsample). */
	snprintf(expr, sizeof expr, "ddpm.F.group_norm(v%d, %d, %s, %s, 0.1)", a, groups, wn, bn);
	/* |x - mean| / sqrt(var + eps) <= sqrt(m) over a group of m elements */
	double m = (double)(numel(&v->s) / v->s.d[0] / groups);
	double bound = sqrt(m) * (has_w ? g->v[w].bound : 1) + (has_b ? g->v[b].bound : 0);
	uint64_t deps = v->deps | (has_w ? g->v[w].deps : 0) | (has_b ? g->v[b].deps : 0);
	shape s = v->s;
	return add_value(g, &s, bound, deps, expr);
}

static int op_upsample(gen *g, int a)
{
	const value *v = &g->v[a];
	int scale = rnd(g, 2, 3);
	shape s = v->s;
	if (s.rank != 4)
		return -1;
	s.d[2] *= scale, s.d[3] *= scale;
	if (numel(&s) > MAX_NUMEL)
		return -1;
	char expr[64];
	snprintf(expr, sizeof expr, "v%d:upsample_nearest(%d)", a, scale);
	return add_value(g, &s, v->bound, v->deps, expr);
}

/* x:expand{...}: size-1 dims grown, now and then a new leading dim; -1
 * keeps a dim. */
static int op_expand(gen *g, int a)
{
	const value *v = &g->v[a];
	shape s = v->s;
	int lead = s.rank < 4 && chance(g, 30);
	if (lead) {
		memmove(s.d + 1, s.d, (size_t)s.rank * sizeof *s.d);
		s.d[0] = rnd(g, 1, 4);
		s.rank++;
	}
	rt_strbuf e = { 0 };
	rt_sb_printf(&e, "v%d:expand {", a);
	for (int i = 0; i < s.rank; i++) {
		int mine = i >= lead, keep = mine && chance(g, 30);
		if (mine && s.d[i] == 1 && !keep)
			s.d[i] = rnd(g, 1, 5);
		rt_sb_printf(&e, "%s %lld", i ? "," : "", keep ? -1LL : (long long)s.d[i]);
	}
	rt_sb_puts(&e, " }");
	if (numel(&s) <= MAX_NUMEL)
		return add_value_from(g, &s, v->bound, v->deps, &e);
	free(e.p);
	return -1;
}

/* Random draws (Philox) of a's shape, keyed by constants: a dropout mask
 * (a kept where a uniform draw is below 0.8, scaled by 1.25) or normal
 * noise added; now and then from a shard far along the stream. */
static int op_random(gen *g, int a)
{
	static const char *forms[] = {
		"v%1$d * ddpm.lt(ddpm.rand(v%1$d:shape(), "
		"ddpm.fill(%2$d, {}, 'i32'), ddpm.fill(%3$d, {}, 'i32'), %4$d%5$s), 0.8) * 1.25",
		"v%1$d + ddpm.randn(v%1$d:shape(), "
		"ddpm.fill(%2$d, {}, 'i32'), ddpm.fill(%3$d, {}, 'i32'), %4$d%5$s) * 0.25",
	};
	const value *v = &g->v[a];
	char expr[512], shard[64] = "";
	int f = rnd(g, 0, 1);
	if (chance(g, 30))
		snprintf(shard, sizeof shard, ", ddpm.fill(%d, {}, 'i32')", chance(g, 50) ? rnd(g, 1, 9) : 2147483000);
	snprintf(expr, sizeof expr, forms[f], a, rnd(g, 0, 1000), rnd(g, 0, 50), rnd(g, 0, 7), shard);
	shape sh = v->s;
	return add_value(g, &sh, f ? v->bound + 2 : v->bound * 1.25, v->deps, expr);
}

/* a plus an input of its shape stored in bf16 or f16 (read as f32): its
 * loads convert. */
static int op_stored_input(gen *g, int a)
{
	const value *v = &g->v[a];
	char expr[160];
	snprintf(expr, sizeof expr, "v%1$d + ddpm.input('h%2$d', v%1$d:shape(), '%3$s'):cast('f32')", a, g->nv,
	         chance(g, 50) ? "bf16" : "f16");
	shape sh = v->s;
	return add_value(g, &sh, v->bound + 2, v->deps, expr);
}

typedef int (*op_fn)(gen *g, int a);

static const struct { op_fn fn; int weight; } ops[] = {
	{ op_unary, 14 }, { op_binary, 16 }, { op_scalar, 8 }, { op_reshape, 7 }, { op_permute, 6 },
	{ op_slice, 6 }, { op_cat, 7 }, { op_joint, 2 }, { op_pad, 4 }, { op_reduce, 9 },
	{ op_softmax, 3 }, { op_matmul, 5 }, { op_conv, 5 }, { op_group_norm, 3 }, { op_upsample, 2 },
	{ op_expand, 3 },
};

static op_fn random_op(gen *g)
{
	int total = 0;
	for (int i = 0; i < TU_LEN(ops); i++)
		total += ops[i].weight;
	int r = rnd(g, 0, total - 1);
	for (int i = 0;; i++)
		if ((r -= ops[i].weight) < 0)
			return ops[i].fn;
}

/* --- the entry ---------------------------------------------------------------------------------- */

/* An output besides the latest node: mostly one that nothing reads
 * (else its ops would be dead), now and then any. */
static int other_output(gen *g)
{
	int start = rnd(g, 0, g->nv - 1);
	for (int k = 0; k < g->nv && chance(g, 90); k++) {
		const value *v = &g->v[(start + k) % g->nv];
		if (!v->used && v->leaf < 0)
			return (start + k) % g->nv;
	}
	return rnd(g, 0, g->nv - 1);
}

/* `oI = vJ` for 1 to 3 nodes, the latest first, now and then stored in
 * bf16 or f16. */
static void put_outputs(gen *g, rt_strbuf *b)
{
	static const char *stored[] = { "", ":cast('bf16')", ":cast('f16')" };
	int n = rnd(g, 1, 3);
	for (int i = 0; i < n; i++) {
		int v = i ? other_output(g) : g->nv - 1;
		rt_sb_printf(b, "%so%d = v%d%s", i ? ", " : "", i, v, stored[late_chance(g, 8) ? 1 + late_chance(g, 50) : 0]);
	}
}

/* Leaves to differentiate y by: a few of those y depends on, now and then
 * one it does not (its gradient is zeros); 0 when none. */
static int grad_leaves(gen *g, int y, int *wrt)
{
	int n = 0;
	for (int i = 0; i < g->nleaves; i++)
		if (((g->v[y].deps >> i & 1) && chance(g, 60)) || chance(g, 3))
			wrt[n++] = i;
	return n;
}

/* `local loss = ...`, a scalar loss of node y. A sum of many elements
 * is held to 1e-4 where it cancels to about 0 (a group_norm's output: 0
 * but for rounding), while the rounding of its f32 terms adds up: 2e-4
 * over 1152 of them. Past 256 elements, the mean. */
static void put_loss(gen *g, int y)
{
	static const char *losses[] = { "(v%1$d * v%1$d):mean()", "v%d:sum()", "v%d:sigmoid():sum()" };
	char loss[64];
	snprintf(loss, sizeof loss, losses[rnd(g, 0, 2)], y);
	char *sum = numel(&g->v[y].s) > 256 ? strstr(loss, "sum()") : NULL;
	if (sum)
		memcpy(sum, "mean()", 7);
	rt_sb_printf(&g->lua, "local loss = %s\n", loss);
}

/* An Adam step (ddpm.optim) on a scalar loss of node y over the params
 * it depends on, its options at random: the optimizer's joint reductions
 * and its batch kernel of a segment per state tensor. eps = 1 keeps the
 * step a smooth function of the gradient (at 1e-8 a first step is lr
 * times the gradient's sign, which rounding flips where a gradient is 0
 * but for rounding), and a loss scale of 2 keeps such a gradient's
 * rounding within the tolerance (65536 made it 1.4 in a sum of scaled
 * gradients). Returns 0, writing nothing, where y depends on no param. */
static int put_optimizer(gen *g, int y, rt_strbuf *outs)
{
	static const char *options[] = { ", clip = 0.5", ", weight_decay = 0.1", ", ema = 0.9",
		                         ", loss_scaling = true, init_scale = 2", ", grad_accum = 2", ", warmup = 3" };
	rt_strbuf params = { 0 };
	for (int i = 0; i < g->nleaves; i++)
		if (g->leaves[i].param && (g->v[y].deps >> i & 1))
			rt_sb_printf(&params, "%s{ name = 'p%d', tensor = v%d }", params.len ? ", " : "", i,
			             g->leaves[i].value);
	if (!params.len)
		return 0;
	put_loss(g, y);
	rt_sb_printf(&g->lua, "local opt = require('ddpm.optim').Adam({ %s }, { lr = 0.01, eps = 1", params.p);
	for (int i = 0; i < TU_LEN(options); i++)
		if (chance(g, 35))
			rt_sb_puts(&g->lua, options[i]);
	rt_sb_puts(&g->lua, " })\nlocal updates, info = opt:minimize(loss)\n");
	rt_sb_puts(outs, ", loss = loss, grad_norm = info.grad_norm, lr = info.lr");
	free(params.p);
	return 1;
}

/* ddpm.grad of a scalar loss of node y, or of y under a seed input, as
 * outputs gI; params among the leaves take a gradient step as updates. */
static void put_gradients(gen *g, int y, rt_strbuf *outs, rt_strbuf *updates)
{
	int wrt[MAX_LEAVES], n = grad_leaves(g, y, wrt);
	if (!n)
		return;
	int seeded = chance(g, 50);
	if (seeded) {
		rt_sb_printf(&g->lua, "local seed = ddpm.input('seed', v%d:shape())\nlocal grads = ddpm.grad(v%d, {", y, y);
	} else {
		put_loss(g, y);
		rt_sb_puts(&g->lua, "local grads = ddpm.grad(loss, {");
		rt_sb_puts(outs, ", loss = loss");
	}
	for (int i = 0; i < n; i++)
		rt_sb_printf(&g->lua, "%s v%d", i ? "," : "", g->leaves[wrt[i]].value);
	rt_sb_puts(&g->lua, seeded ? " }, seed)\n" : " })\n");
	for (int i = 0; i < n; i++) {
		const leaf *l = &g->leaves[wrt[i]];
		rt_sb_printf(outs, ", g%d = grads[%d]", i, i + 1);
		if (l->param && chance(g, 50))
			rt_sb_printf(updates, "%s p%d = v%d - grads[%d] * 0.1", updates->len ? "," : "", wrt[i], l->value, i + 1);
	}
}

/* Updates without gradients: a param takes the latest node of its shape
 * made after it, else a scaled copy of itself. */
static void put_updates(gen *g, rt_strbuf *updates)
{
	for (int i = 0; i < g->nleaves; i++) {
		const leaf *l = &g->leaves[i];
		if (!l->param || !chance(g, 30))
			continue;
		int from = -1;
		for (int k = l->value + 1; k < g->nv; k++)
			if (g->v[k].s.rank == g->v[l->value].s.rank &&
			    !memcmp(g->v[k].s.d, g->v[l->value].s.d, (size_t)g->v[k].s.rank * sizeof *g->v[k].s.d))
				from = k;
		if (from >= 0)
			rt_sb_printf(updates, "%s p%d = v%d", updates->len ? "," : "", i, from);
		else
			rt_sb_printf(updates, "%s p%d = v%d * 0.9 + 0.1", updates->len ? "," : "", i, l->value);
	}
}

/* Entry "main": its outputs, then gradients (a fifth of those scripts an
 * Adam step instead) or updates without them. */
static void put_entry(gen *g)
{
	rt_strbuf outs = { 0 }, updates = { 0 };
	int adam = 0;
	put_outputs(g, &outs);
	if (chance(g, g->convs ? 70 : 40)) {
		int y = g->nv - 1 - (chance(g, 30) ? rnd(g, 0, g->nv - 1) : 0);
		adam = late_chance(g, 20) && put_optimizer(g, y, &outs);
		if (!adam)
			put_gradients(g, y, &outs, &updates);
	} else {
		put_updates(g, &updates);
	}
	rt_sb_printf(&g->lua, "ddpm.entry('main', { %s }", outs.p);
	if (adam)
		rt_sb_puts(&g->lua, ", updates)\n");
	else
		rt_sb_printf(&g->lua, updates.len ? ", { %s })\n" : ")\n", updates.p);
	free(outs.p);
	free(updates.p);
}

/* The script of `seed` into *out (the caller frees out->p). */
static void gen_script(uint64_t seed, rt_strbuf *out)
{
	gen *g = calloc(1, sizeof *g);
	assert_non_null(g);
	g->rng = seed;
	g->rng_late = seed ^ 0x5DEECE66Dull;
	rt_sb_printf(&g->lua, "-- random graph, seed %llu\nlocal ddpm = require 'ddpm'\n", (unsigned long long)seed);
	int inputs = rnd(g, 1, 3), params = rnd(g, 0, 2), image = chance(g, 25);
	for (int i = 0; i < inputs + params; i++) {
		shape s = random_shape(g, i == 0 && image ? 4 : 0);
		add_leaf(g, &s, i >= inputs);
	}
	if (image)              /* a script about a convolution of its first input */
		op_conv(g, 0);
	for (int n = rnd(g, 3, 25), done = 0; done < n && g->nv + 16 < MAX_VALUES;)
		done += (late_chance(g, 1)   ? op_random
		         : late_chance(g, 1) ? op_stored_input
		                             : random_op(g))(g, pick(g)) >= 0;
	put_entry(g);
	*out = g->lua;
	free(g);
}


/* The graph of `script` (a seed's), with inputs drawn from `seed`
 * (uniform in [-2, 2)) into *in. */
static ir_graph *random_script_load(const char *script, uint64_t seed, rt_tensorset *in)
{
	ir_graph *g = load_script(script, NULL, 0);
	rng_state = seed;
	random_inputs(g, in, -2, 2, 1);
	return g;
}

/* --- each seed a cmocka test -------------------------------------------------------------------- */

/* A test's check of one script: its entry "main" against the interpreter
 * on inputs drawn from `seed`. */
typedef void (*random_check_fn)(const char *script, uint64_t seed);

static random_check_fn random_check;
static const char *random_stage = "";   /* what the check runs now, for a failure's report */

/* One seed's test: its script, kept until the teardown. */
typedef struct {
	uint64_t seed;
	rt_strbuf script;
	int passed;
} seed_case;

/* The text of file `path` into *out (the caller frees out->p). */
static void read_script(const char *path, rt_strbuf *out)
{
	FILE *f = fopen(path, "r");
	if (!f)
		fail_msg("cannot read %s", path);
	char chunk[4096];
	for (size_t n; (n = fread(chunk, 1, sizeof chunk, f)) > 0;)
		rt_sb_printf(out, "%.*s", (int)n, chunk);
	fclose(f);
}

/* The seed's script, or the file DDPMC_RANDOM_SCRIPT names (a failing
 * script being reduced by hand) under the seed's inputs. */
static void random_graph_matches_interpreter(void **state)
{
	seed_case *c = *state;
	const char *file = getenv("DDPMC_RANDOM_SCRIPT");
	if (file && *file)
		read_script(file, &c->script);
	else
		gen_script(c->seed, &c->script);
	random_check(c->script.p, c->seed);
	c->passed = 1;
}

/* After a failure: the script to a file, its path and the seed named. */
static int report_failure(void **state)
{
	seed_case *c = *state;
	if (!c->passed && c->script.p) {
		char name[64], path[128];
		snprintf(name, sizeof name, "ddpmc-random-graph-%llu.lua", (unsigned long long)c->seed);
		tu_write("/tmp", name, c->script.p, -1, path, sizeof path);
		print_error("seed %llu failed (%s); its script is %s (replay: DDPMC_RANDOM_SEED=%llu "
		            "DDPMC_RANDOM_GRAPHS=1)\n", (unsigned long long)c->seed, random_stage, path,
		            (unsigned long long)c->seed);
	}
	free(c->script.p);
	return 0;
}

static uint64_t env_or(const char *name, uint64_t fallback)
{
	const char *v = getenv(name);
	return v && *v ? strtoull(v, NULL, 10) : fallback;
}

/* The scripts of `scripts` seeds (or as the environment says), each
 * through `check`, as the cmocka group "random graphs". Returns how many
 * failed. */
static int run_random_graphs(uint64_t scripts, random_check_fn check)
{
	uint64_t first = env_or("DDPMC_RANDOM_SEED", 1), n = env_or("DDPMC_RANDOM_GRAPHS", scripts);
	struct CMUnitTest *tests = calloc(n + 1, sizeof *tests);
	seed_case *cases = calloc(n + 1, sizeof *cases);
	char (*names)[32] = calloc(n + 1, sizeof *names);
	if (!tests || !cases || !names)
		return 1;
	random_check = check;
	for (uint64_t i = 0; i < n; i++) {
		cases[i].seed = first + i;
		snprintf(names[i], sizeof names[i], "seed %llu", (unsigned long long)(first + i));
		tests[i] = (struct CMUnitTest){ names[i], random_graph_matches_interpreter, NULL, report_failure,
		                                &cases[i] };
	}
	int failed = _cmocka_run_group_tests("random graphs", tests, n, NULL, NULL);
	free(tests);
	free(cases);
	free(names);
	return failed;
}

#endif
