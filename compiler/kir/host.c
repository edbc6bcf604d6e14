/* host: a kernel program's buffers bound to tensors in host memory, for
 * everything that runs kernels in this process (ddpmc run, the JIT and
 * evaluator tests). Compiled executables bind through runtime/exec.c from
 * the embedded descriptor instead. */
#include <stdio.h>
#include <stdlib.h>

#include "kir.h"

/* Host memory for every buffer of a kernel program: params and inputs
 * point into their tensor sets, outputs are added to `outs`, temporaries
 * live in one arena, constants in the graph. */
void **kir_bind_host(const kir_program *p, rt_tensorset *state, const rt_tensorset *inputs,
                           rt_tensorset *outs, char **arena, char *err, size_t errlen)
{
	void **bufs = calloc((size_t)p->nbuf + 1, sizeof *bufs);
	*arena = calloc(1, (size_t)p->arena_bytes + 64);
	for (int b = 0; b < p->nbuf; b++) {
		const kir_buffer *kb = &p->buf[b];
		rt_tensor *t = NULL;
		switch (kb->kind) {
		case KB_PARAM: t = rt_set_find(state, kb->name); break;
		case KB_INPUT: t = rt_set_find(inputs, kb->name); break;
		case KB_OUTPUT: t = rt_set_add(outs, kb->name, kb->dtype, kb->shape.rank, kb->shape.d); break;
		case KB_TEMP: bufs[b] = *arena + kb->offset; continue;
		case KB_CONST: bufs[b] = (void *)kb->data; continue;
		}
		if (!t || t->dtype != kb->dtype || rt_numel(t->rank, t->shape) != kb->numel) {
			snprintf(err, errlen, "%s '%s' is missing or has the wrong dtype or size",
			         kb->kind == KB_INPUT ? "input" : "tensor", kb->name);
			free(bufs);
			free(*arena);
			*arena = NULL;
			return NULL;
		}
		bufs[b] = t->data;
	}
	return bufs;
}

/* Inputs converted to the dtypes the entry declares. */
int kir_convert_inputs(const ir_graph *g, const rt_tensorset *in, rt_tensorset *out,
                          char *err, size_t errlen)
{
	for (int id = 0; id < g->n; id++) {
		const ir_node *n = &g->nodes[id];
		const rt_tensor *t = n->op == OP_input ? rt_set_find(in, n->name) : NULL;
		if (!t)
			continue;
		if (rt_numel(t->rank, t->shape) != ir_numel(&n->shape)) {
			snprintf(err, errlen, "input '%s' has the wrong size", n->name);
			return -1;
		}
		rt_tensor *c = rt_set_add(out, n->name, n->dtype, n->shape.rank, n->shape.d);
		for (int64_t i = 0; c && i < ir_numel(&n->shape); i++)
			rt_store(n->dtype, c->data, i, rt_load(t->dtype, t->data, i));
	}
	return 0;
}
