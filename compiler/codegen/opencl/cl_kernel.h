/* cl_kernel: one kernel's launch as OpenCL C, every variant of it
 * (cl_render.c), for the writer of the source and the launches
 * (cl_source.c); internal to codegen/opencl. */
#ifndef DDPMC_CL_KERNEL_H
#define DDPMC_CL_KERNEL_H

#include "cl_render.h"

/* A kernel's launch as rendered, before it goes into the source: every
 * variant's OpenCL C after its kernel's name (from the parameters on),
 * one after another in text: variant j's from at[j] to at[j + 1], empty
 * where it launches v[0]'s kernel in other work-groups. v[j] holds each
 * NDRange; names and parts are the writer's. */
typedef struct {
	rt_strbuf text;
	size_t at[CL_MAX_VARIANTS + 1];
	char suffix[CL_MAX_VARIANTS][24];       /* variant j's name after its kernel's */
	cl_variant v[CL_MAX_VARIANTS];
	int nv;
} cl_kernel_text;

/* Kernel k of p (its arguments set: kir_set_args), every variant, for
 * target t, into out (whose text the caller frees); -1 when out of
 * memory. */
int cl_render_kernel(const kir_program *p, const kir_kernel *k, const cl_target *t, cl_kernel_text *out);

/* What every source opens with: the helpers the kernels call. */
void cl_put_prelude(rt_strbuf *src);

#endif
