/* lower: graph entry -> kernel program (fusion, scheduling, memory plan).
 * This file decides which nodes get kernels and builds them in order; the
 * values inlined into a kernel, convolutions and the entry's roots are in
 * lower_fuse.c, lower_conv.c and lower_roots.c (lower_impl.h).
 *
 * requires: a verified graph and one of its entries.
 * establishes: one kernel per materialized node, in node order (a
 *   topological order), preceded by the side kernels it reads (a
 *   convolution's operand laid out for it, a convolution computed
 *   channels-last, a weight gradient's partial sums: see
 *   lower_conv.c); every other node the entry needs is inlined into
 *   the kernels that use it; state updates write their param in place when
 *   that is safe, else through a temporary and a copy kernel at the end;
 *   temporaries get arena offsets by liveness (first fit).
 *
 * Fusion rule. A node is materialized (gets a buffer and a kernel) when it
 * is a leaf with data (param, input, constant), an entry root, used by more
 * than one node (unless each user can recompute it with at most two cheap
 * arithmetic ops from buffers; a scalar computed by arithmetic is stored
 * once, not recomputed at every point of every user), or when inlining it
 * is impossible or wasteful:
 *   - a reduction or contraction inlines into its consumer only as that
 *     kernel's one reduction, read at the kernel's own index (an epilogue:
 *     bias, residual add, activation, casts after a conv or a sum);
 *   - inside a contraction's operands only index remaps (movement ops) and
 *     casts inline; arithmetic there would be recomputed for every output;
 *   - a concat read by a reduction or contraction (a U-Net's skip
 *     connection before GroupNorm and the shortcut convolution) is stored:
 *     its select per element would run in the inner loop, over two loads
 *     (a sum over a concat of flattened tensors is a joint reduction
 *     instead, see joint_reduction in lower_fuse.c).
 * Everything else elementwise or movement inlines: elementwise chains fuse
 * with each other, into reduction inputs and into contraction epilogues.
 * Conflicts found while building a kernel mark the node and rebuild.
 * Under a limit of buffers a kernel (kir_target.max_args: OpenCL's
 * arguments), a kernel built over it is a conflict too: its fused node
 * that read the most buffers (fewer than the limit, or a concat) is
 * stored, else a joint reduction's sum before its epilogue; a side
 * kernel (a convolution's) counts its own; a stored concat is built in
 * parts, as many inputs to a kernel as fit (build_kernel). */
#include <stdlib.h>
#include <string.h>

#include "lower_impl.h"

static double kernel_bytes(const kir_program *p, const kir_kernel *k)
{
	double bytes = 0;
	char seen[4096] = { 0 };
	for (int i = 0; i < k->nx; i++)
		if (k->x[i].kind == KX_LOAD && k->x[i].buf < 4096 && !seen[k->x[i].buf]) {
			seen[k->x[i].buf] = 1;
			bytes += (double)p->buf[k->x[i].buf].numel * (double)rt_dtype_size(p->buf[k->x[i].buf].dtype);
		}
	for (int s = 0; s < k->nst; s++)
		bytes += (double)p->buf[k->st[s].buf].numel * (double)rt_dtype_size(p->buf[k->st[s].buf].dtype);
	return bytes;
}

/* FLOPs: one per arithmetic expression per point it runs at (the
 * reduction body per reduction point), multiply-adds as two; a kernel of
 * segments, its segments'. */
static double kernel_flops(const kir_kernel *k)
{
	if (k->nseg) {
		double flops = 0;
		for (int s = 0; s < k->nseg; s++) {
			kir_kernel v = kir_segment_view(k, s);
			flops += kernel_flops(&v);
		}
		return flops;
	}
	double outer = 1, inner = 1, per_inner = 0, per_outer = 0;
	for (int v = 0; v < k->rank; v++)
		outer *= (double)k->ext[v];
	for (int v = k->rank; v < k->rank + k->nred; v++)
		inner *= (double)k->ext[v];
	char *in_body = calloc((size_t)k->nx + 1, 1), *used = calloc((size_t)k->nx + 1, 1);
	kir_mark_used(k, used);
	for (int j = 0; j < k->nacc; j++)
		in_body[k->red_value[j]] = 1;
	for (int s = 0; s < k->nst; s++)
		in_body[k->st[s].value] |= k->st[s].inner > 0;
	for (int i = k->nx - 1; i >= 0; i--) {
		const kir_expr *e = &k->x[i];
		for (int j = 0; j < 3 && used[i]; j++)
			if ((&e->a)[j] >= 0)
				in_body[(&e->a)[j]] |= in_body[i];
		if (used[i] && e->kind == KX_OP && e->type == KT_F32)
			*(in_body[i] ? &per_inner : &per_outer) += 1;
	}
	free(in_body);
	free(used);
	return outer * (per_outer + inner * (per_inner + k->nacc));
}

