/* tensor: dtype facts, tensor sets (ordered, unique names, metadata pairs)
 * and the scalar conversions between the storage types.
 *
 * Conversions to 16-bit floats round to nearest even, keep the sign of
 * zero, map overflow to infinity, keep infinities, and keep NaNs quiet NaNs
 * (the top payload bits survive, the quiet bit is forced so a payload that
 * lived only in the low bits cannot turn into an infinity). */
#include "tensor.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* One row per dtype, in enum order: safetensors spelling and byte size. */
static const struct {
	const char *name;
	size_t size;
} rt_dtypes[RT_NDTYPE] = {
	[RT_F32] = {"F32", 4},  [RT_F16] = {"F16", 2}, [RT_BF16] = {"BF16", 2},
	[RT_I32] = {"I32", 4},  [RT_F64] = {"F64", 8}, [RT_I64] = {"I64", 8},
	[RT_U8] = {"U8", 1},
};

size_t rt_dtype_size(rt_dtype dt)
{
	return (unsigned)dt < RT_NDTYPE ? rt_dtypes[dt].size : 0;
}

const char *rt_dtype_name(rt_dtype dt)
{
	return (unsigned)dt < RT_NDTYPE ? rt_dtypes[dt].name : "?";
}

int rt_dtype_parse(const char *s, rt_dtype *out)
{
	for (int i = 0; i < RT_NDTYPE; i++) {
		if (strcmp(s, rt_dtypes[i].name) == 0) {
			*out = (rt_dtype)i;
			return RT_OK;
		}
	}
	return RT_ERR;
}

/* Product of the dims; 1 for rank 0; -1 when a dim is negative or the
 * product overflows int64. */
int64_t rt_numel(int rank, const int64_t *shape)
{
	int64_t n = 1;
	for (int i = 0; i < rank; i++) {
		if (shape[i] < 0)
			return -1;
		if (shape[i] != 0 && n > INT64_MAX / shape[i])
			return -1;
		n *= shape[i];
	}
	return n;
}

/* ---- tensor sets ---- */

static char *rt_strdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *p = malloc(n);
	if (p)
		memcpy(p, s, n);
	return p;
}

/* Grows *p (elements of size sz, capacity *cap) to hold at least need. */
static int rt_grow(void **p, int *cap, int need, size_t sz)
{
	if (need <= *cap)
		return RT_OK;
	int ncap = *cap ? *cap * 2 : 16;
	while (ncap < need)
		ncap *= 2;
	void *np = realloc(*p, (size_t)ncap * sz);
	if (!np)
		return RT_ERR;
	*p = np;
	*cap = ncap;
	return RT_OK;
}

/* Bytes for numel elements of dt, or 0 with *ok = 0 on overflow. */
static size_t rt_nbytes(rt_dtype dt, int64_t numel, int *ok)
{
	size_t sz = rt_dtype_size(dt);
	*ok = numel >= 0 && sz != 0 && (uint64_t)numel <= SIZE_MAX / sz;
	return *ok ? (size_t)numel * sz : 0;
}

/* FNV-1a: the name's hash for the index. */
static uint32_t rt_name_hash(const char *name)
{
	uint32_t h = 2166136261u;
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		h = (h ^ *p) * 16777619u;
	return h;
}

/* The index slot that holds name, or the empty slot where it would go. */
static int *rt_index_slot(const rt_tensorset *s, const char *name)
{
	unsigned mask = (unsigned)s->indexcap - 1, k = rt_name_hash(name) & mask;
	while (s->index[k] && strcmp(s->t[s->index[k] - 1].name, name) != 0)
		k = (k + 1) & mask;
	return &s->index[k];
}

/* Makes room in the index for `need` names, rehashing every tensor when
 * it grows. */
static int rt_index_reserve(rt_tensorset *s, int need)
{
	if (s->index && 2 * need <= s->indexcap)
		return RT_OK;
	int cap = 64;
	while (cap < 2 * need)
		cap *= 2;
	int *index = calloc((size_t)cap, sizeof *index);
	if (!index)
		return RT_ERR;
	free(s->index);
	s->index = index;
	s->indexcap = cap;
	for (int i = 0; i < s->n; i++)
		*rt_index_slot(s, s->t[i].name) = i + 1;
	return RT_OK;
}

