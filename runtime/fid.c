/* fid.c: FID and KID (fid.h). Dimension legend: n vectors, d features;
 * matrices are row-major (d, d) doubles. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data.h"
#include "fid.h"
#include "tensor.h"

enum { JACOBI_SWEEPS = 100 };

static double off_diagonal(const double *a, int64_t n, double *diag)
{
	double off = 0;
	*diag = 0;
	for (int64_t i = 0; i < n; i++)
		for (int64_t j = 0; j < n; j++)
			if (i != j)
				off += a[i * n + j] * a[i * n + j];
			else
				*diag += a[i * n + i] * a[i * n + i];
	return off;
}

/* The rotation in the (p, q) plane that zeroes a[p][q] (Golub & Van Loan
 * 8.5.2), applied to a from both sides and to v from the right. */
static void rotate(double *a, int64_t n, int64_t p, int64_t q, double *v)
{
	double apq = a[p * n + q];
	if (apq == 0)
		return;
	double tau = (a[q * n + q] - a[p * n + p]) / (2 * apq);
	double t = (tau >= 0 ? 1 : -1) / (fabs(tau) + sqrt(1 + tau * tau));
	double c = 1 / sqrt(1 + t * t), s = t * c;
	for (int64_t k = 0; k < n; k++) {       /* columns p, q: a = a J */
		double akp = a[k * n + p], akq = a[k * n + q];
		a[k * n + p] = c * akp - s * akq;
		a[k * n + q] = s * akp + c * akq;
	}
	for (int64_t k = 0; k < n; k++) {       /* rows p, q: a = J^T a */
		double apk = a[p * n + k], aqk = a[q * n + k];
		a[p * n + k] = c * apk - s * aqk;
		a[q * n + k] = s * apk + c * aqk;
	}
	for (int64_t k = 0; v && k < n; k++) {
		double vkp = v[k * n + p], vkq = v[k * n + q];
		v[k * n + p] = c * vkp - s * vkq;
		v[k * n + q] = s * vkp + c * vkq;
	}
}

void rt_sym_eigen(double *a, int64_t n, double *w, double *v)
{
	for (int64_t i = 0; v && i < n; i++)
		for (int64_t j = 0; j < n; j++)
			v[i * n + j] = i == j;
	for (int sweep = 0; sweep < JACOBI_SWEEPS; sweep++) {
		double diag, off = off_diagonal(a, n, &diag);
		if (off <= 1e-30 * diag || off == 0)
			break;
		for (int64_t p = 0; p < n; p++)
			for (int64_t q = p + 1; q < n; q++)
				rotate(a, n, p, q, v);
	}
	for (int64_t i = 0; i < n; i++)
		w[i] = a[i * n + i];
}

/* mu (d) and the unbiased covariance s (d, d) of x (n, d). */
static void moments(const float *x, int64_t n, int64_t d, double *mu, double *s)
{
	memset(mu, 0, (size_t)d * sizeof *mu);
	memset(s, 0, (size_t)(d * d) * sizeof *s);
	for (int64_t i = 0; i < n; i++)
		for (int64_t k = 0; k < d; k++)
			mu[k] += x[i * d + k];
	for (int64_t k = 0; k < d; k++)
		mu[k] /= (double)n;
	double *c = malloc((size_t)d * sizeof *c);
	for (int64_t i = 0; c && i < n; i++) {
		for (int64_t k = 0; k < d; k++)
			c[k] = x[i * d + k] - mu[k];
		for (int64_t k = 0; k < d; k++)
			for (int64_t l = k; l < d; l++)
				s[k * d + l] += c[k] * c[l];
	}
	free(c);
	for (int64_t k = 0; k < d; k++)
		for (int64_t l = k; l < d; l++)
			s[l * d + k] = s[k * d + l] /= (double)(n - 1);
}

/* out = a b for (d, d) matrices. */
static void matmul(const double *a, const double *b, int64_t d, double *out)
{
	for (int64_t i = 0; i < d; i++)
		for (int64_t j = 0; j < d; j++) {
			double acc = 0;
			for (int64_t k = 0; k < d; k++)
				acc += a[i * d + k] * b[k * d + j];
			out[i * d + j] = acc;
		}
}