/* Whether node c is a convolution whose result is computed channels-last
 * (channels_last_conv, or Winograd's output transform). */
static int conv_channels_last(lower *L, int id)
{
	const ir_node *c = N(L, id);
	layout glay;
	return (c->op == OP_conv2d || c->op == OP_conv2d_grad_input) && L->live[id] &&
	       (lower_channels_in_vectors(L, c, &glay) || lower_winograd_algorithm(L, c) != KIR_ALGO_DIRECT);
}

/* 1 when the kernel of `root` will read a convolution computed
 * channels-last: the root itself, or one that fuses into it (sink root,
 * not materialized). The nodes that sink to root are those reached from
 * it through inputs that sink to root, so a walk over those finds them
 * without a scan of the graph per kernel (each node once: walked[]). */
static int reads_channels_last(lower *L, int root)
{
	int n = 0, cap = 0, *stack = NULL, found = conv_channels_last(L, root), walk = ++L->walks;
	stack = ir_grow(stack, n, &cap, sizeof *stack);
	stack[n++] = root;
	while (n > 0 && !found) {
		const ir_node *c = N(L, stack[--n]);
		for (int k = 0; k < c->nin && !found; k++) {
			int in = c->in[k];
			if (L->sink[in] != root || in == root || L->walked[in] == walk)
				continue;
			L->walked[in] = walk;
			found = !L->mat[in] && conv_channels_last(L, in);
			stack = ir_grow(stack, n, &cap, sizeof *stack);
			stack[n++] = in;
		}
	}
	free(stack);
	return found;
}

/* The order of the root's dims as kernel vars (schedule_domain_order). */
static void domain_order(lower *L, int root, int *order)
{
	const ir_node *n = N(L, root);
	int transposing = n->shape.rank == 4 && reads_channels_last(L, root);
	schedule_domain_order(n->op, n->shape.rank, transposing, order);
}

int lower_widest_fused(lower *L, int most)
{
	int node = -1, reads = 1;
	for (int m = 0; m < L->nmemo; m++) {
		const memo *e = &L->memo[m];
		if (e->reads > reads && (e->reads < most || N(L, e->node)->op == OP_concat))
			node = e->node, reads = e->reads;
	}
	return node;
}

enum { BUILT = 0, CONFLICT = -1, OVER_BUDGET = 1 };

/* Builds the kernel storing node `root` into its buffer: BUILT, or
 * CONFLICT (L->conflict names the node to materialize). A concat root
 * in parts (end > 0) stores inputs [first, end), from `offset` along its
 * axis; OVER_BUDGET when that kernel takes *reads buffers, more than a
 * kernel may. A kernel of one part over the budget materializes its
 * widest fused node (a CONFLICT) where that helps. */