rt_tensor *rt_set_add(rt_tensorset *s, const char *name, rt_dtype dt,
                      int rank, const int64_t *shape)
{
	int ok;
	if (rank < 0 || rank > RT_MAXDIM || rt_set_find(s, name))
		return NULL;
	size_t nb = rt_nbytes(dt, rt_numel(rank, shape), &ok);
	if (!ok || rt_grow((void **)&s->t, &s->cap, s->n + 1, sizeof *s->t) ||
	    rt_index_reserve(s, s->n + 1))
		return NULL;
	rt_tensor *t = &s->t[s->n];
	memset(t, 0, sizeof *t);
	t->name = rt_strdup(name);
	t->data = calloc(nb ? nb : 1, 1);  /* never NULL, even when empty */
	if (!t->name || !t->data) {
		free(t->name);
		free(t->data);
		return NULL;
	}
	t->dtype = dt;
	t->rank = rank;
	if (rank)
		memcpy(t->shape, shape, (size_t)rank * sizeof *shape);
	*rt_index_slot(s, name) = ++s->n;
	return t;
}

rt_tensor *rt_set_find(const rt_tensorset *s, const char *name)
{
	if (s->index) {
		int at = *rt_index_slot(s, name);
		return at ? &s->t[at - 1] : NULL;
	}
	for (int i = 0; i < s->n; i++)
		if (strcmp(s->t[i].name, name) == 0)
			return &s->t[i];
	return NULL;
}

/* Sets key to value, replacing an earlier value of the same key. */
int rt_set_meta(rt_tensorset *s, const char *key, const char *value)
{
	char *v = rt_strdup(value);
	if (!v)
		return RT_ERR;
	for (int i = 0; i < s->nmeta; i++) {
		if (strcmp(s->meta[i].key, key) == 0) {
			free(s->meta[i].value);
			s->meta[i].value = v;
			return RT_OK;
		}
	}
	char *k = rt_strdup(key);
	if (!k || rt_grow((void **)&s->meta, &s->metacap, s->nmeta + 1,
	                  sizeof *s->meta)) {
		free(k);
		free(v);
		return RT_ERR;
	}
	s->meta[s->nmeta].key = k;
	s->meta[s->nmeta].value = v;
	s->nmeta++;
	return RT_OK;
}

const char *rt_get_meta(const rt_tensorset *s, const char *key)
{
	for (int i = 0; i < s->nmeta; i++)
		if (strcmp(s->meta[i].key, key) == 0)
			return s->meta[i].value;
	return NULL;
}

/* Frees everything the set owns and leaves it empty and reusable. */
void rt_set_free(rt_tensorset *s)
{
	for (int i = 0; i < s->n; i++) {
		free(s->t[i].name);
		free(s->t[i].data);
	}
	for (int i = 0; i < s->nmeta; i++) {
		free(s->meta[i].key);
		free(s->meta[i].value);
	}
	free(s->t);
	free(s->meta);
	free(s->index);
	memset(s, 0, sizeof *s);
}

static int rt_is_float(rt_dtype dt)
{
	return dt == RT_F32 || dt == RT_F16 || dt == RT_BF16 || dt == RT_F64;
}

const rt_tensor *rt_set_nonfinite(const rt_tensorset *s, int64_t *at)
{
	for (int i = 0; i < s->n; i++) {
		const rt_tensor *t = &s->t[i];
		int64_t n = rt_is_float(t->dtype) ? rt_numel(t->rank, t->shape) : 0;
		for (int64_t k = 0; k < n; k++)
			if (!isfinite(rt_load(t->dtype, t->data, k))) {
				*at = k;
				return t;
			}
	}
	return NULL;
}

/* ---- scalar conversions ---- */

static uint32_t rt_f32_bits(float f)
{
	uint32_t u;
	memcpy(&u, &f, 4);
	return u;
}

static float rt_bits_f32(uint32_t u)
{
	float f;
	memcpy(&f, &u, 4);
	return f;
}

/* bf16 is the top half of an f32: add 0x7fff plus the lowest kept bit, so
 * that exact ties carry only into an odd kept half (round to even). */
uint16_t rt_f32_to_bf16(float f)
{
	uint32_t u = rt_f32_bits(f);
	if ((u & 0x7fffffffu) > 0x7f800000u)
		return (uint16_t)((u >> 16) | 0x40);
	u += 0x7fffu + ((u >> 16) & 1);
	return (uint16_t)(u >> 16);
}

float rt_bf16_to_f32(uint16_t h)
{
	return rt_bits_f32((uint32_t)h << 16);
}

/* f32 below 2^-14 to an f16 subnormal m * 2^-24 (m may round up to 0x400,
 * the smallest normal, which is the right encoding). e is the f32 biased
 * exponent (<= 112 here), so the f32 significand is shifted right by
 * 126 - e >= 14. */
