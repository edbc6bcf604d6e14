/* fid: the sample-quality statistics between two sets of feature vectors
 * (a classifier's penultimate features of generated and of real images),
 * in double precision on the host.
 *
 * FID (Heusel et al. 2017, as pytorch-fid): with mu, S each set's mean and
 * covariance (unbiased, divided by n - 1, as numpy.cov),
 *     FID = ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 sqrt(S1 S2)),
 * where Tr sqrt(S1 S2) = Tr sqrt(sqrt(S1) S2 sqrt(S1)) (similar matrices;
 * the second is symmetric positive semi-definite) is the sum of the square
 * roots of that matrix's eigenvalues, found by cyclic Jacobi rotations
 * (sqrt(S1) likewise, from S1's eigendecomposition; eigenvalues below 0,
 * rounding, count as 0).
 *
 * KID (Binkowski et al. 2018, as torch-fidelity and clean-fid): the
 * unbiased MMD^2 with the polynomial kernel k(x, y) = (x.y / d + 1)^3,
 *     MMD^2 = sum_{i!=j} k(x_i, x_j) / (m(m-1)) + sum_{i!=j} k(y_i, y_j) / (m(m-1))
 *             - 2 sum_{i,j} k(x_i, y_j) / m^2,
 * over `subsets` pairs of random subsets of m = min(subset_size, n1, n2)
 * vectors of each set (drawn without replacement: the first m of a
 * shuffle, runtime/data.h's rt_data_order keyed by seed and the subset's
 * index); the mean and standard deviation over the subsets.
 *
 * Feature sets are row-major (n, d) floats. Functions return RT_OK, or
 * RT_ERR (too few vectors: n < 2; out of memory) with a message in err. */
#ifndef DDPMC_RUNTIME_FID_H
#define DDPMC_RUNTIME_FID_H

#include <stddef.h>
#include <stdint.h>

#define RT_KID_SUBSETS 100
#define RT_KID_SUBSET_SIZE 1000

int rt_fid(const float *a, int64_t na, const float *b, int64_t nb, int64_t d, double *fid,
           char *err, size_t errlen);
int rt_kid(const float *a, int64_t na, const float *b, int64_t nb, int64_t d, int subsets,
           int64_t subset_size, uint64_t seed, double *mean, double *std, char *err,
           size_t errlen);

/* The eigenvalues of the symmetric (n, n) matrix a (row-major, destroyed)
 * into w (n), and when v is not NULL the eigenvectors as the columns of v
 * (n, n): a = v diag(w) v^T. Cyclic Jacobi to a relative off-diagonal of
 * 1e-15 (at most 100 sweeps). */
void rt_sym_eigen(double *a, int64_t n, double *w, double *v);

#endif
