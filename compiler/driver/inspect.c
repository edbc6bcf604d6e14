/* inspect and graph: what a model script builds, for people and tools.
 *
 * inspect prints the parameter count, every parameter's name, dtype and
 * shape, and per entry its FLOPs and node counts by op (text, or --json).
 * graph prints the IR of one entry (or all nodes) as text or Graphviz. */
#include <stdio.h>
#include <stdlib.h>

#include "driver.h"

typedef struct {
	double flops;
	int count[OP_COUNT];
} entry_stats;

static entry_stats stats_of(const ir_graph *g, const ir_entry *e)
{
	entry_stats s = { 0 };
	char *live = ir_entry_live(g, e);
	for (int id = 0; id < g->n; id++)
		if (live[id]) {
			s.flops += ir_node_flops(g, &g->nodes[id]);
			s.count[g->nodes[id].op]++;
		}
	free(live);
	return s;
}

/* Trainable parameters only: state tensors (step, moments) are not counted. */
static long long param_count(const ir_graph *g)
{
	long long n = 0;
	for (int i = 0; i < g->nparams; i++) {
		const ir_node *p = &g->nodes[g->params[i]];
		if (p->a.param.trainable)
			n += ir_numel(&p->shape);
	}
	return n;
}

static void print_thousands(long long n)
{
	if (n >= 1000) {
		print_thousands(n / 1000);
		printf(",%03lld", n % 1000);
	} else
		printf("%lld", n);
}

static void inspect_text(const drv_args *a, const ir_graph *g)
{
	char sb[128];
	printf("model: %s\nparameters: ", a->model);
	print_thousands(param_count(g));
	printf(" in %d tensors\n", g->nparams);
	for (int i = 0; i < g->nparams; i++) {
		const ir_node *p = &g->nodes[g->params[i]];
		printf("  %-56s %-4s %s%s\n", p->name, rt_dtype_name(p->dtype),
		       ir_shape_str(&p->shape, sb, sizeof sb), p->a.param.trainable ? "" : "  (state)");
	}
	for (int i = 0; i < g->nentries; i++) {
		entry_stats s = stats_of(g, &g->entries[i]);
		printf("entry %s: %.4g GFLOP\n  ops:", g->entries[i].name, s.flops / 1e9);
		for (int op = 0; op < OP_COUNT; op++)
			if (s.count[op])
				printf(" %s %d", ir_ops[op].name, s.count[op]);
		printf("\n");
	}
}

static void inspect_json(const drv_args *a, const ir_graph *g)
{
	printf("{\"model\": \"%s\", \"parameter_count\": %lld, \"parameters\": [", a->model,
	       param_count(g));
	for (int i = 0; i < g->nparams; i++) {
		const ir_node *p = &g->nodes[g->params[i]];
		printf("%s\n  {\"name\": \"%s\", \"dtype\": \"%s\", \"trainable\": %s, \"shape\": [",
		       i ? "," : "", p->name, rt_dtype_name(p->dtype),
		       p->a.param.trainable ? "true" : "false");
		for (int k = 0; k < p->shape.rank; k++)
			printf("%s%lld", k ? ", " : "", (long long)p->shape.d[k]);
		printf("]}");
	}
	printf("],\n \"entries\": [");
	for (int i = 0; i < g->nentries; i++) {
		entry_stats s = stats_of(g, &g->entries[i]);
		printf("%s\n  {\"name\": \"%s\", \"flops\": %.0f, \"ops\": {", i ? "," : "",
		       g->entries[i].name, s.flops);
		int first = 1;
		for (int op = 0; op < OP_COUNT; op++)
			if (s.count[op]) {
				printf("%s\"%s\": %d", first ? "" : ", ", ir_ops[op].name, s.count[op]);
				first = 0;
			}
		printf("}}");
	}
	printf("]}\n");
}

int drv_inspect(const drv_args *a)
{
	ir_graph *g = drv_load(a);
	if (!g)
		return -1;
	(a->json ? inspect_json : inspect_text)(a, g);
	ir_free(g);
	return 0;
}

int drv_graph(const drv_args *a)
{
	ir_graph *g = drv_load(a);
	if (!g)
		return -1;
	char *live = NULL;
	if (a->entry) {
		const ir_entry *e = ir_entry_find(g, a->entry);
		if (!e) {
			fprintf(stderr, "ddpmc: %s has no entry '%s'\n", a->model, a->entry);
			ir_free(g);
			return -1;
		}
		live = ir_entry_live(g, e);
	}
	(a->dot ? ir_dump_dot : ir_dump)(g, live, stdout);
	free(live);
	ir_free(g);
	return 0;
}
