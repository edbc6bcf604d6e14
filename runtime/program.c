/* program.c: the embedded program descriptor (JSON) -> rt_program.
 * Every check names where it failed as a JSON path ("entries[1].buffers[4]")
 * so that a compiler bug shows up as one precise line, not a crash later. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exec.h"
#include "program.h"

typedef struct {
	char *err;
	size_t errlen;
} parser;

static int bad(parser *ps, const char *where, const char *fmt, ...)
{
	char msg[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	snprintf(ps->err, ps->errlen, "program: %s: %s", where, msg);
	return RT_ERR;
}

/* --- typed member access ------------------------------------------------ */

static int get_str(parser *ps, const rt_json *o, const char *key, const char *where,
                   const char **out)
{
	const rt_json *v = rt_json_get(o, key);
	if (!v || v->type != RT_JSTR)
		return bad(ps, where, "'%s' must be a string", key);
	*out = v->str;
	return RT_OK;
}

static int get_int(parser *ps, const rt_json *o, const char *key, const char *where,
                   int64_t lo, int64_t *out)
{
	const rt_json *v = rt_json_get(o, key);
	if (!v || v->type != RT_JNUM || !v->isint || v->i < lo)
		return bad(ps, where, "'%s' must be an integer >= %lld", key, (long long)lo);
	*out = v->i;
	return RT_OK;
}

/* An optional number (default dflt). */
static int get_num(parser *ps, const rt_json *o, const char *key, const char *where,
                   double dflt, double *out)
{
	const rt_json *v = rt_json_get(o, key);
	*out = dflt;
	if (!v || v->type == RT_JNULL)
		return RT_OK;
	if (v->type != RT_JNUM)
		return bad(ps, where, "'%s' must be a number", key);
	*out = v->num;
	return RT_OK;
}

static int get_arr(parser *ps, const rt_json *o, const char *key, const char *where,
                   const rt_json **out)
{
	const rt_json *v = rt_json_get(o, key);
	if (!v || v->type != RT_JARR)
		return bad(ps, where, "'%s' must be an array", key);
	*out = v;
	return RT_OK;
}

static int get_dtype(parser *ps, const rt_json *o, const char *where, rt_dtype *out)
{
	const char *s = NULL;
	if (get_str(ps, o, "dtype", where, &s))
		return RT_ERR;
	if (rt_dtype_parse(s, out) || !(*out == RT_F32 || *out == RT_F16 || *out == RT_BF16 ||
	                                *out == RT_I32))
		return bad(ps, where, "dtype '%s' is not one of F32, F16, BF16, I32", s);
	return RT_OK;
}

static int get_shape(parser *ps, const rt_json *o, const char *where, int *rank,
                     int64_t *shape, int64_t *numel)
{
	const rt_json *a = NULL;
	if (get_arr(ps, o, "shape", where, &a))
		return RT_ERR;
	if (a->n > RT_MAXDIM)
		return bad(ps, where, "rank %d is over %d", a->n, RT_MAXDIM);
	for (int k = 0; k < a->n; k++) {
		if (a->kids[k].type != RT_JNUM || !a->kids[k].isint || a->kids[k].i < 0)
			return bad(ps, where, "shape[%d] must be a non-negative integer", k);
		shape[k] = a->kids[k].i;
	}
	*rank = a->n;
	if ((*numel = rt_numel(a->n, shape)) < 0)
		return bad(ps, where, "the element count overflows");
	return RT_OK;
}

static int get_bool(parser *ps, const rt_json *o, const char *key, const char *where,
                    int *out)
{
	const rt_json *v = rt_json_get(o, key);
	if (!v || v->type != RT_JBOOL)
		return bad(ps, where, "'%s' must be true or false", key);
	*out = v->b;
	return RT_OK;
}

/* --- params --------------------------------------------------------------- */

