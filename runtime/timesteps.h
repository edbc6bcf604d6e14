/* timesteps: the sequence of timesteps a sampler steps through, exactly as
 * diffusers' DDPMScheduler.set_timesteps and DDIMScheduler.set_timesteps
 * make it for T training timesteps and K inference steps, and the step
 * each one goes to. Integer bookkeeping for the host's sampling loop; the
 * step itself (lua/ddpm/diffusion.lua) is a compiled entry.
 *
 *   leading:  t_i = i * (T / K) (integer division), i = K-1 .. 0
 *   trailing: t_i = round(T - i * T/K) - 1, i = 0 .. K-1 (numpy's arange
 *             and round: ties to even)
 *   linspace: round(linspace(0, T-1, K)), reversed
 *   The step of t goes to s: DDPM the next timestep of the sequence (-1
 *   after the last), DDIM t - T / K (integer division), whatever the
 *   spacing, as diffusers does. Any s < 0 is reported as -1: there the
 *   schedule's alpha_bar is 1 (the graph's tables start at -1). */
#ifndef DDPMC_RUNTIME_TIMESTEPS_H
#define DDPMC_RUNTIME_TIMESTEPS_H

#include <stdint.h>

typedef enum { RT_SPACING_LEADING, RT_SPACING_TRAILING, RT_SPACING_LINSPACE } rt_spacing;

/* "leading", "trailing" or "linspace"; 0, or -1 for any other name. */
int rt_spacing_parse(const char *name, rt_spacing *out);
const char *rt_spacing_name(rt_spacing sp);

/* t[i] and s[i] of step i = 0 .. K-1 in sampling order (t[0] the largest);
 * 1 <= K <= T. */
void rt_timesteps(int64_t T, int64_t K, rt_spacing sp, int ddim, int64_t *t, int64_t *s);

#endif