static int build_part(lower *L, int root, int first, int end, int64_t offset, int *reads)
{
	const ir_node *n = N(L, root);
	kir_kernel k = { 0 };
	int order[IR_MAXDIM], ax = n->op == OP_concat ? n->a.concat.axis : -1;
	int64_t part = 0;
	for (int i = first; i < end; i++)
		part += N(L, n->in[i])->shape.d[ax];
	domain_order(L, root, order);
	k.rank = n->shape.rank;
	for (int v = 0; v < k.rank; v++)
		k.ext[v] = end > 0 && order[v] == ax ? part : n->shape.d[order[v]];
	L->k = &k;
	L->root = root;
	L->red_node = -1;
	L->in_contraction = L->in_reduction = 0;
	L->conflict = -1;
	L->joined = -1;
	L->part_first = first, L->part_end = end;
	L->depth = 0;
	L->nmemo = 0;
	L->ops[0] = 0;
	L->mark++, L->nread = L->scanned = 0;
	int idx[IR_MAXDIM], at[IR_MAXDIM];
	for (int v = 0; v < k.rank; v++)       /* a dim of size 1 is index 0, as a broadcast reads it */
		idx[order[v]] = L->dim_var[order[v]] = k.ext[v] == 1 ? I(L, 0) : kir_var(&k, v);
	int v = lower_compute_value(L, root, idx);
	memcpy(at, idx, sizeof at);
	if (ax >= 0)
		at[ax] = lower_iop(L, OP_add, idx[ax], I(L, offset));
	kir_store_add(&k, L->buf_of[root], lower_linearize(L, at, &n->shape), v);
	/* its buffers; a joint reduction's, those of the last kernel split_args parts it into */
	*reads = k.nseg ? kir_joint_last_buffers(&k, L->p->nbuf) : lower_buffers(L) + 1;
	if (L->conflict < 0 && L->budget && *reads > L->budget) {
		if (end - first > 1) {
			kir_kernel_free(&k);
			return OVER_BUDGET;
		}
		L->conflict = lower_widest_fused(L, L->budget);
		/* Every node of a joint reduction's epilogue counts the buffers
		 * its segments read: where none is narrow enough, the sum is
		 * stored and its epilogue made a kernel of its own. */
		if (L->conflict < 0 && k.nseg && L->red_node >= 0 && L->red_node != root)
			L->conflict = L->red_node;
	}
	if (L->conflict >= 0) {
		kir_kernel_free(&k);
		return CONFLICT;
	}
	for (int i = 0; i < k.rank + k.nred; i++)
		k.tile_hint[i] = 0;
	if (L->red_node >= 0 && (ir_ops[N(L, L->red_node)->op].flags & CONTRACT))
		for (int r = 0; r < k.rank; r++)
			k.tile_hint[r] = 1;
	lower_append_kernel(L, &k, ir_ops[n->op].name, L->ops[0] ? L->ops : ir_ops[n->op].name);
	return BUILT;
}

/* Builds the kernels storing node `root`: BUILT or CONFLICT. Under a
 * budget of buffers a concat is built in parts, as many inputs to each
 * as its kernel may read (a concat of 130 tensors on OpenCL: two). */
static int build_kernel(lower *L, int root)
{
	const ir_node *n = N(L, root);
	int reads;
	if (n->op != OP_concat || !L->budget)
		return build_part(L, root, 0, 0, 0, &reads);
	int64_t offset = 0;
	for (int first = 0, count; first < n->nin; first += count) {
		int built;
		count = n->nin - first;
		while ((built = build_part(L, root, first, first + count, offset, &reads)) == OVER_BUDGET) {
			int fit = (int)((int64_t)count * (L->budget - 1) / reads);
			count = fit < 1 ? 1 : fit < count ? fit : count - 1;
		}
		if (built == CONFLICT)
			return CONFLICT;
		for (int i = first; i < first + count; i++)
			offset += N(L, n->in[i])->shape.d[n->a.concat.axis];
	}
	return BUILT;
}

int lower_add_buffer(lower *L, kir_bufkind kind, const ir_node *n, const char *name)
{
	kir_program *p = L->p;
	p->buf = ir_grow(p->buf, p->nbuf, &p->bufcap, sizeof *p->buf);
	p->buf[p->nbuf] = (kir_buffer){ kind, n->dtype, ir_numel(&n->shape), ir_strdup(L->g, name), 0,
	                                n->data, n->shape };
	return p->nbuf++;
}

int lower_param_buffer(lower *L, const char *name)
{
	for (int b = 0; b < L->p->nbuf; b++)
		if (L->p->buf[b].kind == KB_PARAM && !strcmp(L->p->buf[b].name, name))
			return b;
	int node = ir_find_param(L->g, name);
	return lower_add_buffer(L, KB_PARAM, N(L, node), name);
}