static int parse_param(parser *ps, rt_program *p, int i, const rt_json *o)
{
	char where[64];
	rt_param *q = &p->params[i];
	const char *init = NULL;
	snprintf(where, sizeof where, "params[%d]", i);
	if (o->type != RT_JOBJ)
		return bad(ps, where, "must be an object");
	if (get_str(ps, o, "name", where, &q->name) || get_dtype(ps, o, where, &q->dtype) ||
	    get_shape(ps, o, where, &q->rank, q->shape, &q->numel) ||
	    get_bool(ps, o, "trainable", where, &q->trainable) ||
	    get_str(ps, o, "init", where, &init) || get_num(ps, o, "a", where, 0, &q->init.a) ||
	    get_num(ps, o, "b", where, 0, &q->init.b) ||
	    get_int(ps, o, "index", where, 0, &q->index))
		return RT_ERR;
	if (!q->name[0])
		return bad(ps, where, "the name is empty");
	for (int k = 0; k < i; k++)
		if (strcmp(p->params[k].name, q->name) == 0)
			return bad(ps, where, "'%s' is also params[%d]", q->name, k);
	if (rt_init_parse(init, &q->init.kind))
		return bad(ps, where, "unknown init '%s'", init);
	q->from = -1;
	if (q->init.kind != RT_INIT_COPY)
		return RT_OK;
	const char *from = NULL;
	if (get_str(ps, o, "from", where, &from))
		return RT_ERR;
	for (int k = 0; k < i; k++)
		if (strcmp(p->params[k].name, from) == 0)
			q->from = k;
	if (q->from < 0)
		return bad(ps, where, "'%s' copies '%s', which is not an earlier param", q->name, from);
	const rt_param *src = &p->params[q->from];
	if (src->dtype != q->dtype || src->numel != q->numel)
		return bad(ps, where, "'%s' copies '%s' of another dtype or size", q->name, from);
	return RT_OK;
}

/* --- entries -------------------------------------------------------------- */

static const char *const kind_names[] = { "param", "input", "output", "temp", "const" };

const char *rt_bufkind_name(rt_bufkind k)
{
	return (unsigned)k < 5 ? kind_names[k] : "?";
}

static int parse_buffer(parser *ps, const rt_program *p, const rt_entry *e, const char *ewhere,
                        int i, const rt_json *o, rt_buffer *b)
{
	char where[96];
	const char *kind = NULL;
	snprintf(where, sizeof where, "%s.buffers[%d]", ewhere, i);
	if (o->type != RT_JOBJ)
		return bad(ps, where, "must be an object");
	if (get_str(ps, o, "kind", where, &kind) || get_dtype(ps, o, where, &b->dtype) ||
	    get_shape(ps, o, where, &b->rank, b->shape, &b->numel))
		return RT_ERR;
	int k = 0;
	while (k < 5 && strcmp(kind, kind_names[k]) != 0)
		k++;
	if (k == 5)
		return bad(ps, where, "unknown kind '%s'", kind);
	b->kind = (rt_bufkind)k;
	b->bytes = b->numel * (int64_t)rt_dtype_size(b->dtype);
	b->name = "";
	if (b->kind == RT_BUF_TEMP || b->kind == RT_BUF_CONST) {
		if (get_int(ps, o, "offset", where, 0, &b->offset))
			return RT_ERR;
		int64_t limit = b->kind == RT_BUF_TEMP ? e->arena_bytes : p->data_len;
		if (b->offset > limit || b->bytes > limit - b->offset)
			return bad(ps, where, "bytes [%lld, %lld) are outside the %s (%lld bytes)",
			           (long long)b->offset, (long long)(b->offset + b->bytes),
			           b->kind == RT_BUF_TEMP ? "arena" : "program data", (long long)limit);
		return RT_OK;
	}
	if (get_str(ps, o, "name", where, &b->name))
		return RT_ERR;
	if (!b->name[0])
		return bad(ps, where, "a %s buffer needs a name", kind);
	for (int j = 0; j < i; j++)
		if (e->buf[j].kind == b->kind && strcmp(e->buf[j].name, b->name) == 0)
			return bad(ps, where, "%s '%s' is also buffers[%d]", kind, b->name, j);
	if (b->kind != RT_BUF_PARAM)
		return RT_OK;
	const rt_param *q = rt_program_param(p, b->name);
	if (!q)
		return bad(ps, where, "'%s' is not among the params", b->name);
	if (q->dtype != b->dtype || q->numel != b->numel)
		return bad(ps, where, "'%s' differs from its param in dtype or size", b->name);
	return RT_OK;
}

