/* interp: the reference interpreter, the test oracle of every backend.
 *
 * It runs one entry of a graph with plain loops over the op table, one
 * node at a time, in node order. Floating values are held as f32 arrays;
 * a node of dtype f16 or bf16 has every element rounded to that dtype when
 * it is stored (so low precision behaves as storage does on a device);
 * i32 values are int32 arrays. Elementwise math is done in double and
 * rounded once at storage; matmul and conv2d accumulate in f32.
 *
 * State (params) lives in a tensor set keyed by param name, holding each
 * param in its own dtype and shape; an entry's updates overwrite it after
 * the entry has run. */
#ifndef DDPMC_INTERP_H
#define DDPMC_INTERP_H

#include "ir.h"

/* Fills `state` with one tensor per param of g: taken from `weights` when
 * present there (any dtype, converted; the shape must match), else made
 * from the param's init spec with Philox keyed by seed (stream = the
 * param's index). A trainable param missing from a non-NULL `weights` is
 * an error naming it. Returns 0, or -1 with a message in err. */
int interp_init_state(const ir_graph *g, uint64_t seed, const rt_tensorset *weights,
                      const char *weights_name, rt_tensorset *state,
                      char *err, size_t errlen);

/* Runs entry e: reads its inputs from `inputs` (converted to the input
 * node's dtype; shapes must match), adds one tensor per entry output to
 * `outputs`, then applies the entry's updates to `state`. */
int interp_run(const ir_graph *g, const ir_entry *e, rt_tensorset *state,
               const rt_tensorset *inputs, rt_tensorset *outputs,
               char *err, size_t errlen);

#endif
