/* cl_source.c: the OpenCL source and the launches (cl_render.h): each
 * kernel's launch rendered with its variants (cl_render.c), the distinct
 * launches written once, in parts of about part_bytes (every launch's
 * first choice first, then the other variants in parts of their own, so
 * that an open which launches only the choices builds only their parts),
 * and each kernel's launch: its shared launch's variants, its own
 * arguments. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cl_kernel.h"

/* The OpenCL name of kernel `name` of entry `entry` with a variant's
 * suffix: e<entry>_<name><suffix>, what is not a letter or digit as _. */
static void kernel_name(char *out, size_t len, int entry, const char *name, const char *suffix)
{
	snprintf(out, len, "e%d_%s%s", entry, name, suffix);
	for (char *c = out; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9')))
			*c = '_';
}

/* A kernel's launch as rendered, and the first kernel rendered so, which
 * names it. Kernels whose launches render the same (a layer shape again,
 * the forward pass in every entry) share one: they differ only in the
 * arguments they are given. */
typedef struct {
	cl_kernel_text r;
	int entry;
	const kir_kernel *k;
	uint64_t hash;          /* of the text and the NDRanges */
} rendered_launch;

static uint64_t launch_hash(const cl_kernel_text *r)
{
	uint64_t h = RT_FNV1A_START;
	for (int j = 0; j < r->nv; j++) {
		int64_t size[2] = { r->v[j].global, r->v[j].local };
		h = rt_fnv1a(h, size, sizeof size);
	}
	return rt_fnv1a(h, r->text.p, r->text.len);
}

static int same_launch(const rendered_launch *x, const rendered_launch *y)
{
	const cl_kernel_text *a = &x->r, *b = &y->r;
	if (x->hash != y->hash || a->nv != b->nv || a->text.len != b->text.len)
		return 0;
	for (int j = 0; j < a->nv; j++)
		if (a->at[j + 1] != b->at[j + 1] || a->v[j].global != b->v[j].global ||
		    a->v[j].local != b->v[j].local)
			return 0;
	return !memcmp(a->text.p, b->text.p, a->text.len);
}

/* The distinct launches, in the order first rendered, and an index of
 * them by hash (open addressing; cap a power of two, at least twice
 * their number). */
typedef struct {
	rendered_launch *u;
	int n;
	int *slot;              /* index into u, or -1 */
	size_t cap;
} launch_set;

/* The index of launch *c in s: an equal one's (c is freed), or c's, moved
 * in; -1 when out of memory. */
static int intern(launch_set *s, rendered_launch *c)
{
	size_t i = c->hash & (s->cap - 1);
	for (; s->slot[i] >= 0; i = (i + 1) & (s->cap - 1))
		if (same_launch(&s->u[s->slot[i]], c)) {
			rt_sb_free(&c->r.text);
			return s->slot[i];
		}
	s->u[s->n] = *c;
	return s->slot[i] = s->n++;
}

/* The source's parts as they are written. */
typedef struct {
	rt_strbuf *src;
	const cl_target *t;
	int part;               /* the open part; -1 before the first */
	size_t start;           /* where it starts in src */
	int closed;             /* the next kernel opens a new part, however full this one */
} part_writer;

/* Opens the first part, or a new one once the open part has
 * t->part_bytes of source or is closed; returns the part the next
 * kernel goes in. */
static int next_part(part_writer *w)
{
	if (w->part >= 0 && !w->closed && (int64_t)(w->src->len - w->start) < w->t->part_bytes)
		return w->part;
	w->closed = 0;
	if (w->part >= 0)
		rt_sb_printf(w->src, "\n#endif /* DDPMC_PART_%d */\n", w->part);
	rt_sb_printf(w->src, "\n#ifdef DDPMC_PART_%d\n", ++w->part);
	w->start = w->src->len;
	return w->part;
}

/* Variant j of launch u into the next part, named after u's first kernel. */
static void write_variant(part_writer *w, rendered_launch *u, int j)
{
	cl_kernel_text *r = &u->r;
	cl_variant *v = &r->v[j];
	char name[sizeof v->name];
	kernel_name(name, sizeof name, u->entry, u->k->name, r->suffix[j]);
	memcpy(v->name, name, sizeof name);
	v->part = next_part(w);
	rt_sb_printf(w->src, "\n/* %s: %s */\n__kernel void %s", u->k->name, u->k->ops ? u->k->ops : "", name);
	rt_sb_put(w->src, r->text.p + r->at[j], r->at[j + 1] - r->at[j]);
}

/* The source of the distinct launches: every v[0] first, then the
 * alternatives in parts of their own; a variant without source of its
 * own (another work-group size) launches v[0]'s kernel. */
static void write_launches(part_writer *w, kir_program **progs, launch_set *s)
{
	for (int i = 0; i < s->n; i++) {
		if (!i || s->u[i].entry != s->u[i - 1].entry)
			rt_sb_printf(w->src, "\n/* entry %d: %s */\n", s->u[i].entry, progs[s->u[i].entry]->entry);
		write_variant(w, &s->u[i], 0);
	}
	w->closed = 1;
	for (int i = 0; i < s->n; i++) {
		cl_kernel_text *r = &s->u[i].r;
		for (int j = 1; j < r->nv; j++)
			if (r->at[j] < r->at[j + 1]) {
				write_variant(w, &s->u[i], j);
			} else {
				memcpy(r->v[j].name, r->v[0].name, sizeof r->v[j].name);
				r->v[j].part = r->v[0].part;
			}
	}
	if (w->part >= 0)
		rt_sb_printf(w->src, "\n#endif /* DDPMC_PART_%d */\n", w->part);
}

/* Launch l of kernel k: its arguments (kir_set_args) and shared launch u's
 * variants. */
static int set_launch(cl_launch *l, const kir_kernel *k, const rendered_launch *u)
{
	memcpy(l->v, u->r.v, sizeof l->v);
	l->nv = u->r.nv;
	l->nargs = k->narg;
	l->args = malloc(((size_t)k->narg + 1) * sizeof *l->args);
	if (l->args)
		memcpy(l->args, k->arg, (size_t)k->narg * sizeof *l->args);
	return l->args ? 0 : -1;
}

static int total_kernels(kir_program **progs, int n)
{
	int total = 0;
	for (int e = 0; e < n; e++)
		total += progs[e]->nk;
	return total;
}

static void launch_set_free(launch_set *s)
{
	for (int i = 0; i < s->n; i++)
		rt_sb_free(&s->u[i].r.text);
	free(s->u);
	free(s->slot);
}

cl_launch **cl_render(kir_program **progs, int n, const cl_target *t, rt_strbuf *src)
{
	int total = total_kernels(progs, n), *shared = malloc(((size_t)total + 1) * sizeof *shared), at = 0;
	launch_set s = { calloc((size_t)total + 1, sizeof *s.u), 0, NULL, 16 };
	cl_launch **l = calloc((size_t)n + 1, sizeof *l);
	part_writer w = { src, t ? t : &cl_target_default, -1, 0, 0 };
	while (s.cap < 2 * (size_t)total)
		s.cap *= 2;
	s.slot = malloc(s.cap * sizeof *s.slot);
	int rc = l && shared && s.u && s.slot ? 0 : -1;
	for (size_t i = 0; rc == 0 && i < s.cap; i++)
		s.slot[i] = -1;
	for (int e = 0; e < n && rc == 0; e++)
		for (int i = 0; rc == 0 && i < progs[e]->nk; i++) {
			rendered_launch c = { .entry = e, .k = &progs[e]->k[i] };
			kir_set_args(&progs[e]->k[i]);
			rc = cl_render_kernel(progs[e], c.k, w.t, &c.r);
			if (rc == 0) {
				c.hash = launch_hash(&c.r);
				shared[at++] = intern(&s, &c);
			} else {
				rt_sb_free(&c.r.text);
			}
		}
	if (rc == 0) {
		cl_put_prelude(src);
		write_launches(&w, progs, &s);
	}
	at = 0;
	for (int e = 0; e < n && rc == 0; e++) {
		rc = (l[e] = calloc((size_t)progs[e]->nk + 1, sizeof **l)) ? 0 : -1;
		for (int i = 0; rc == 0 && i < progs[e]->nk; i++)
			rc = set_launch(&l[e][i], &progs[e]->k[i], &s.u[shared[at++]]);
	}
	launch_set_free(&s);
	free(shared);
	if (rc == 0)
		return l;
	cl_launches_free(l, progs, n);
	return NULL;
}

void cl_launches_free(cl_launch **l, kir_program **progs, int n)
{
	for (int e = 0; l && e < n; e++) {
		for (int i = 0; l[e] && i < progs[e]->nk; i++)
			free(l[e][i].args);
		free(l[e]);
	}
	free(l);
}

static void put_variant(rt_strbuf *b, const cl_variant *v)
{
	rt_sb_printf(b, "\"name\": \"%s\", \"part\": %d, \"global\": %lld, \"local\": %lld", v->name, v->part,
	             (long long)v->global, (long long)v->local);
	if (v->scratch)
		rt_sb_printf(b, ", \"scratch\": %lld", (long long)v->scratch);
}

void cl_launch_json(rt_strbuf *b, const cl_launch *l)
{
	rt_sb_puts(b, "\"cl\": {");
	put_variant(b, &l->v[0]);
	rt_sb_puts(b, ", \"args\": [");
	for (int i = 0; i < l->nargs; i++)
		rt_sb_printf(b, "%s%d", i ? ", " : "", l->args[i]);
	rt_sb_puts(b, "]");
	for (int j = 1; j < l->nv; j++) {
		rt_sb_puts(b, j == 1 ? ", \"alts\": [{" : ", {");
		put_variant(b, &l->v[j]);
		rt_sb_puts(b, j + 1 < l->nv ? "}" : "}]");
	}
	rt_sb_puts(b, "}");
}
