/* test_fid: FID and KID (runtime/fid.h) against values known without
 * runtime/fid.c:
 *   - the Jacobi eigensolver on a matrix built from known eigenvalues and
 *     a rotation, and the reconstruction a = v diag(w) v^T;
 *   - identical sets: FID 0 (to rounding), KID ~0: exactly what the
 *     unbiased estimate of a whole set against itself leaves (its
 *     kernel's diagonal, computed here), 1% of a shifted set's;
 *   - a set and its shift by c: equal covariances, FID = ||c||^2;
 *   - a set and its scaling by k: S2 = k^2 S1, sqrt(S1 S2) = k S1, FID =
 *     (1 - k)^2 (||mu||^2 + Tr S1): the matrix square root matters;
 *   - two sets with non-commuting covariances against numpy
 *     (tests/golden/fid.safetensors, make_fid_golden.py: Tr sqrt from the
 *     eigenvalues of S1 S2, KID as torch-fidelity's loop);
 *   - KID over random subsets: m below n gives other subsets per seed, the
 *     same for the same seed; too few vectors are an error. */
#include <math.h>

#include "fid.h"
#include "testutil.h"

enum { N = 300, D = 6 };

static float set[N * D];

/* Features with unequal spreads and correlated dims, from a fixed LCG. */
static void make_set(void)
{
	uint32_t s = 12345;
	for (int i = 0; i < N; i++) {
		double z[D];
		for (int k = 0; k < D; k++) {
			s = s * 1664525u + 1013904223u;
			z[k] = ((double)(s >> 8) / (1 << 24) - 0.5) * (k + 1);
		}
		for (int k = 0; k < D; k++)
			set[i * D + k] = (float)(z[k] + 0.5 * z[(k + 1) % D] + 0.1 * k);
	}
}

static double fid_of(const float *a, const float *b, int64_t n)
{
	char err[256];
	double f = NAN;
	if (rt_fid(a, n, b, n, D, &f, err, sizeof err) != RT_OK)
		fail_msg("rt_fid: %s", err);
	return f;
}

static void expect_close(const char *what, double got, double want, double rel)
{
	if (!(fabs(got - want) <= rel * fmax(1, fabs(want))))
		fail_msg("%s: got %.12g, want %.12g (off by %.3g)", what, got, want, got - want);
}

static void test_jacobi(void **state)
{
	(void)state;
	enum { M = 5 };
	const double w0[M] = { 4.0, 2.5, 1.0, 0.25, -0.5 };
	double q[M * M], a[M * M], w[M], v[M * M];
	/* q: a product of plane rotations, orthogonal */
	for (int i = 0; i < M * M; i++)
		q[i] = i % (M + 1) == 0;
	for (int p = 0; p + 1 < M; p++) {
		double c = cos(0.3 + p), s = sin(0.3 + p);
		for (int k = 0; k < M; k++) {
			double x = q[k * M + p], y = q[k * M + p + 1];
			q[k * M + p] = c * x - s * y, q[k * M + p + 1] = s * x + c * y;
		}
	}
	for (int i = 0; i < M; i++)
		for (int j = 0; j < M; j++) {
			a[i * M + j] = 0;
			for (int k = 0; k < M; k++)
				a[i * M + j] += q[i * M + k] * w0[k] * q[j * M + k];
		}
	double a0[M * M];
	memcpy(a0, a, sizeof a);
	rt_sym_eigen(a, M, w, v);
	for (int k = 0; k < M; k++) {           /* each known eigenvalue is found */
		int found = 0;
		for (int j = 0; j < M; j++)
			found |= fabs(w[j] - w0[k]) < 1e-12;
		if (!found)
			fail_msg("eigenvalue %g not found", w0[k]);
	}
	for (int i = 0; i < M; i++)
		for (int j = 0; j < M; j++) {
			double r = 0;
			for (int k = 0; k < M; k++)
				r += v[i * M + k] * w[k] * v[j * M + k];
			expect_close("v diag(w) v^T", r, a0[i * M + j], 1e-12);
		}
}

