/* verify: check the graph invariants every pass must preserve.
 * requires: nothing. establishes: nothing; reports the first violation.
 * Invariants: node inputs come before the node; every non-leaf node's shape
 * and dtype are what its op's rule gives; leaves have their payload (a
 * constant its data, an input or param its name); the param list holds
 * exactly the param nodes; entry roots are nodes. */
#include "ir.h"

static int verify_leaf(ir_graph *g, int id)
{
	const ir_node *n = &g->nodes[id];
	if (n->nin != 0)
		return ir_fail(g, n->where, ir_ops[n->op].name, "leaf node %d has inputs", id);
	if (n->op == OP_constant && !n->data)
		return ir_fail(g, n->where, "constant", "node %d has no data", id);
	if ((n->op == OP_input || n->op == OP_param) && !n->name)
		return ir_fail(g, n->where, ir_ops[n->op].name, "node %d has no name", id);
	if (n->op == OP_param && (n->a.param.index < 0 || n->a.param.index >= g->nparams ||
	                          g->params[n->a.param.index] != id))
		return ir_fail(g, n->where, "param", "node %d is not in the param list", id);
	return 0;
}

static int verify_entries(ir_graph *g)
{
	for (int i = 0; i < g->nentries; i++) {
		const ir_entry *e = &g->entries[i];
		for (int k = 0; k < e->noutputs; k++)
			if (e->outputs[k].node < 0 || e->outputs[k].node >= g->n)
				return ir_fail(g, e->name, "entry", "output '%s' is not a node", e->outputs[k].name);
		for (int k = 0; k < e->nupdates; k++) {
			const ir_binding *u = &e->updates[k];
			int p = ir_find_param(g, u->name);
			if (p < 0 || u->node < 0 || u->node >= g->n)
				return ir_fail(g, e->name, "entry", "update '%s' is not a param or its value not a node",
				               u->name);
			if (!ir_shape_eq(&g->nodes[p].shape, &g->nodes[u->node].shape) ||
			    g->nodes[p].dtype != g->nodes[u->node].dtype)
				return ir_fail(g, e->name, "entry", "update '%s' changes its shape or dtype", u->name);
		}
	}
	return 0;
}

int ir_verify(ir_graph *g)
{
	for (int id = 0; id < g->n; id++) {
		int leaf = ir_ops[g->nodes[id].op].flags & LEAF;
		if ((leaf ? verify_leaf(g, id) : ir_recheck(g, id)) < 0)
			return -1;
	}
	for (int i = 0; i < g->nparams; i++)
		if (g->nodes[g->params[i]].op != OP_param)
			return ir_fail(g, "?", "verify", "param list entry %d is not a param", i);
	return verify_entries(g);
}