/* A list of buffer indices of entry e (what = its name in messages). */
static int parse_buffer_list(parser *ps, const rt_entry *e, const char *where, const char *what,
                             const rt_json *arr, int **out, int *n)
{
	if (!(*out = calloc((size_t)arr->n + 1, sizeof **out)))
		return bad(ps, where, "out of memory");
	for (*n = 0; *n < arr->n; (*n)++) {
		const rt_json *a = &arr->kids[*n];
		if (a->type != RT_JNUM || !a->isint || a->i < 0 || a->i >= e->nbuf)
			return bad(ps, where, "%s[%d] must be a buffer index in [0, %d)", what, *n, e->nbuf);
		(*out)[*n] = (int)a->i;
	}
	return RT_OK;
}

/* {"name", "part", "global": G, "local": L, optionally "scratch": S}: a
 * launch's variant. */
static int parse_variant(parser *ps, const char *where, const rt_json *o, rt_cl_variant *v)
{
	int64_t part = 0;
	if (o->type != RT_JOBJ)
		return bad(ps, where, "a launch must be an object");
	if (get_str(ps, o, "name", where, &v->name) || get_int(ps, o, "part", where, 0, &part) ||
	    get_int(ps, o, "global", where, 1, &v->global) || get_int(ps, o, "local", where, 1, &v->local))
		return RT_ERR;
	v->scratch = 0;
	if (rt_json_get(o, "scratch") && get_int(ps, o, "scratch", where, 0, &v->scratch))
		return RT_ERR;
	if (v->scratch > RT_CL_MAX_SCRATCH)
		return bad(ps, where, "scratch %lld is above %d bytes", (long long)v->scratch, RT_CL_MAX_SCRATCH);
	if (!v->name[0])
		return bad(ps, where, "the OpenCL kernel name is empty");
	if (part >= RT_CL_MAX_PARTS)
		return bad(ps, where, "part %lld is not below %d", (long long)part, RT_CL_MAX_PARTS);
	v->part = (int)part;
	if (v->global % v->local)
		return bad(ps, where, "global %lld is not a multiple of local %lld", (long long)v->global,
		           (long long)v->local);
	return RT_OK;
}

/* "cl": a variant, "args": [buffer index, ...] and optionally "alts":
 * [variant, ...]. */
static int parse_cl(parser *ps, const rt_entry *e, const char *where, const rt_json *o,
                    rt_cl_launch *cl)
{
	const rt_json *args = NULL, *alts = rt_json_get(o, "alts");
	char at[128];
	if (o->type != RT_JOBJ)
		return bad(ps, where, "'cl' must be an object");
	if (alts && alts->type != RT_JARR)
		return bad(ps, where, "cl.alts must be an array");
	int n = 1 + (alts ? alts->n : 0);
	if (n > RT_CL_MAX_VARIANTS)
		return bad(ps, where, "%d launches, at most %d", n, RT_CL_MAX_VARIANTS);
	if (!(cl->v = calloc((size_t)n, sizeof *cl->v)))
		return bad(ps, where, "out of memory");
	for (cl->nv = 0; cl->nv < n; cl->nv++) {
		snprintf(at, sizeof at, cl->nv ? "%s.cl.alts[%d]" : "%s", where, cl->nv - 1);
		if (parse_variant(ps, at, cl->nv ? &alts->kids[cl->nv - 1] : o, &cl->v[cl->nv]))
			return RT_ERR;
	}
	if (get_arr(ps, o, "args", where, &args) ||
	    parse_buffer_list(ps, e, where, "cl.args", args, &cl->args, &cl->nargs))
		return RT_ERR;
	return RT_OK;
}

