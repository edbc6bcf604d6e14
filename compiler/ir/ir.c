/* ir.c: the node pool, its arena, leaves and entries.
 * Shape rules for non-leaf ops live in shape.c. */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"

const ir_opinfo ir_ops[] = {
#define OP(name, arity, flags, meaning) { #name, arity, flags, meaning },
#include "ops.h"
#undef OP
};
static_assert(sizeof ir_ops / sizeof *ir_ops == OP_COUNT, "one ir_ops row per op");

/* The arena: a list of malloc'd chunks, freed together with the graph. */
struct ir_chunk {
	ir_chunk *next;
	max_align_t data[];
};

static void die_oom(void)
{
	fputs("ddpmc: out of memory\n", stderr);
	abort();
}

void *ir_alloc(ir_graph *g, size_t size)
{
	ir_chunk *c = calloc(1, sizeof *c + size);
	if (!c)
		die_oom();
	c->next = g->arena;
	g->arena = c;
	return c->data;
}

const char *ir_strdup(ir_graph *g, const char *s)
{
	if (!s)
		return NULL;
	size_t len = strlen(s) + 1;
	return memcpy(ir_alloc(g, len), s, len);
}

ir_graph *ir_new(void)
{
	ir_graph *g = calloc(1, sizeof *g);
	if (!g)
		die_oom();
	return g;
}

void ir_free(ir_graph *g)
{
	if (!g)
		return;
	while (g->arena) {
		ir_chunk *next = g->arena->next;
		free(g->arena);
		g->arena = next;
	}
	free(g->nodes);
	free(g->params);
	free(g->entries);
	free(g->meta);
	free(g);
}

/* Grows *arr (of element size `size`) so that it holds at least n+1 items. */
void *ir_grow(void *arr, int n, int *cap, size_t size)
{
	if (n < *cap)
		return arr;
	*cap = *cap ? 2 * *cap : 64;
	arr = realloc(arr, (size_t)*cap * size);
	if (!arr)
		die_oom();
	return arr;
}

/* Appends a node; the caller has checked it. Returns its id. */
int ir_push(ir_graph *g, const ir_node *n)
{
	g->nodes = ir_grow(g->nodes, g->n, &g->cap, sizeof *g->nodes);
	g->nodes[g->n] = *n;
	return g->n++;
}

int ir_fail(ir_graph *g, const char *where, const char *op, const char *fmt, ...)
{
	int len = snprintf(g->err, sizeof g->err, "%s: %s: ", where ? where : "?", op);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(g->err + len, sizeof g->err - (size_t)len, fmt, ap);
	va_end(ap);
	return -1;
}

int64_t ir_numel(const ir_shape *s)
{
	int64_t n = 1;
	for (int i = 0; i < s->rank; i++)
		n *= s->d[i];
	return n;
}

int ir_numel_fits(const ir_shape *s)
{
	int64_t n = 1;
	for (int i = 0; i < s->rank; i++) {
		if (s->d[i] > IR_MAXNUMEL / n)
			return 0;
		n *= s->d[i] > 0 ? s->d[i] : 1;
	}
	return 1;
}

int ir_shape_eq(const ir_shape *a, const ir_shape *b)
{
	if (a->rank != b->rank)
		return 0;
	for (int i = 0; i < a->rank; i++)
		if (a->d[i] != b->d[i])
			return 0;
	return 1;
}

const char *ir_shape_str(const ir_shape *s, char *buf, size_t len)
{
	size_t at = (size_t)snprintf(buf, len, "(");
	for (int i = 0; i < s->rank && at < len; i++)
		at += (size_t)snprintf(buf + at, len - at, "%s%lld", i ? ", " : "",
		                       (long long)s->d[i]);
	if (at < len)
		snprintf(buf + at, len - at, ")");
	return buf;
}

ir_shape ir_shape_of(int rank, const int64_t *d)
{
	ir_shape s = { rank, { 0 } };
	for (int i = 0; i < rank; i++)
		s.d[i] = d[i];
	return s;
}

