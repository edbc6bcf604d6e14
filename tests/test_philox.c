/* test_philox: Philox4x32-10 known answers (docs/semantics.md §6), the uniform and
 * normal transforms, and the element-layout contract of philox.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "philox.h"

/* Random123's known-answer vectors for philox4x32_R(10, ...). */
static void test_known_answers(void **state)
{
	static const struct {
		uint32_t ctr[4], key[2], want[4];
	} kat[] = {
		{{0, 0, 0, 0}, {0, 0},
		 {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
		{{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, {0xffffffff, 0xffffffff},
		 {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
		{{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, {0xa4093822, 0x299f31d0},
		 {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
	};
	(void)state;
	for (size_t v = 0; v < sizeof kat / sizeof kat[0]; v++) {
		uint32_t got[4];
		rt_philox4x32(kat[v].ctr, kat[v].key, got);
		for (int w = 0; w < 4; w++)
			if (got[w] != kat[v].want[w])
				fail_msg("vector %zu word %d: got %08x, want %08x",
				         v, w, got[w], kat[v].want[w]);
	}
}

static void test_uniform_range(void **state)
{
	(void)state;
	assert_true(rt_u32_to_uniform(0) == 0x1p-24f);
	assert_true(rt_u32_to_uniform(0xff) == 0x1p-24f);
	assert_true(rt_u32_to_uniform(0xffffffffu) == 1.0f);
	assert_true(rt_u32_to_uniform(0x7fffffffu) == 0.5f);
	enum { N = 1 << 16 };
	float *u = malloc(N * sizeof *u);
	assert_non_null(u);
	rt_philox_uniform(7, 3, 0, N, u);
	double sum = 0;
	for (int i = 0; i < N; i++) {
		if (!(u[i] > 0.0f && u[i] <= 1.0f))
			fail_msg("uniform %d = %.9g outside (0, 1]", i, u[i]);
		sum += u[i];
	}
	if (fabs(sum / N - 0.5) > 0.005)
		fail_msg("uniform mean %.5f, want 0.5 +- 0.005", sum / N);
	free(u);
}

/* Box-Muller at the edges: u1 = 1 gives r = 0; u1 = 2^-24 the largest r. */
static void test_box_muller_edges(void **state)
{
	float z0, z1;
	(void)state;
	rt_box_muller(0xffffffffu, 0x12345678u, &z0, &z1);
	assert_true(z0 == 0.0f && z1 == 0.0f);
	rt_box_muller(0, 0xffffffffu, &z0, &z1);  /* u2 = 1: angle 2 pi */
	float rmax = (float)sqrt(-2.0 * log(0x1p-24));
	if (fabsf(z0 - rmax) > 1e-6f || fabsf(z1) > 1e-5f)
		fail_msg("box_muller(0, ~0) = (%.9g, %.9g), want (%.9g, 0)", z0, z1, rmax);
}

/* The lane rule of the contract, checked against rt_philox4x32 directly. */
static void test_layout(void **state)
{
	const uint64_t seed = 0x0123456789abcdefull, stream = 0xfedcba9876543210ull;
	const uint64_t q = 0x100000002ull;  /* call index with both halves set */
	float n[4], u[4], z[4];
	uint32_t w[4];
	const uint32_t ctr[4] = {2, 1, 0x76543210u, 0xfedcba98u};
	const uint32_t key[2] = {0x89abcdefu, 0x01234567u};
	(void)state;
	rt_philox4x32(ctr, key, w);
	rt_philox_normal(seed, stream, q * 4, 4, n);
	rt_philox_uniform(seed, stream, q * 4, 4, u);
	rt_box_muller(w[0], w[1], &z[0], &z[1]);
	rt_box_muller(w[2], w[3], &z[2], &z[3]);
	for (int l = 0; l < 4; l++) {
		if (u[l] != rt_u32_to_uniform(w[l]))
			fail_msg("uniform lane %d: %.9g, want %.9g", l, u[l],
			         rt_u32_to_uniform(w[l]));
		if (n[l] != z[l])
			fail_msg("normal lane %d: %.9g, want %.9g", l, n[l], z[l]);
	}
}

static void test_normal_moments(void **state)
{
	enum { N = 1000000 };
	float *z = malloc(N * sizeof *z);
	double sum = 0, sq = 0;
	(void)state;
	assert_non_null(z);
	rt_philox_normal(2024, 1, 0, N, z);
	for (int i = 0; i < N; i++) {
		if (!isfinite(z[i]))
			fail_msg("normal %d is not finite", i);
		sum += z[i];
		sq += (double)z[i] * z[i];
	}
	double mean = sum / N, var = sq / N - mean * mean;
	if (fabs(mean) >= 0.005)
		fail_msg("mean of %d normals = %.5f, want |mean| < 0.005", N, mean);
	if (fabs(var - 1) >= 0.01)
		fail_msg("variance of %d normals = %.5f, want 1 +- 0.01", N, var);
	free(z);
}

/* Returns the first index where a and b differ, or -1. */
static int first_diff(const float *a, const float *b, int n)
{
	for (int i = 0; i < n; i++)
		if (memcmp(&a[i], &b[i], sizeof *a) != 0)
			return i;
	return -1;
}

static void test_deterministic(void **state)
{
	float a[37], b[37];
	(void)state;
	rt_philox_normal(99, 5, 0, 37, a);
	rt_philox_normal(99, 5, 0, 37, b);
	int d = first_diff(a, b, 37);
	if (d >= 0)
		fail_msg("same (seed, stream) differ at %d: %.9g vs %.9g", d, a[d], b[d]);
}

/* Slices at every alignment within a block equal the whole stream. */
static void test_offset_slices(void **state)
{
	enum { N = 64 };
	float whole[N], part[N], uw[N], up[N];
	(void)state;
	rt_philox_normal(11, 22, 1000, N, whole);
	rt_philox_uniform(11, 22, 1000, N, uw);
	for (int off = 0; off < 9; off++) {
		for (int len = 0; off + len <= N; len += 7) {
			rt_philox_normal(11, 22, 1000 + (uint64_t)off, len, part);
			int d = first_diff(part, whole + off, len);
			if (d >= 0)
				fail_msg("normal slice [%d, +%d) differs at %d: %.9g vs %.9g",
				         off, len, d, part[d], whole[off + d]);
			rt_philox_uniform(11, 22, 1000 + (uint64_t)off, len, up);
			d = first_diff(up, uw + off, len);
			if (d >= 0)
				fail_msg("uniform slice [%d, +%d) differs at %d", off, len, d);
		}
	}
}

/* Different streams or seeds give unrelated numbers: no element equal. */
static void test_streams_differ(void **state)
{
	enum { N = 256 };
	float a[N], b[N], c[N];
	(void)state;
	rt_philox_normal(1, 0, 0, N, a);
	rt_philox_normal(1, 1, 0, N, b);
	rt_philox_normal(2, 0, 0, N, c);
	int same_b = 0, same_c = 0;
	for (int i = 0; i < N; i++) {
		same_b += a[i] == b[i];
		same_c += a[i] == c[i];
	}
	if (same_b || same_c)
		fail_msg("%d of %d equal across streams, %d across seeds", same_b, N, same_c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_known_answers),
		cmocka_unit_test(test_uniform_range),
		cmocka_unit_test(test_box_muller_edges),
		cmocka_unit_test(test_layout),
		cmocka_unit_test(test_normal_moments),
		cmocka_unit_test(test_deterministic),
		cmocka_unit_test(test_offset_slices),
		cmocka_unit_test(test_streams_differ),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
