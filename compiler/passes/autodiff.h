/* autodiff: reverse-mode differentiation as a graph rewrite (see
 * autodiff.c for the contract). */
#ifndef DDPMC_AUTODIFF_H
#define DDPMC_AUTODIFF_H

#include "ir.h"

/* grads[i] = node holding d(sum of seed * y)/d wrt[i]; seed -1 means ones.
 * Returns 0, or -1 with g->err set when y is not differentiable. */
int ad_grad(ir_graph *g, int y, int seed, const int *wrt, int nwrt, int *grads);

#endif
