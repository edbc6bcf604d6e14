/* range.c: the values a kernel's index expressions can take, by interval
 * arithmetic over its domain (kir_index_within in kir.h).
 *
 * Each expression gets a span [lo, hi] that holds every value it takes
 * at any point of the kernel's domain, operands' spans first: a var
 * spans [0, extent), a constant itself, an op the hull of what its
 * operands' spans can give. What a span cannot bound (a value loaded
 * or converted from f32, an accumulated index) is unbounded; an int32
 * value spans int32. Spans are doubles held within +-2^62, so that no
 * product of two of them overflows or loses a bound's side. The spans
 * over-approximate: a backend may take "within" as proof, never
 * "not within" as a fact. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kir.h"

typedef struct {
	double lo, hi;
} span;

static const double SPAN_MAX = 0x1p62;

static span spanning(double lo, double hi)
{
	return (span){ fmax(lo, -SPAN_MAX), fmin(hi, SPAN_MAX) };
}

static const span unbounded = { -0x1p62, 0x1p62 };
static const span int32_span = { -0x1p31, 0x1p31 - 1 };

static span hull(span a, span b)
{
	return (span){ fmin(a.lo, b.lo), fmax(a.hi, b.hi) };
}

static span corners(double a, double b, double c, double d)
{
	return spanning(fmin(fmin(a, b), fmin(c, d)), fmax(fmax(a, b), fmax(c, d)));
}

static double magnitude(span a)
{
	return fmax(fabs(a.lo), fabs(a.hi));
}

/* a / b truncating; a zero divisor divides by one (the backends'). Over
 * a divisor that keeps its sign, the quotient is monotone in each
 * operand; else it is at most |a|. */
static span span_div(span a, span b)
{
	if (b.lo >= 1 || b.hi <= -1)
		return corners(trunc(a.lo / b.lo), trunc(a.lo / b.hi), trunc(a.hi / b.lo), trunc(a.hi / b.hi));
	return (span){ -magnitude(a), magnitude(a) };
}

/* a % b as C's: the sign of a, less than |b| and at most |a| in size. */
static span span_mod(span a, span b)
{
	double m = fmin(magnitude(a), fmax(magnitude(b) - 1, 0));
	return a.lo >= 0 ? (span){ 0, fmin(a.hi, m) } : (span){ -m, m };
}

static span span_op(const kir_expr *e, const span *s)
{
	span a = e->a >= 0 ? s[e->a] : unbounded, b = e->b >= 0 ? s[e->b] : unbounded;
	switch (e->op) {
	case OP_add: return spanning(a.lo + b.lo, a.hi + b.hi);
	case OP_sub: return spanning(a.lo - b.hi, a.hi - b.lo);
	case OP_mul: return corners(a.lo * b.lo, a.lo * b.hi, a.hi * b.lo, a.hi * b.hi);
	case OP_div: return span_div(a, b);
	case OP_min: return (span){ fmin(a.lo, b.lo), fmin(a.hi, b.hi) };
	case OP_max: return (span){ fmax(a.lo, b.lo), fmax(a.hi, b.hi) };
	case OP_neg: return (span){ -a.hi, -a.lo };
	case OP_abs: return a.lo >= 0 ? a : (span){ a.hi <= 0 ? -a.hi : 0, magnitude(a) };
	case OP_lt: case OP_le: case OP_eq: return (span){ 0, 1 };
	case OP_select: return hull(b, s[e->c]);
	case OP_cast: return s[e->a];   /* integer to integer; from f32: span_of's */
	IR_CASES_TRANSC: return unbounded;
	IR_CASES_NOT_ELEMWISE: break;
	}
	IR_NO_CASE(e->op);
}

/* Expression i's span, its operands' in s. */
static span span_of(const kir_kernel *k, int i, const span *s)
{
	const kir_expr *e = &k->x[i];
	span r = unbounded;
	if (e->type == KT_F32)
		return unbounded;
	if (e->kind == KX_CONST)
		r = (span){ e->value, e->value };
	else if (e->kind == KX_VAR)
		r = e->var < k->rank + k->nred ? (span){ 0, fmax((double)k->ext[e->var] - 1, 0) } : unbounded;
	else if (e->kind == KX_MOD)
		r = span_mod(s[e->a], s[e->b]);
	else if (e->kind == KX_OP && !(e->op == OP_cast && k->x[e->a].type == KT_F32))
		r = span_op(e, s);
	/* an int32 value holds int32's range whatever its operands did */
	if (e->type == KT_I32 && (r.lo < int32_span.lo || r.hi > int32_span.hi))
		return int32_span;
	return r;
}

/* Whether k, a kernel without segments (or a segment's view of one),
 * keeps every index expression it evaluates within [lo, hi], but those
 * `wide` marks (of the whole kernel, which a backend computes as such). */
static int plain_within(const kir_kernel *k, int64_t lo, int64_t hi, const char *wide, span *s, char *used)
{
	int within = 1;
	memset(used, 0, (size_t)k->nx);
	kir_mark_used(k, used);
	for (int i = 0; i < k->nx; i++) {
		s[i] = span_of(k, i, s);
		if (used[i] && !wide[i] && k->x[i].type == KT_IDX && (s[i].lo < (double)lo || s[i].hi > (double)hi))
			within = 0;
	}
	return within;
}

int kir_index_within(const kir_kernel *k, int64_t lo, int64_t hi)
{
	size_t n = (size_t)k->nx + 1;
	span *s = malloc(n * sizeof *s);
	char *used = malloc(n), *wide = malloc(n);
	int within = s && used && wide;
	if (within)
		kir_mark_elements(k, wide);
	if (within && !k->nseg) {
		within = plain_within(k, lo, hi, wide, s, used);
	} else if (within && kir_is_joint(k)) {        /* its own stores, once after the reduction */
		kir_kernel own = *k;
		own.nacc = own.nseg = own.nred = 0;
		within = plain_within(&own, lo, hi, wide, s, used);
	}
	for (int g = 0; g < k->nseg && within; g++) {
		kir_kernel v = kir_segment_view(k, g);
		within = plain_within(&v, lo, hi, wide, s, used);
	}
	free(s);
	free(used);
	free(wide);
	return within;
}