const char *lower_output_name(lower *L, int node)
{
	for (int i = 0; i < L->e->noutputs; i++)
		if (L->e->outputs[i].node == node)
			return L->e->outputs[i].name;
	return NULL;
}

/* The buffer of materialized node id: its data for leaves, else an output
 * or a temporary. */
static void assign_buffer(lower *L, int id)
{
	const ir_node *n = N(L, id);
	if (n->op == OP_param)
		L->buf_of[id] = lower_param_buffer(L, n->name);
	else if (n->op == OP_input)
		L->buf_of[id] = lower_add_buffer(L, KB_INPUT, n, n->name);
	else if (n->op == OP_constant)
		L->buf_of[id] = lower_add_buffer(L, KB_CONST, n, NULL);
	else if (lower_output_name(L, id))
		L->buf_of[id] = lower_add_buffer(L, KB_OUTPUT, n, lower_output_name(L, id));
	else
		L->buf_of[id] = lower_add_buffer(L, KB_TEMP, n, NULL);
}

/* uses[], bound[], spread[] and maxed[] of the entry's live nodes. A node
 * is spread when an elementwise or broadcast node with SPREAD times its
 * values or more reads it: each of its values is read many times over. */
enum { SPREAD = 8 };

static void count_uses(lower *L)
{
	for (int id = 0; id < L->g->n; id++)
		if (L->live[id])
			for (int k = 0; k < N(L, id)->nin; k++) {
				const ir_node *n = N(L, id), *in = N(L, n->in[k]);
				L->uses[n->in[k]]++;
				L->maxed[n->in[k]] |= n->op == OP_reduce_max;
				if (((ir_ops[n->op].flags & ELEMWISE) || n->op == OP_broadcast) &&
				    ir_numel(&n->shape) >= SPREAD * ir_numel(&in->shape))
					L->spread[n->in[k]] = 1;
			}
	for (int i = 0; i < L->e->noutputs; i++)
		L->uses[L->e->outputs[i].node] += 2, L->bound[L->e->outputs[i].node] = 1;
	for (int i = 0; i < L->e->nupdates; i++)
		L->uses[L->e->updates[i].node] += 2, L->bound[L->e->updates[i].node] = 1;
}

/* Ops that fuse into their consumer's kernel as index math or arithmetic. */
static int fusable(const ir_node *n)
{
	return (ir_ops[n->op].flags & (ELEMWISE | MOVE)) || n->op == OP_gather;
}

/* sink[id]: the node whose kernel id's value ends up in, following single
 * fusable consumers (id itself when it is a root, used by a non-fusable op,
 * or by several nodes that do not all sink to the same place). */
static int *sinks(lower *L)
{
	int n = L->g->n;
	int *sink = malloc((size_t)n * sizeof *sink), *first = malloc((size_t)n * sizeof *first);
	for (int id = 0; id < n; id++)
		sink[id] = -2, first[id] = -1;      /* -2: no consumer seen yet */
	for (int id = n - 1; id >= 0; id--) {
		if (!L->live[id])
			continue;
		if (sink[id] == -2 || L->bound[id])
			sink[id] = id;
		for (int k = 0; k < N(L, id)->nin; k++) {
			int in = N(L, id)->in[k];
			int via = fusable(N(L, id)) ? sink[id] : -1;
			sink[in] = sink[in] == -2 ? (via >= 0 ? via : in) : sink[in] == via ? via : in;
		}
	}
	free(first);
	return sink;
}

/* Whether single-use node c, fused on its way to sink, may still get a
 * kernel of its own (mark): bound, spread or already forced. */
static int may_be_root(lower *L, int c, int sink)
{
	return c == sink || L->bound[c] || L->spread[c] || L->forced[c];
}

/* Marks forced the single-use reductions and contractions that no kernel
 * on their way to their sink could take as its epilogue: the sink is an
 * entry's output or update (so surely a kernel's root; an unbound one may
 * be fused into a contraction's operands, and a node before it be stored
 * instead) and every node on the way that may be a kernel's root has
 * another shape (a bias gradient's (1, C, 1, 1) sum read as (C) by a
 * gradient accumulation). Building would find each such conflict only at
 * that kernel, often thousands of nodes later, and rebuild everything
 * between (build_all): models/unet.lua rebuilt 362,000 nodes of 41,776.
 * Forced up front, the kernels are the same. */