int ir_opcode_parse(const char *name, ir_opcode *out)
{
	for (int op = 0; op < OP_COUNT; op++)
		if (strcmp(ir_ops[op].name, name) == 0) {
			*out = (ir_opcode)op;
			return 0;
		}
	return -1;
}

/* A leaf's shape must have a valid rank and positive dims. */
static int check_leaf(ir_graph *g, const char *op, rt_dtype dt,
                      const ir_shape *s, const char *where)
{
	char buf[128];
	if (s->rank < 0 || s->rank > IR_MAXDIM)
		return ir_fail(g, where, op, "rank %d is not in 0..%d", s->rank, IR_MAXDIM);
	for (int i = 0; i < s->rank; i++)
		if (s->d[i] <= 0)
			return ir_fail(g, where, op, "dimension %d of %s is not positive",
			               i, ir_shape_str(s, buf, sizeof buf));
	if (!ir_numel_fits(s))
		return ir_fail(g, where, op, "%s has more than 2^53 elements", ir_shape_str(s, buf, sizeof buf));
	if (dt != RT_F32 && dt != RT_F16 && dt != RT_BF16 && dt != RT_I32)
		return ir_fail(g, where, op, "dtype %s is not one of f32, f16, bf16, i32",
		               rt_dtype_name(dt));
	return 0;
}

static int push_leaf(ir_graph *g, ir_opcode op, rt_dtype dt, const ir_shape *s,
                     const char *where, const char *name)
{
	if (check_leaf(g, ir_ops[op].name, dt, s, where) < 0)
		return -1;
	ir_node n = { .op = op, .dtype = dt, .shape = *s,
	              .where = ir_strdup(g, where), .name = ir_strdup(g, name) };
	return ir_push(g, &n);
}

int ir_find_param(const ir_graph *g, const char *name)
{
	for (int i = 0; i < g->nparams; i++)
		if (strcmp(g->nodes[g->params[i]].name, name) == 0)
			return g->params[i];
	return -1;
}

static int find_input(const ir_graph *g, const char *name)
{
	for (int i = 0; i < g->n; i++)
		if (g->nodes[i].op == OP_input && strcmp(g->nodes[i].name, name) == 0)
			return i;
	return -1;
}

int ir_input(ir_graph *g, const char *name, rt_dtype dt, const ir_shape *s,
             const char *where)
{
	if (find_input(g, name) >= 0)
		return ir_fail(g, where, "input", "an input named '%s' exists already", name);
	return push_leaf(g, OP_input, dt, s, where, name);
}

int ir_param(ir_graph *g, const char *name, rt_dtype dt, const ir_shape *s,
             ir_init init, int trainable, const char *where)
{
	if (ir_find_param(g, name) >= 0)
		return ir_fail(g, where, "param", "a parameter named '%s' exists already", name);
	if (init.kind == INIT_COPY) {
		const ir_node *src = init.from >= 0 && init.from < g->n ? &g->nodes[init.from] : NULL;
		if (!src || src->op != OP_param || src->dtype != dt || !ir_shape_eq(&src->shape, s))
			return ir_fail(g, where, "param", "'%s' must copy a parameter of its dtype and shape",
			               name);
	}
	int id = push_leaf(g, OP_param, dt, s, where, name);
	if (id < 0)
		return -1;
	g->nodes[id].a.param.index = g->nparams;
	g->nodes[id].a.param.init = init;
	g->nodes[id].a.param.trainable = trainable;
	g->params = ir_grow(g->params, g->nparams, &g->paramcap, sizeof *g->params);
	g->params[g->nparams++] = id;
	return id;
}

int ir_fill(ir_graph *g, double value, rt_dtype dt, const ir_shape *s,
            const char *where)
{
	int id = push_leaf(g, OP_fill, dt, s, where, NULL);
	if (id >= 0)
		g->nodes[id].a.fill.value = value;
	return id;
}

