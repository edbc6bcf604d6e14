/* test_tensor: dtype table, tensor sets, and the f16 / bf16 conversions
 * (exhaustive round trips, every rounding midpoint, NaN, Inf, subnormals),
 * plus rt_load / rt_store rounding and saturation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "tensor.h"

static uint32_t bits(float f)
{
	uint32_t u;
	memcpy(&u, &f, 4);
	return u;
}

static void test_dtypes(void **state)
{
	(void)state;
	for (int d = 0; d < RT_NDTYPE; d++) {
		rt_dtype back = RT_NDTYPE;
		assert_int_equal(rt_dtype_parse(rt_dtype_name((rt_dtype)d), &back), RT_OK);
		assert_int_equal(back, d);
	}
	rt_dtype dt;
	assert_int_equal(rt_dtype_parse("F128", &dt), RT_ERR);
	assert_int_equal(rt_dtype_size(RT_BF16), 2);
	assert_int_equal(rt_dtype_size(RT_I64), 8);
	const int64_t s[3] = {2, 0, 5}, neg[2] = {3, -1};
	assert_int_equal(rt_numel(0, s), 1);
	assert_int_equal(rt_numel(3, s), 0);
	assert_int_equal(rt_numel(2, neg), -1);
}

static void test_set(void **state)
{
	rt_tensorset s = {0};
	const int64_t shape[2] = {2, 3};
	(void)state;
	for (int k = 0; k < 40; k++) {  /* past the first growth */
		char name[16];
		snprintf(name, sizeof name, "t%d", k);
		rt_tensor *t = rt_set_add(&s, name, RT_F32, 2, shape);
		assert_non_null(t);
		assert_true(((float *)t->data)[5] == 0.0f);
	}
	assert_null(rt_set_add(&s, "t7", RT_F32, 2, shape));
	assert_int_equal(s.n, 40);
	assert_string_equal(rt_set_find(&s, "t39")->name, "t39");
	assert_null(rt_set_find(&s, "nope"));
	assert_int_equal(rt_set_meta(&s, "k", "1"), RT_OK);
	assert_int_equal(rt_set_meta(&s, "k", "2"), RT_OK);
	assert_int_equal(s.nmeta, 1);
	assert_string_equal(rt_get_meta(&s, "k"), "2");
	assert_null(rt_get_meta(&s, "x"));
	rt_set_free(&s);
	assert_int_equal(s.n, 0);
	assert_null(s.t);
}

/* Every f16 (every bf16) converts to f32 and back to itself; NaNs stay
 * NaN. */
static void test_round_trip_all(void **state)
{
	(void)state;
	for (uint32_t h = 0; h < 0x10000; h++) {
		float f = rt_f16_to_f32((uint16_t)h), g = rt_bf16_to_f32((uint16_t)h);
		int nan16 = (h & 0x7c00) == 0x7c00 && (h & 0x3ff);
		int nanbf = (h & 0x7f80) == 0x7f80 && (h & 0x7f);
		if (nan16 ? !isnan(f) || !isnan(rt_f16_to_f32(rt_f32_to_f16(f)))
		          : rt_f32_to_f16(f) != h)
			fail_msg("f16 %04x -> %.9g -> %04x", h, f, rt_f32_to_f16(f));
		if (nanbf ? !isnan(g) || !isnan(rt_bf16_to_f32(rt_f32_to_bf16(g)))
		          : rt_f32_to_bf16(g) != h)
			fail_msg("bf16 %04x -> %.9g -> %04x", h, g, rt_f32_to_bf16(g));
	}
}

/* For each pair of adjacent positive finite values lo < hi: the midpoint
 * rounds to the one with an even code, and anything just off the midpoint
 * to the nearer one. Covers subnormals, the subnormal/normal boundary and
 * the overflow to infinity (hi = inf plays the next value after max). */
static void check_midpoints(const char *fmt, uint16_t top,
                            float (*to32)(uint16_t), uint16_t (*from32)(float))
{
	for (uint32_t h = 0; h < top; h++) {
		float lo = to32((uint16_t)h), hi = to32((uint16_t)(h + 1));
		float mid = isinf(hi) ? lo + (lo - to32((uint16_t)(h - 1))) / 2
		                      : lo + (hi - lo) / 2;
		uint16_t even = (h & 1) ? (uint16_t)(h + 1) : (uint16_t)h;
		uint16_t got = from32(mid);
		uint16_t below = from32(nextafterf(mid, 0)), above = from32(nextafterf(mid, INFINITY));
		if (got != even || below != h || above != h + 1)
			fail_msg("%s between %04x and %04x: mid %.9g -> %04x (want %04x), "
			         "below -> %04x, above -> %04x", fmt, h, h + 1, mid, got,
			         even, below, above);
		if (from32(-mid) != (even | 0x8000))
			fail_msg("%s: -%.9g -> %04x, want %04x", fmt, mid, from32(-mid),
			         even | 0x8000);
	}
}