static void force_unfusable_reductions(lower *L)
{
	int n = L->g->n, *consumer = malloc((size_t)n * sizeof *consumer);
	for (int id = 0; id < n; id++)
		consumer[id] = -1;
	for (int id = 0; id < n; id++)
		for (int k = 0; L->live[id] && k < N(L, id)->nin; k++)
			consumer[N(L, id)->in[k]] = id;
	for (int id = 0; id < n; id++) {
		const ir_node *r = N(L, id);
		int reduction = (ir_ops[r->op].flags & (REDUCE | CONTRACT)) || r->op == OP_scatter_add;
		int sink = L->sink[id], c = consumer[id];
		if (!L->live[id] || !reduction || L->uses[id] != 1 || sink == id || !L->bound[sink])
			continue;
		while (c >= 0 && c != sink && L->uses[c] == 1 &&
		       !(may_be_root(L, c, sink) && lower_fuses_into(&r->shape, &N(L, c)->shape)))
			c = consumer[c];
		if (c == sink && !lower_fuses_into(&r->shape, &N(L, c)->shape))
			L->forced[id] = 1;
	}
	free(consumer);
}

/* Recomputing a multi-use node in each consumer costs nothing worth a
 * buffer when it is at most REPEAT_MAX cheap arithmetic ops over buffers,
 * fills and movement: say GroupNorm's output (x - mean) * rstd * w + b,
 * from x and the stored mean and rstd (spread nodes, below). Its consumers
 * are memory-bound, and a buffer of it would live from the forward pass to
 * the backward: with 2 instead of 4, models/unet.lua's train step at batch
 * 64 kept GroupNorm's normalized x and its output too, a 1635 MB arena
 * instead of 1439 MB, and ran slower. */
enum { REPEAT_MAX = 4, REPEAT_DEPTH = 6, TOO_MUCH = 1000 };

static int repeat_cost(lower *L, int id, int depth)
{
	const ir_node *n = N(L, id);
	if (depth > REPEAT_DEPTH || !fusable(n) || n->op == OP_gather ||
	    (ir_ops[n->op].flags & TRANSC))
		return TOO_MUCH;
	int cost = (ir_ops[n->op].flags & ELEMWISE) != 0;
	for (int k = 0; k < n->nin && cost <= REPEAT_MAX; k++) {
		int in = n->in[k];
		if (!L->mat[in] && N(L, in)->op != OP_fill)
			cost += repeat_cost(L, in, depth + 1);
	}
	return cost;
}

/* A node gets its own buffer when it holds data, is a root, was found to
 * need one while building a kernel (forced), is arithmetic spread over a
 * larger node (GroupNorm's mean and rstd per group: stored once, not
 * recomputed for every value of the group; a scalar is not: it stays one
 * register in its users, as the optimizer's batch needs), or is used by several nodes
 * that do not all fuse into one kernel and cannot simply be recomputed.
 * A max reduction's operand computed by arithmetic and read elsewhere too
 * (its gradient compares it with the maximum: autodiff's eq) is never
 * recomputed: a backend may contract a * b + c to an FMA in one kernel and
 * not in the other (the kernel IR allows either), and a value rounded
 * differently from the one the maximum took is never equal to it: its
 * gradient was lost (test_llvm's random graphs found it). */
static void mark(lower *L, int id)
{
	const ir_node *n = N(L, id);
	int data_leaf = n->op == OP_param || n->op == OP_input || n->op == OP_constant;
	int scalar_math = (ir_ops[n->op].flags & ELEMWISE) && n->shape.rank == 0;
	int spread_math = (ir_ops[n->op].flags & ELEMWISE) && n->shape.rank > 0 && L->spread[id];
	int shared = L->uses[id] > 1 && n->op != OP_fill && L->sink[id] == id;
	if (shared && !scalar_math) {
		int repeat = repeat_cost(L, id, 0);
		shared = repeat > REPEAT_MAX || (L->maxed[id] && repeat > 0);
	}
	L->mat[id] = L->live[id] && (data_leaf || shared || spread_math || L->forced[id] || L->bound[id]);
}