/* "fn" -1: no CPU code (compiled for OpenCL only); then "cl" is required. */
static int parse_kernel(parser *ps, const rt_entry *e, const char *ewhere, int i,
                        const rt_json *o, rt_kernel_fn const *kernels, int64_t nkernels,
                        rt_kernel *k)
{
	char where[96];
	snprintf(where, sizeof where, "%s.kernels[%d]", ewhere, i);
	if (o->type != RT_JOBJ)
		return bad(ps, where, "must be an object");
	if (get_int(ps, o, "fn", where, -1, &k->fn_index) ||
	    get_int(ps, o, "rows", where, 0, &k->rows) ||
	    get_num(ps, o, "flops", where, 0, &k->flops))
		return RT_ERR;
	const rt_json *name = rt_json_get(o, "name"), *cl = rt_json_get(o, "cl");
	k->name = name && name->type == RT_JSTR ? name->str : "";
	if (cl && cl->type != RT_JNULL && parse_cl(ps, e, where, cl, &k->cl))
		return RT_ERR;
	if (k->fn_index < 0) {
		if (!k->cl.nv)
			return bad(ps, where, "fn -1 (no CPU code) and no 'cl' launch either");
		return RT_OK;
	}
	const rt_json *args = NULL;
	if (get_arr(ps, o, "args", where, &args) ||
	    parse_buffer_list(ps, e, where, "args", args, &k->args, &k->nargs))
		return RT_ERR;
	if (nkernels >= 0 && k->fn_index >= nkernels)
		return bad(ps, where, "fn %lld is outside the %lld compiled kernels",
		           (long long)k->fn_index, (long long)nkernels);
	if (!kernels || !(k->fn = kernels[k->fn_index]))
		return bad(ps, where, "fn %lld has no compiled kernel", (long long)k->fn_index);
	return RT_OK;
}

static int parse_entry(parser *ps, rt_program *p, int i, const rt_json *o,
                       rt_kernel_fn const *kernels, int64_t nkernels)
{
	char where[64];
	rt_entry *e = &p->entries[i];
	const rt_json *bufs = NULL, *ks = NULL;
	snprintf(where, sizeof where, "entries[%d]", i);
	if (o->type != RT_JOBJ)
		return bad(ps, where, "must be an object");
	if (get_str(ps, o, "name", where, &e->name) ||
	    get_int(ps, o, "arena_bytes", where, 0, &e->arena_bytes) ||
	    get_arr(ps, o, "buffers", where, &bufs) || get_arr(ps, o, "kernels", where, &ks))
		return RT_ERR;
	snprintf(where, sizeof where, "entries[%d] (%s)", i, e->name);
	for (int k = 0; k < i; k++)
		if (strcmp(p->entries[k].name, e->name) == 0)
			return bad(ps, where, "'%s' is also entries[%d]", e->name, k);
	e->buf = calloc((size_t)bufs->n + 1, sizeof *e->buf);
	e->k = calloc((size_t)ks->n + 1, sizeof *e->k);
	if (!e->buf || !e->k || !(e->ctx = rt_exec_ctx_new(bufs->n)))
		return bad(ps, where, "out of memory");
	for (e->nbuf = 0; e->nbuf < bufs->n; e->nbuf++)
		if (parse_buffer(ps, p, e, where, e->nbuf, &bufs->kids[e->nbuf], &e->buf[e->nbuf]))
			return RT_ERR;
	for (e->nk = 0; e->nk < ks->n; e->nk++) {
		if (parse_kernel(ps, e, where, e->nk, &ks->kids[e->nk], kernels, nkernels,
		                 &e->k[e->nk]))
			return RT_ERR;
		e->flops += e->k[e->nk].flops;
	}
	return RT_OK;
}

/* --- meta ------------------------------------------------------------------ */

static int parse_meta(parser *ps, rt_program *p)
{
	static const rt_json empty = { .type = RT_JOBJ };
	const rt_json *m = rt_json_get(&p->json, "meta");
	if (!m)
		m = &empty;
	if (m->type != RT_JOBJ)
		return bad(ps, "meta", "must be an object");
	p->meta = m;
	const rt_json *im = rt_json_get(m, "image");
	if (im) {
		if (im->type != RT_JARR || im->n != 3)
			return bad(ps, "meta", "'image' must be [C, H, W]");
		for (int k = 0; k < 3; k++) {
			if (im->kids[k].type != RT_JNUM || !im->kids[k].isint || im->kids[k].i < 1)
				return bad(ps, "meta", "'image' must hold positive integers");
			p->image[k] = im->kids[k].i;
		}
	}
	if (rt_json_get(m, "batch") && get_int(ps, m, "batch", "meta", 1, &p->batch))
		return RT_ERR;
	if (rt_json_get(m, "timesteps") && get_int(ps, m, "timesteps", "meta", 1, &p->timesteps))
		return RT_ERR;
	return RT_OK;
}

