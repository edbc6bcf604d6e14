/* philox: Philox4x32-10, uniforms and Box-Muller normals; the element
 * layout they follow is the contract stated in philox.h. */
#include "philox.h"

#include <math.h>
#include <string.h>

#define RT_PHILOX_ROUNDS 10
#define RT_PHILOX_M0 0xD2511F53u
#define RT_PHILOX_M1 0xCD9E8D57u
#define RT_PHILOX_W0 0x9E3779B9u
#define RT_PHILOX_W1 0xBB67AE85u

static const double rt_two_pi = 6.283185307179586476925286766559;

static void rt_philox_round(uint32_t c[4], const uint32_t k[2])
{
	uint64_t p0 = (uint64_t)RT_PHILOX_M0 * c[0];
	uint64_t p1 = (uint64_t)RT_PHILOX_M1 * c[2];
	uint32_t n0 = (uint32_t)(p1 >> 32) ^ c[1] ^ k[0];
	uint32_t n2 = (uint32_t)(p0 >> 32) ^ c[3] ^ k[1];
	c[0] = n0;
	c[1] = (uint32_t)p1;
	c[2] = n2;
	c[3] = (uint32_t)p0;
}

void rt_philox4x32(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4])
{
	uint32_t c[4] = {ctr[0], ctr[1], ctr[2], ctr[3]};
	uint32_t k[2] = {key[0], key[1]};
	for (int r = 0; r < RT_PHILOX_ROUNDS; r++) {
		if (r) {
			k[0] += RT_PHILOX_W0;
			k[1] += RT_PHILOX_W1;
		}
		rt_philox_round(c, k);
	}
	memcpy(out, c, sizeof c);
}

float rt_u32_to_uniform(uint32_t x)
{
	return (float)((x >> 8) + 1) * 0x1p-24f;
}

void rt_box_muller(uint32_t a, uint32_t b, float *z0, float *z1)
{
	double u1 = rt_u32_to_uniform(a), u2 = rt_u32_to_uniform(b);
	double r = sqrt(-2.0 * log(u1));
	*z0 = (float)(r * cos(rt_two_pi * u2));
	*z1 = (float)(r * sin(rt_two_pi * u2));
}

/* The four words of Philox call q of stream (seed, stream). */
static void rt_philox_block(uint64_t seed, uint64_t stream, uint64_t q,
                            uint32_t w[4])
{
	const uint32_t ctr[4] = {(uint32_t)q, (uint32_t)(q >> 32),
	                         (uint32_t)stream, (uint32_t)(stream >> 32)};
	const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
	rt_philox4x32(ctr, key, w);
}

/* Fills out[j] = element offset + j, computing each Philox block once and
 * turning it into four values with make. */
static void rt_philox_fill(uint64_t seed, uint64_t stream, uint64_t offset,
                           int64_t n, float *out,
                           void (*make)(const uint32_t w[4], float v[4]))
{
	int64_t j = 0;
	while (j < n) {
		uint64_t i = offset + (uint64_t)j;
		uint32_t w[4];
		float v[4];
		rt_philox_block(seed, stream, i / 4, w);
		make(w, v);
		for (unsigned l = (unsigned)(i % 4); l < 4 && j < n; l++)
			out[j++] = v[l];
	}
}

static void rt_make_uniform(const uint32_t w[4], float v[4])
{
	for (int l = 0; l < 4; l++)
		v[l] = rt_u32_to_uniform(w[l]);
}

static void rt_make_normal(const uint32_t w[4], float v[4])
{
	rt_box_muller(w[0], w[1], &v[0], &v[1]);
	rt_box_muller(w[2], w[3], &v[2], &v[3]);
}

void rt_philox_uniform(uint64_t seed, uint64_t stream, uint64_t offset,
                       int64_t n, float *out)
{
	rt_philox_fill(seed, stream, offset, n, out, rt_make_uniform);
}

void rt_philox_normal(uint64_t seed, uint64_t stream, uint64_t offset,
                      int64_t n, float *out)
{
	rt_philox_fill(seed, stream, offset, n, out, rt_make_normal);
}
