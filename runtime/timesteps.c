/* timesteps.c: diffusers' inference timestep sequences (timesteps.h). */
#include <math.h>
#include <string.h>

#include "timesteps.h"

static const char *const spacing_names[] = { "leading", "trailing", "linspace" };

int rt_spacing_parse(const char *name, rt_spacing *out)
{
	for (int i = 0; i < 3; i++)
		if (strcmp(name, spacing_names[i]) == 0) {
			*out = (rt_spacing)i;
			return 0;
		}
	return -1;
}

const char *rt_spacing_name(rt_spacing sp)
{
	return spacing_names[sp];
}

/* Timestep i (0-based, sampling order) of the sequence; the float
 * arithmetic is numpy's (arange: start + i * (second - start); linspace:
 * i * step, the last element exactly stop), rounded ties-to-even. */
static int64_t timestep(int64_t T, int64_t K, rt_spacing sp, int64_t i)
{
	switch (sp) {
	case RT_SPACING_LEADING:
		return (K - 1 - i) * (T / K);
	case RT_SPACING_TRAILING: {
		double start = (double)T, delta = (start - (double)T / (double)K) - start;
		return (int64_t)nearbyint(start + (double)i * delta) - 1;
	}
	case RT_SPACING_LINSPACE: {
		int64_t j = K - 1 - i;
		if (K == 1)
			return 0;
		if (j == K - 1)
			return T - 1;
		return (int64_t)nearbyint((double)j * ((double)(T - 1) / (double)(K - 1)));
	}
	}
	return 0;
}

void rt_timesteps(int64_t T, int64_t K, rt_spacing sp, int ddim, int64_t *t, int64_t *s)
{
	for (int64_t i = 0; i < K; i++)
		t[i] = timestep(T, K, sp, i);
	for (int64_t i = 0; i < K; i++) {
		int64_t prev = ddim ? t[i] - T / K : i + 1 < K ? t[i + 1] : -1;
		s[i] = prev < 0 ? -1 : prev;
	}
}