/* --- the document ------------------------------------------------------------ */

static int parse_doc(parser *ps, rt_program *p, rt_kernel_fn const *kernels, int64_t nkernels)
{
	const rt_json *params = NULL, *entries = NULL;
	if (p->json.type != RT_JOBJ)
		return bad(ps, "document", "must be an object");
	const rt_json *model = rt_json_get(&p->json, "model");
	p->model = model && model->type == RT_JSTR ? model->str : "?";
	if (parse_meta(ps, p) || get_arr(ps, &p->json, "params", "document", &params) ||
	    get_arr(ps, &p->json, "entries", "document", &entries))
		return RT_ERR;
	p->params = calloc((size_t)params->n + 1, sizeof *p->params);
	p->entries = calloc((size_t)entries->n + 1, sizeof *p->entries);
	if (!p->params || !p->entries)
		return bad(ps, "document", "out of memory");
	for (p->nparams = 0; p->nparams < params->n; p->nparams++)
		if (parse_param(ps, p, p->nparams, &params->kids[p->nparams]))
			return RT_ERR;
	/* nentries counts the entries whose arrays exist, so that a failure
	 * half-way through one frees what it allocated. */
	for (p->nentries = 0; p->nentries < entries->n;) {
		int i = p->nentries++;
		if (parse_entry(ps, p, i, &entries->kids[i], kernels, nkernels))
			return RT_ERR;
	}
	return RT_OK;
}

int rt_program_parse(const char *json, size_t len, const unsigned char *data,
                     int64_t data_len, rt_kernel_fn const *kernels, int64_t nkernels,
                     rt_program *p, char *err, size_t errlen)
{
	parser ps = { err, errlen };
	char jerr[256];
	memset(p, 0, sizeof *p);
	p->data = data;
	p->data_len = data ? data_len : 0;
	if (rt_json_parse(json, len, &p->json, jerr, sizeof jerr) != RT_OK) {
		snprintf(err, errlen, "program: the embedded JSON is malformed %s", jerr);
		return RT_ERR;
	}
	if (parse_doc(&ps, p, kernels, nkernels) != RT_OK) {
		rt_program_free(p);
		return RT_ERR;
	}
	return RT_OK;
}

void rt_program_free(rt_program *p)
{
	for (int i = 0; i < p->nentries; i++) {
		/* k[nk] is the kernel whose parse failed (or zeroed): it may hold args */
		for (int k = 0; p->entries[i].k && k <= p->entries[i].nk; k++) {
			free(p->entries[i].k[k].cl.args);
			free(p->entries[i].k[k].cl.v);
			free(p->entries[i].k[k].args);
		}
		rt_exec_ctx_free(p->entries[i].ctx);
		free(p->entries[i].buf);
		free(p->entries[i].k);
	}
	free(p->entries);
	free(p->params);
	rt_json_free(&p->json);
	memset(p, 0, sizeof *p);
}

const rt_entry *rt_program_entry(const rt_program *p, const char *name)
{
	for (int i = 0; i < p->nentries; i++)
		if (strcmp(p->entries[i].name, name) == 0)
			return &p->entries[i];
	return NULL;
}

const rt_param *rt_program_param(const rt_program *p, const char *name)
{
	for (int i = 0; i < p->nparams; i++)
		if (strcmp(p->params[i].name, name) == 0)
			return &p->params[i];
	return NULL;
}

const rt_buffer *rt_entry_buffer(const rt_entry *e, rt_bufkind kind, const char *name)
{
	for (int i = 0; i < e->nbuf; i++)
		if (e->buf[i].kind == kind && strcmp(e->buf[i].name, name) == 0)
			return &e->buf[i];
	return NULL;
}
