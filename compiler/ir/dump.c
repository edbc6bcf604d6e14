/* dump: the graph as text (one node per line) or as Graphviz, and the
 * per-node FLOP count that `inspect` and `--report` add up.
 *
 * Text format:  %12 = conv2d(%10, %11) f32 (2, 16, 8, 8) stride=1,1 pad=1,1,1,1   # models/unet.lua:42 */
#include "ir.h"

static void dump_attrs(const ir_node *n, FILE *f)
{
	const ir_attrs *a = &n->a;
	switch (n->op) {
	case OP_input: fprintf(f, " \"%s\"", n->name); break;
	case OP_param: fprintf(f, " \"%s\"%s", n->name, a->param.trainable ? "" : " state"); break;
	case OP_fill: fprintf(f, " value=%g", a->fill.value); break;
	case OP_reduce_sum: case OP_reduce_max: fprintf(f, " axes=0x%x", a->reduce.axes); break;
	case OP_permute:
		fputs(" perm=", f);
		for (int i = 0; i < n->shape.rank; i++)
			fprintf(f, "%s%d", i ? "," : "", a->permute.perm[i]);
		break;
	case OP_slice:
		fputs(" start,step=", f);
		for (int i = 0; i < n->shape.rank; i++)
			fprintf(f, "%s%lld:%lld", i ? "," : "", (long long)a->slice.start[i],
			        (long long)a->slice.step[i]);
		break;
	case OP_concat: fprintf(f, " axis=%d", a->concat.axis); break;
	case OP_pad:
		fputs(" lo,hi=", f);
		for (int i = 0; i < n->shape.rank; i++)
			fprintf(f, "%s%lld:%lld", i ? "," : "", (long long)a->pad.lo[i], (long long)a->pad.hi[i]);
		fprintf(f, " value=%g", a->pad.value);
		break;
	case OP_upsample2d: fprintf(f, " scale=%d", a->upsample.scale); break;
	case OP_conv2d: case OP_conv2d_grad_input: case OP_conv2d_grad_weight:
		fprintf(f, " stride=%d,%d pad=%d,%d,%d,%d", a->conv.stride[0], a->conv.stride[1],
		        a->conv.pad[0], a->conv.pad[1], a->conv.pad[2], a->conv.pad[3]);
		break;
	case OP_rng_uniform: case OP_rng_normal: fprintf(f, " stream=%d", a->rng.stream); break;
	case OP_constant: IR_CASES_ELEMWISE: case OP_reshape: case OP_broadcast: case OP_matmul:
	IR_CASES_INDEX: break;                  /* no attributes */
	}
}

static void dump_node(const ir_graph *g, int id, FILE *f)
{
	const ir_node *n = &g->nodes[id];
	char sb[128];
	fprintf(f, "%%%d = %s(", id, ir_ops[n->op].name);
	for (int k = 0; k < n->nin; k++)
		fprintf(f, "%s%%%d", k ? ", " : "", n->in[k]);
	fprintf(f, ") %s %s", rt_dtype_name(n->dtype), ir_shape_str(&n->shape, sb, sizeof sb));
	dump_attrs(n, f);
	fprintf(f, "   # %s\n", n->where ? n->where : "?");
}

void ir_dump(const ir_graph *g, const char *live, FILE *f)
{
	for (int id = 0; id < g->n; id++)
		if (!live || live[id])
			dump_node(g, id, f);
	for (int i = 0; i < g->nentries; i++) {
		const ir_entry *e = &g->entries[i];
		fprintf(f, "entry %s:", e->name);
		for (int k = 0; k < e->noutputs; k++)
			fprintf(f, " %s=%%%d", e->outputs[k].name, e->outputs[k].node);
		for (int k = 0; k < e->nupdates; k++)
			fprintf(f, " %s<-%%%d", e->updates[k].name, e->updates[k].node);
		fputc('\n', f);
	}
}

void ir_dump_dot(const ir_graph *g, const char *live, FILE *f)
{
	char sb[128];
	fputs("digraph ddpmc {\n  node [shape=box, fontname=monospace];\n", f);
	for (int id = 0; id < g->n; id++) {
		const ir_node *n = &g->nodes[id];
		if (live && !live[id])
			continue;
		fprintf(f, "  n%d [label=\"%%%d %s%s%s\\n%s %s\"];\n", id, id, ir_ops[n->op].name,
		        n->name ? " " : "", n->name ? n->name : "", rt_dtype_name(n->dtype),
		        ir_shape_str(&n->shape, sb, sizeof sb));
		for (int k = 0; k < n->nin; k++)
			fprintf(f, "  n%d -> n%d;\n", n->in[k], id);
	}
	fputs("}\n", f);
}

double ir_node_flops(const ir_graph *g, const ir_node *n)
{
	double out = (double)ir_numel(&n->shape);
	switch (n->op) {
	case OP_matmul: {
		const ir_shape *a = &g->nodes[n->in[0]].shape;
		return 2.0 * out * (double)a->d[a->rank - 1];
	}
	case OP_conv2d: {
		const ir_shape *w = &g->nodes[n->in[1]].shape;
		return 2.0 * out * (double)(w->d[1] * w->d[2] * w->d[3]);
	}
	case OP_conv2d_grad_input: case OP_conv2d_grad_weight: {
		const ir_shape *w = n->op == OP_conv2d_grad_input ? &g->nodes[n->in[1]].shape : &n->shape;
		const ir_shape *gs = &g->nodes[n->in[n->op == OP_conv2d_grad_input ? 0 : 1]].shape;
		return 2.0 * (double)ir_numel(gs) * (double)(w->d[1] * w->d[2] * w->d[3]);
	}
	case OP_reduce_sum: case OP_reduce_max:
		return (double)ir_numel(&g->nodes[n->in[0]].shape);
	IR_CASES_ELEMWISE: return out;
	IR_CASES_LEAF: IR_CASES_MOVE: IR_CASES_INDEX: IR_CASES_RANDOM: return 0.0;
	}
	IR_NO_CASE(n->op);
}