static void test_identical_and_shifted(void **state)
{
	(void)state;
	char err[256];
	static float b[N * D];
	const double c[D] = { 0.5, -1.0, 0.25, 2.0, 0.0, -0.75 };
	double norm2 = 0, kid_same, kid_shift, sd;
	make_set();
	expect_close("FID of a set with itself", fid_of(set, set, N), 0, 1e-9);
	for (int i = 0; i < N; i++)
		for (int k = 0; k < D; k++)
			b[i * D + k] = set[i * D + k] + (float)c[k];
	for (int k = 0; k < D; k++)
		norm2 += c[k] * c[k];
	/* the shift is exact in float only up to rounding of b: measure it */
	double mean_shift2 = 0;
	for (int k = 0; k < D; k++) {
		double s = 0;
		for (int i = 0; i < N; i++)
			s += (double)b[i * D + k] - set[i * D + k];
		mean_shift2 += (s / N) * (s / N);
	}
	expect_close("shifted: mean shift", mean_shift2, norm2, 1e-6);
	expect_close("FID of a shifted set", fid_of(set, b, N), norm2, 1e-5);
	assert_int_equal(rt_kid(set, N, set, N, D, 3, 1000, 1, &kid_same, &sd, err, sizeof err), RT_OK);
	assert_int_equal(rt_kid(set, N, b, N, D, 3, 1000, 1, &kid_shift, &sd, err, sizeof err), RT_OK);
	/* a set against itself, whole: 2 S_off / (m(m-1)) - 2 (S_off + S_diag) / m^2, the
	 * kernel's diagonal left over, O(1/m) of it */
	double off = 0, diag = 0;
	for (int i = 0; i < N; i++)
		for (int j = 0; j < N; j++) {
			double dot = 0;
			for (int k = 0; k < D; k++)
				dot += (double)set[i * D + k] * set[j * D + k];
			double kv = pow(dot / D + 1, 3);
			*(i == j ? &diag : &off) += kv;
		}
	double m = N;
	expect_close("KID of a set with itself", kid_same,
	             2 * off / (m * (m - 1)) - 2 * (off + diag) / (m * m), 1e-9);
	if (!(fabs(kid_same) < 0.02 * kid_shift))
		fail_msg("KID of a set with itself %.6g is not ~0 next to a shifted set's %.6g", kid_same,
		         kid_shift);
}

static void test_scaled(void **state)
{
	(void)state;
	static float b[N * D];
	const double k = 1.7;
	make_set();
	double mu[D] = { 0 }, tr = 0, mu2 = 0;
	for (int i = 0; i < N * D; i++)
		b[i] = (float)(k * set[i]);
	for (int i = 0; i < N; i++)
		for (int j = 0; j < D; j++)
			mu[j] += set[i * D + j] / (double)N;
	for (int j = 0; j < D; j++) {
		double v = 0;
		for (int i = 0; i < N; i++)
			v += (set[i * D + j] - mu[j]) * (set[i * D + j] - mu[j]);
		tr += v / (N - 1);
		mu2 += mu[j] * mu[j];
	}
	expect_close("FID of a scaled set", fid_of(set, b, N), (1 - k) * (1 - k) * (mu2 + tr), 1e-5);
}

static void test_golden(void **state)
{
	(void)state;
	char err[256];
	rt_tensorset g = { 0 };
	tu_read_golden("fid.safetensors", &g);
	const rt_tensor *a = rt_set_find(&g, "a"), *b = rt_set_find(&g, "b");
	assert_non_null(a);
	assert_non_null(b);
	double fid, kid, sd;
	int64_t n = a->shape[0], d = a->shape[1];
	assert_int_equal(rt_fid(a->data, n, b->data, b->shape[0], d, &fid, err, sizeof err), RT_OK);
	assert_int_equal(rt_kid(a->data, n, b->data, b->shape[0], d, 4, 1000, 3, &kid, &sd, err,
	                        sizeof err), RT_OK);
	expect_close("FID against numpy", fid, rt_load(RT_F64, rt_set_find(&g, "fid")->data, 0), 1e-9);
	expect_close("KID against numpy", kid, rt_load(RT_F64, rt_set_find(&g, "kid")->data, 0), 1e-9);
	expect_close("KID std over identical whole-set subsets", sd, 0, 1e-9);
	rt_set_free(&g);
}

static void test_kid_subsets(void **state)
{
	(void)state;
	char err[256];
	static float b[N * D];
	double m1, s1, m2, s2, m3, s3;
	make_set();
	for (int i = 0; i < N * D; i++)
		b[i] = set[(i + 7 * D) % (N * D)] * 1.2f + 0.1f;
	assert_int_equal(rt_kid(set, N, b, N, D, 10, 50, 1, &m1, &s1, err, sizeof err), RT_OK);
	assert_int_equal(rt_kid(set, N, b, N, D, 10, 50, 1, &m2, &s2, err, sizeof err), RT_OK);
	assert_int_equal(rt_kid(set, N, b, N, D, 10, 50, 2, &m3, &s3, err, sizeof err), RT_OK);
	assert_true(m1 == m2 && s1 == s2);
	assert_true(m1 != m3);
	assert_true(s1 > 0);
	assert_int_equal(rt_kid(set, 1, b, N, D, 10, 50, 1, &m1, &s1, err, sizeof err), RT_ERR);
	assert_non_null(strstr(err, "at least 2"));
	assert_int_equal(rt_fid(set, N, b, 1, D, &m1, err, sizeof err), RT_ERR);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_jacobi),
		cmocka_unit_test(test_identical_and_shifted),
		cmocka_unit_test(test_scaled),
		cmocka_unit_test(test_golden),
		cmocka_unit_test(test_kid_subsets),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
