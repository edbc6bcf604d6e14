/* philox: the counter-based random numbers of every ddpmc program
 * (docs/semantics.md §6). Philox4x32-10 from Random123 (Salmon et al., SC'11),
 * uniforms and Box-Muller normals, addressed by logical element index so
 * that any backend, any slicing of the work and a resumed run all draw the
 * same numbers.
 *
 * THE CONTRACT (CPU and OpenCL code generators reproduce it bit-exactly):
 *
 *   Stream (seed, stream) is an infinite sequence of elements x[0], x[1], ...
 *   Element i (a 64-bit logical index) comes from Philox call q = i / 4,
 *   lane l = i % 4:
 *     ctr = { (uint32)q, (uint32)(q >> 32), (uint32)stream, (uint32)(stream >> 32) }
 *     key = { (uint32)seed, (uint32)(seed >> 32) }
 *     w[0..3] = rt_philox4x32(ctr, key)
 *   Uniform element i: rt_u32_to_uniform(w[l]).
 *   Normal element i: lanes 0, 1 are z0, z1 of rt_box_muller(w[0], w[1]);
 *                     lanes 2, 3 are z0, z1 of rt_box_muller(w[2], w[3]).
 *   rt_philox_{uniform,normal}(seed, stream, offset, n, out) fill
 *   out[j] = x[offset + j] for j in [0, n): a slice of a stream equals the
 *   same range of the whole.
 *
 *   The words w and the uniforms are exact. Normals involve log, sqrt,
 *   cos and sin: this reference computes them in double and rounds once to
 *   float (so it is within one float ulp of the true value); a backend that
 *   uses float math agrees to within its math library's error.
 *
 *   Choosing streams is the caller's business: docs/semantics.md says the counter
 *   holds (element, step, which random tensor), e.g.
 *   stream = (uint64)step << 16 | tensor_id.
 */
#ifndef DDPMC_RUNTIME_PHILOX_H
#define DDPMC_RUNTIME_PHILOX_H

#include <stdint.h>

/* Philox4x32 with 10 rounds: M0=0xD2511F53, M1=0xCD9E8D57 (multipliers),
 * W0=0x9E3779B9, W1=0xBB67AE85 (key increments). One round maps
 * (c0,c1,c2,c3) with key (k0,k1) to
 *   (hi(M1*c2) ^ c1 ^ k0, lo(M1*c2), hi(M0*c0) ^ c3 ^ k1, lo(M0*c0))
 * and the key grows by (W0, W1) between rounds. */
void rt_philox4x32(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

/* u = ((x >> 8) + 1) * 2^-24: the top 24 bits, shifted up by one step, so
 * u is one of k / 2^24, k = 1 .. 2^24, in (0, 1], exact in float; never 0
 * (log(u) is finite), and 1.0 when x >> 8 == 0xffffff. */
float rt_u32_to_uniform(uint32_t x);

/* Box-Muller: u1 = rt_u32_to_uniform(a), u2 = rt_u32_to_uniform(b),
 * r = sqrt(-2 ln u1), z0 = r cos(2 pi u2), z1 = r sin(2 pi u2), computed in
 * double and rounded to float. |z| <= sqrt(2 ln 2^24) ~ 5.77. */
void rt_box_muller(uint32_t a, uint32_t b, float *z0, float *z1);

/* out[j] = element offset + j of stream (seed, stream), j in [0, n);
 * nothing is written when n <= 0. Layout: see the contract above. */
void rt_philox_uniform(uint64_t seed, uint64_t stream, uint64_t offset,
                       int64_t n, float *out);
void rt_philox_normal(uint64_t seed, uint64_t stream, uint64_t offset,
                      int64_t n, float *out);

#endif