static uint16_t rt_f16_subnormal(uint32_t a)
{
	int shift = 126 - (int)(a >> 23);
	if (shift > 24)
		return 0;  /* below half the smallest subnormal */
	uint32_t mant = (a & 0x7fffffu) | 0x800000u;
	uint32_t m = mant >> shift;
	uint32_t rem = mant & ((1u << shift) - 1);
	uint32_t half = 1u << (shift - 1);
	if (rem > half || (rem == half && (m & 1)))
		m++;
	return (uint16_t)m;
}

uint16_t rt_f32_to_f16(float f)
{
	uint32_t u = rt_f32_bits(f);
	uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
	uint32_t a = u & 0x7fffffffu;
	if (a > 0x7f800000u)  /* NaN: quiet, top 9 payload bits kept */
		return sign | 0x7e00 | (uint16_t)((a >> 13) & 0x1ff);
	if (a >= 0x477ff000u)  /* >= 65520 (incl. inf) rounds to inf */
		return sign | 0x7c00;
	if (a < 0x38800000u)  /* below 2^-14 */
		return sign | rt_f16_subnormal(a);
	/* Rebias the exponent (127 -> 15) and round the 13 dropped bits to
	 * even; a carry out of the mantissa correctly bumps the exponent. */
	a += 0xfffu + ((a >> 13) & 1) - (112u << 23);
	return sign | (uint16_t)(a >> 13);
}

float rt_f16_to_f32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000) << 16;
	uint32_t e = (h >> 10) & 0x1f, m = h & 0x3ffu;
	if (e == 0) {  /* zero or subnormal: m * 2^-24, exact in f32 */
		float v = (float)m * 0x1p-24f;
		return sign ? -v : v;
	}
	if (e == 31)
		return rt_bits_f32(sign | 0x7f800000u | (m << 13));
	return rt_bits_f32(sign | ((e + 112) << 23) | (m << 13));
}

/* double -> float rounding to odd: of the two floats around v, the one
 * with an odd significand. Rounding that result again to a format with at
 * most 22 significand bits gives the same answer as rounding v directly,
 * so rt_store avoids double-rounding errors for F16 and BF16. */
static float rt_f64_to_f32_odd(double v)
{
	float f = (float)v;
	if ((double)f == v || !isfinite(f) || (rt_f32_bits(f) & 1))
		return f;
	return nextafterf(f, (double)f < v ? INFINITY : -INFINITY);
}

/* Round half away from zero, saturating to [lo, hi]; NaN becomes 0. */
static double rt_round_sat(double v, double lo, double hi)
{
	if (isnan(v))
		return 0;
	v = round(v);
	return v < lo ? lo : v > hi ? hi : v;
}

double rt_load(rt_dtype dt, const void *data, int64_t i)
{
	const char *p = (const char *)data + (size_t)i * rt_dtype_size(dt);
	union { float f; double d; int32_t i32; int64_t i64; uint16_t h; uint8_t u8; } x;
	memcpy(&x, p, rt_dtype_size(dt));
	switch (dt) {
	case RT_F32: return x.f;
	case RT_F16: return rt_f16_to_f32(x.h);
	case RT_BF16: return rt_bf16_to_f32(x.h);
	case RT_I32: return x.i32;
	case RT_F64: return x.d;
	case RT_I64: return (double)x.i64;
	case RT_U8: return x.u8;
	default: return NAN;
	}
}

/* I64 saturates at +-2^63: the largest double below 2^63 converts exactly,
 * 2^63 itself does not fit and maps to INT64_MAX. */
static int64_t rt_to_i64(double v)
{
	v = rt_round_sat(v, -0x1p63, 0x1p63);
	return v >= 0x1p63 ? INT64_MAX : (int64_t)v;
}

void rt_store(rt_dtype dt, void *data, int64_t i, double v)
{
	char *p = (char *)data + (size_t)i * rt_dtype_size(dt);
	union { float f; double d; int32_t i32; int64_t i64; uint16_t h; uint8_t u8; } x;
	switch (dt) {
	case RT_F32: x.f = (float)v; break;
	case RT_F16: x.h = rt_f32_to_f16(rt_f64_to_f32_odd(v)); break;
	case RT_BF16: x.h = rt_f32_to_bf16(rt_f64_to_f32_odd(v)); break;
	case RT_I32: x.i32 = (int32_t)rt_round_sat(v, INT32_MIN, INT32_MAX); break;
	case RT_F64: x.d = v; break;
	case RT_I64: x.i64 = rt_to_i64(v); break;
	case RT_U8: x.u8 = (uint8_t)rt_round_sat(v, 0, 255); break;
	default: return;
	}
	memcpy(p, &x, rt_dtype_size(dt));
}