static void test_rounding_midpoints(void **state)
{
	(void)state;
	check_midpoints("f16", 0x7c00, rt_f16_to_f32, rt_f32_to_f16);
	check_midpoints("bf16", 0x7f80, rt_bf16_to_f32, rt_f32_to_bf16);
}

static void test_specials(void **state)
{
	(void)state;
	assert_int_equal(rt_f32_to_f16(INFINITY), 0x7c00);
	assert_int_equal(rt_f32_to_f16(-INFINITY), 0xfc00);
	assert_int_equal(rt_f32_to_f16(1e10f), 0x7c00);
	assert_int_equal(rt_f32_to_f16(65504.0f), 0x7bff);
	assert_int_equal(rt_f32_to_f16(-0.0f), 0x8000);
	assert_int_equal(rt_f32_to_f16(0x1p-24f), 0x0001);   /* smallest subnormal */
	assert_int_equal(rt_f32_to_f16(0x1p-25f), 0x0000);   /* tie to even: 0 */
	assert_int_equal(rt_f32_to_f16(0x1.8p-25f), 0x0001);
	assert_int_equal(rt_f32_to_f16(0x1p-14f), 0x0400);   /* smallest normal */
	assert_int_equal(rt_f32_to_f16(1e-30f), 0x0000);
	assert_int_equal(rt_f32_to_bf16(INFINITY), 0x7f80);
	assert_int_equal(rt_f32_to_bf16(3.4028235e38f), 0x7f80);  /* rounds up */
	assert_int_equal(rt_f32_to_bf16(1.0f), 0x3f80);
	assert_true(rt_f16_to_f32(0x0001) == 0x1p-24f);
	assert_true(rt_f16_to_f32(0x8000) == 0.0f && signbit(rt_f16_to_f32(0x8000)));
	/* A NaN whose payload lives only in the low bits stays a NaN. */
	uint32_t lownan = 0x7f800001u;
	float nan1;
	memcpy(&nan1, &lownan, 4);
	assert_true(isnan(rt_f16_to_f32(rt_f32_to_f16(nan1))));
	assert_true(isnan(rt_bf16_to_f32(rt_f32_to_bf16(nan1))));
	assert_int_equal(rt_f32_to_bf16(-nan1) & 0x8000, 0x8000);
	assert_int_equal(bits(rt_bf16_to_f32(0x3f81)), 0x3f810000u);
}

static void test_load_store(void **state)
{
	unsigned char buf[64];
	(void)state;
	rt_store(RT_I32, buf, 0, 2.5);
	assert_true(rt_load(RT_I32, buf, 0) == 3.0);
	rt_store(RT_I32, buf, 1, -1e12);
	assert_true(rt_load(RT_I32, buf, 1) == (double)INT32_MIN);
	rt_store(RT_U8, buf, 0, 300);
	assert_true(rt_load(RT_U8, buf, 0) == 255);
	rt_store(RT_U8, buf, 1, -4);
	assert_true(rt_load(RT_U8, buf, 1) == 0);
	rt_store(RT_I64, buf, 0, 1e30);
	int64_t i64;
	memcpy(&i64, buf, 8);
	assert_true(i64 == INT64_MAX);
	rt_store(RT_I64, buf, 1, NAN);
	assert_true(rt_load(RT_I64, buf, 1) == 0);
	rt_store(RT_F64, buf, 2, 0.1);
	assert_true(rt_load(RT_F64, buf, 2) == 0.1);
	/* 1 + 2^-11 + 2^-40 is just above the f16 midpoint between 1 and
	 * 1 + 2^-10; going through a round-to-nearest f32 first would land on
	 * the midpoint and round down to 1. */
	rt_store(RT_F16, buf, 0, 1.0 + 0x1p-11 + 0x1p-40);
	assert_true(rt_load(RT_F16, buf, 0) == 1.0 + 0x1p-10);
	rt_store(RT_BF16, buf, 0, 1.0 + 0x1p-8 + 0x1p-40);
	assert_true(rt_load(RT_BF16, buf, 0) == 1.0 + 0x1p-7);
	rt_store(RT_F32, buf, 3, 1.25);
	assert_true(rt_load(RT_F32, buf, 3) == 1.25);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dtypes),
		cmocka_unit_test(test_set),
		cmocka_unit_test(test_round_trip_all),
		cmocka_unit_test(test_rounding_midpoints),
		cmocka_unit_test(test_specials),
		cmocka_unit_test(test_load_store),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