static void drop_kernels_from(kir_program *p, int first)
{
	for (int i = first; i < p->nk; i++)
		kir_kernel_free(&p->k[i]);
	p->nk = first;
}

/* Builds every kernel in node order. A conflict at node c (it must be
 * materialized after all) only invalidates what was built from c on: those
 * kernels and buffers are dropped, the nodes after c are marked again (a
 * node may now be cheap to recompute from c's buffer) and building resumes
 * at c. */
static void build_all(lower *L)
{
	int *kernels_at = malloc((size_t)L->g->n * sizeof *kernels_at);
	int *buffers_at = malloc((size_t)L->g->n * sizeof *buffers_at);
	for (int id = 0; id < L->g->n; id++) {
		const ir_node *n = N(L, id);
		kernels_at[id] = L->p->nk;
		buffers_at[id] = L->p->nbuf;
		L->buf_of[id] = -1;
		if (!L->live[id] || !L->mat[id])
			continue;
		assign_buffer(L, id);
		int data_leaf = (ir_ops[n->op].flags & LEAF) && n->op != OP_fill;
		if (data_leaf || build_kernel(L, id) == 0)
			continue;
		int c = L->conflict;
		L->p->rebuilt += id - c;
		L->forced[c] = 1;
		for (int t = c; t < L->g->n; t++)
			mark(L, t);
		drop_kernels_from(L->p, kernels_at[c]);
		L->p->nbuf = buffers_at[c];
		struct relaid_set *rs = L->relaid;
		while (rs->n > 0 && rs->v[rs->n - 1].buf >= L->p->nbuf)
			rs->n--;
		id = c - 1;
	}
	free(kernels_at);
	free(buffers_at);
}
void lower_append_kernel(lower *L, kir_kernel *k, const char *kind, const char *ops)
{
	char name[64];
	snprintf(name, sizeof name, "k%d_%s", L->p->nk, kind);
	k->name = ir_strdup(L->g, name);
	k->ops = ir_strdup(L->g, ops);
	kir_drop_index(k);
	L->p->k = ir_grow(L->p->k, L->p->nk, &L->p->kcap, sizeof *L->p->k);
	L->p->k[L->p->nk++] = *k;
}

kir_program *kir_lower(ir_graph *g, const ir_entry *e, const kir_target *t)
{
	kir_program *p = ir_alloc(g, sizeof *p);
	lower L = { .g = g, .e = e, .target = t, .p = p, .live = ir_entry_live(g, e),
	            .uses = calloc((size_t)g->n + 1, sizeof(int)), .bound = calloc((size_t)g->n + 1, 1),
	            .spread = calloc((size_t)g->n + 1, 1),
	            .maxed = calloc((size_t)g->n + 1, 1),
	            .mat = calloc((size_t)g->n + 1, 1),
	            .forced = calloc((size_t)g->n + 1, 1),
	            .buf_of = calloc((size_t)g->n + 1, sizeof(int)),
	            .walked = calloc((size_t)g->n + 1, sizeof(int)),
	            .relaid = &(struct relaid_set){ 0 }, .budget = t->max_args };
	p->entry = e->name;
	p->g = g;
	count_uses(&L);
	L.sink = sinks(&L);
	force_unfusable_reductions(&L);
	for (int id = 0; id < g->n; id++)
		mark(&L, id);
	build_all(&L);
	lower_plan_roots(&L);
	kir_merge(p, t->max_args);
	kir_split_args(p, t->max_args);
	kir_plan_memory(p);
	for (int n = 0; n < p->nk; n++) {
		p->k[n].bytes = kernel_bytes(p, &p->k[n]);
		p->k[n].flops = kernel_flops(&p->k[n]);
	}
	free(L.live);
	free(L.uses);
	free(L.bound);
	free(L.spread);
	free(L.maxed);
	free(L.mat);
	free(L.forced);
	free(L.sink);
	free(L.buf_of);
	free(L.walked);
	free(L.relaid->v);
	free(L.memo);
	free(L.read_mark);
	return p;
}