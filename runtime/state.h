/* state: the initial values of a program's parameters and state tensors,
 * shared by the reference interpreter and compiled executables so that both
 * start from bit-identical state.
 *
 * A parameter is initialised from its spec (torch.nn's defaults are
 * expressed as these five kinds) with Philox keyed by the run's seed, on
 * the stream equal to the parameter's index (its position among the
 * program's params, in graph order):
 *   zeros, ones;
 *   uniform (a, b]: v = a + (b - a) * u,  u = rt_philox_uniform element k;
 *   normal:         v = a + b * z,        z = rt_philox_normal element k;
 *   copy:           the value of an earlier parameter (`from`).
 * v is computed in double and rounded once to the parameter's dtype
 * (rt_store). */
#ifndef DDPMC_RUNTIME_STATE_H
#define DDPMC_RUNTIME_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "tensor.h"

typedef enum {
	RT_INIT_ZEROS, RT_INIT_ONES, RT_INIT_UNIFORM, RT_INIT_NORMAL, RT_INIT_COPY
} rt_initkind;

typedef struct {
	rt_initkind kind;
	double a, b;            /* uniform: (a, b]; normal: mean a, std b */
} rt_init;

/* "zeros", "ones", ... <-> rt_initkind; parse returns RT_OK or RT_ERR. */
const char *rt_init_name(rt_initkind k);
int rt_init_parse(const char *s, rt_initkind *out);

/* Fills t (already allocated) by init with Philox (seed, stream), or, for
 * RT_INIT_COPY, from src (same element count; converted when its dtype
 * differs). Returns RT_OK, or RT_ERR when out of memory or src is missing
 * or of the wrong size. */
int rt_init_tensor(const rt_init *init, uint64_t seed, uint64_t stream,
                   const rt_tensor *src, rt_tensor *t);

/* dst = src element by element, converted to dst's dtype (same numel). */
void rt_tensor_convert(const rt_tensor *src, rt_tensor *dst);

/* The whole state of a program (rt_program, program.h): one tensor per
 * param spec, in spec order, added to `state` (which must not hold them
 * yet). A param present in `weights` (when non-NULL) takes its value from
 * there, converted to the param's dtype; the shape must match. A trainable
 * param missing from a non-NULL `weights` is an error naming it; others are
 * initialised from their spec. Exactly interp_init_state's semantics.
 * `weights_name` names the weights in messages ("ckpt.safetensors: 'w' has
 * shape (2, 3), the model expects (3, 2)"). Returns RT_OK or RT_ERR with a
 * message in err. */
typedef struct rt_program rt_program;
int rt_state_init(const rt_program *p, uint64_t seed, const rt_tensorset *weights,
                  const char *weights_name, rt_tensorset *state, char *err, size_t errlen);

/* "(2, 3)"; "()" for rank 0. Returns buf. */
const char *rt_shape_str(int rank, const int64_t *shape, char *buf, size_t len);

#endif