/* Tr sqrt(s1 s2) = Tr sqrt(r s2 r), r = sqrt(s1); s1 is destroyed. */
static double trace_sqrt_product(double *s1, const double *s2, int64_t d, double *w, double *v,
                                 double *r, double *t)
{
	rt_sym_eigen(s1, d, w, v);
	for (int64_t i = 0; i < d; i++)         /* r = v diag(sqrt(w)) v^T */
		for (int64_t j = 0; j < d; j++) {
			double acc = 0;
			for (int64_t k = 0; k < d; k++)
				acc += v[i * d + k] * sqrt(w[k] > 0 ? w[k] : 0) * v[j * d + k];
			r[i * d + j] = acc;
		}
	matmul(r, s2, d, t);
	matmul(t, r, d, v);
	for (int64_t i = 0; i < d; i++)         /* symmetric up to rounding: make it so */
		for (int64_t j = i + 1; j < d; j++)
			v[i * d + j] = v[j * d + i] = (v[i * d + j] + v[j * d + i]) / 2;
	rt_sym_eigen(v, d, w, NULL);
	double tr = 0;
	for (int64_t i = 0; i < d; i++)
		tr += sqrt(w[i] > 0 ? w[i] : 0);
	return tr;
}

static int too_few(int64_t na, int64_t nb, char *err, size_t errlen)
{
	if (na >= 2 && nb >= 2)
		return 0;
	snprintf(err, errlen, "%lld and %lld feature vectors: at least 2 of each are needed",
	         (long long)na, (long long)nb);
	return 1;
}

int rt_fid(const float *a, int64_t na, const float *b, int64_t nb, int64_t d, double *fid,
           char *err, size_t errlen)
{
	if (too_few(na, nb, err, errlen))
		return RT_ERR;
	size_t dd = (size_t)(d * d);
	double *buf = malloc((2 * (size_t)d + 5 * dd) * sizeof *buf);
	if (!buf) {
		snprintf(err, errlen, "out of memory for %lld features", (long long)d);
		return RT_ERR;
	}
	double *mu1 = buf, *mu2 = mu1 + d, *s1 = mu2 + d, *s2 = s1 + dd, *v = s2 + dd, *r = v + dd,
	       *t = r + dd;
	double *eig = malloc((size_t)d * sizeof *eig);
	if (!eig) {
		free(buf);
		snprintf(err, errlen, "out of memory for %lld features", (long long)d);
		return RT_ERR;
	}
	moments(a, na, d, mu1, s1);
	moments(b, nb, d, mu2, s2);
	double dist = 0, tr = 0;
	for (int64_t k = 0; k < d; k++) {
		dist += (mu1[k] - mu2[k]) * (mu1[k] - mu2[k]);
		tr += s1[k * d + k] + s2[k * d + k];
	}
	*fid = dist + tr - 2 * trace_sqrt_product(s1, s2, d, eig, v, r, t);
	free(eig);
	free(buf);
	return RT_OK;
}

/* k(x, y) = (x.y / d + 1)^3 */
static double poly_kernel(const float *x, const float *y, int64_t d)
{
	double dot = 0;
	for (int64_t k = 0; k < d; k++)
		dot += (double)x[k] * y[k];
	double u = dot / (double)d + 1;
	return u * u * u;
}

/* The unbiased MMD^2 of rows ia[0..m) of a and ib[0..m) of b. */
static double mmd2(const float *a, const int64_t *ia, const float *b, const int64_t *ib,
                   int64_t m, int64_t d)
{
	double kxx = 0, kyy = 0, kxy = 0;
	for (int64_t i = 0; i < m; i++)
		for (int64_t j = 0; j < m; j++) {
			if (j > i) {
				kxx += 2 * poly_kernel(a + ia[i] * d, a + ia[j] * d, d);
				kyy += 2 * poly_kernel(b + ib[i] * d, b + ib[j] * d, d);
			}
			kxy += poly_kernel(a + ia[i] * d, b + ib[j] * d, d);
		}
	double mm = (double)m;
	return (kxx + kyy) / (mm * (mm - 1)) - 2 * kxy / (mm * mm);
}

int rt_kid(const float *a, int64_t na, const float *b, int64_t nb, int64_t d, int subsets,
           int64_t subset_size, uint64_t seed, double *mean, double *std, char *err,
           size_t errlen)
{
	if (too_few(na, nb, err, errlen))
		return RT_ERR;
	int64_t m = subset_size < na ? subset_size : na;
	m = m < nb ? m : nb;
	int64_t *pa = malloc((size_t)na * sizeof *pa), *pb = malloc((size_t)nb * sizeof *pb);
	if (!pa || !pb || subsets < 1) {
		free(pa);
		free(pb);
		snprintf(err, errlen, subsets < 1 ? "KID needs at least one subset" : "out of memory");
		return RT_ERR;
	}
	double sum = 0, sq = 0;
	for (int s = 0; s < subsets; s++) {
		rt_data_order(na, seed, 2 * s, pa);
		rt_data_order(nb, seed, 2 * s + 1, pb);
		double v = mmd2(a, pa, b, pb, m, d);
		sum += v;
		sq += v * v;
	}
	*mean = sum / subsets;
	double var = sq / subsets - *mean * *mean;
	*std = var > 0 ? sqrt(var) : 0;
	free(pa);
	free(pb);
	return RT_OK;
}