/* Values arrive as doubles (Lua numbers) and are rounded once to dt. */
int ir_constant(ir_graph *g, const double *values, rt_dtype dt,
                const ir_shape *s, const char *where)
{
	int id = push_leaf(g, OP_constant, dt, s, where, NULL);
	if (id < 0)
		return -1;
	int64_t n = ir_numel(s);
	void *data = ir_alloc(g, (size_t)n * rt_dtype_size(dt));
	for (int64_t i = 0; i < n; i++)
		rt_store(dt, data, i, values[i]);
	g->nodes[id].data = data;
	return id;
}

static int cmp_binding(const void *a, const void *b)
{
	return strcmp(((const ir_binding *)a)->name, ((const ir_binding *)b)->name);
}

static ir_binding *copy_bindings(ir_graph *g, const ir_binding *b, int n)
{
	ir_binding *c = ir_alloc(g, (size_t)(n ? n : 1) * sizeof *c);
	for (int i = 0; i < n; i++)
		c[i] = (ir_binding){ ir_strdup(g, b[i].name), b[i].node };
	qsort(c, (size_t)n, sizeof *c, cmp_binding);
	return c;
}

/* An update must overwrite a param with a value of the same type. */
static int check_update(ir_graph *g, const char *where, const ir_binding *u)
{
	int p = ir_find_param(g, u->name);
	char sa[128], sb[128];
	if (p < 0)
		return ir_fail(g, where, "entry", "update of '%s', which is not a parameter", u->name);
	const ir_node *pn = &g->nodes[p], *vn = &g->nodes[u->node];
	if (!ir_shape_eq(&pn->shape, &vn->shape) || pn->dtype != vn->dtype)
		return ir_fail(g, where, "entry", "update of '%s' %s %s with a %s %s value",
		               u->name, rt_dtype_name(pn->dtype), ir_shape_str(&pn->shape, sa, sizeof sa),
		               rt_dtype_name(vn->dtype), ir_shape_str(&vn->shape, sb, sizeof sb));
	return 0;
}

int ir_entry_add(ir_graph *g, const char *name, const ir_binding *outputs,
                 int noutputs, const ir_binding *updates, int nupdates, const char *where)
{
	if (ir_entry_find(g, name))
		return ir_fail(g, where, "entry", "an entry named '%s' exists already", name);
	for (int i = 0; i < noutputs + nupdates; i++) {
		int node = i < noutputs ? outputs[i].node : updates[i - noutputs].node;
		if (node < 0 || node >= g->n)
			return ir_fail(g, where, "entry", "output %d of '%s' is not a node", i, name);
	}
	for (int i = 0; i < nupdates; i++)
		if (check_update(g, where, &updates[i]) < 0)
			return -1;
	g->entries = ir_grow(g->entries, g->nentries, &g->entrycap, sizeof *g->entries);
	g->entries[g->nentries++] = (ir_entry){
		ir_strdup(g, name), copy_bindings(g, outputs, noutputs), noutputs,
		copy_bindings(g, updates, nupdates), nupdates };
	return g->nentries - 1;
}

const ir_entry *ir_entry_find(const ir_graph *g, const char *name)
{
	for (int i = 0; i < g->nentries; i++)
		if (strcmp(g->entries[i].name, name) == 0)
			return &g->entries[i];
	return NULL;
}

/* Walks backwards from the roots; ids are topological, so one sweep from the
 * highest id down marks every producer of a live node. */
char *ir_entry_live(const ir_graph *g, const ir_entry *e)
{
	char *live = calloc((size_t)g->n + 1, 1);
	if (!live)
		die_oom();
	for (int i = 0; i < e->noutputs; i++)
		live[e->outputs[i].node] = 1;
	for (int i = 0; i < e->nupdates; i++)
		live[e->updates[i].node] = 1;
	for (int id = g->n - 1; id >= 0; id--)
		if (live[id])
			for (int k = 0; k < g->nodes[id].nin; k++)
				live[g->nodes[id].in[k]] = 1;
	return live;
}
