/* exec.c: binds an entry's buffers to host memory and runs its kernels.
 * The binding rules are in exec.h; errors name the entry and tensor. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "exec.h"
#include "state.h"

struct rt_exec_ctx {
	int nbuf;
	void **bufs;            /* (nbuf) what the kernels see */
	int *slot;              /* (nbuf) index in its tensor set last time, or -1 */
	void **conv;            /* (nbuf) inputs converted to the buffer's dtype */
	char *arena;            /* arena_bytes, 64-aligned; NULL until the first call */
	int profile;
	double *ksec;           /* (nk) seconds per kernel when profiling */
	int64_t calls;
};

struct rt_exec_ctx *rt_exec_ctx_new(int nbuf)
{
	struct rt_exec_ctx *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->nbuf = nbuf;
	c->bufs = calloc((size_t)nbuf + 1, sizeof *c->bufs);
	c->slot = malloc(((size_t)nbuf + 1) * sizeof *c->slot);
	c->conv = calloc((size_t)nbuf + 1, sizeof *c->conv);
	if (!c->bufs || !c->slot || !c->conv) {
		rt_exec_ctx_free(c);
		return NULL;
	}
	for (int i = 0; i < nbuf; i++)
		c->slot[i] = -1;
	return c;
}

void rt_exec_ctx_free(struct rt_exec_ctx *c)
{
	if (!c)
		return;
	for (int i = 0; c->conv && i < c->nbuf; i++)
		free(c->conv[i]);
	free(c->conv);
	free(c->bufs);
	free(c->slot);
	free(c->arena);
	free(c->ksec);
	free(c);
}

/* The tensor named name in s, trying the slot it had last time first. */
static rt_tensor *find_cached(const rt_tensorset *s, const char *name, int *slot)
{
	if (!s)
		return NULL;
	if (*slot >= 0 && *slot < s->n && strcmp(s->t[*slot].name, name) == 0)
		return &s->t[*slot];
	for (int i = 0; i < s->n; i++)
		if (strcmp(s->t[i].name, name) == 0) {
			*slot = i;
			return &s->t[i];
		}
	return NULL;
}

static int same_shape(const rt_tensor *t, const rt_buffer *b)
{
	if (t->rank != b->rank)
		return 0;
	for (int k = 0; k < b->rank; k++)
		if (t->shape[k] != b->shape[k])
			return 0;
	return 1;
}

static int mismatch(const rt_entry *e, const char *what, const rt_tensor *t, const rt_buffer *b,
                    char *err, size_t errlen)
{
	char got[96], want[96];
	snprintf(err, errlen, "%s: %s '%s' is %s %s, the program expects %s %s", e->name, what,
	         b->name, rt_dtype_name(t->dtype), rt_shape_str(t->rank, t->shape, got, sizeof got),
	         rt_dtype_name(b->dtype), rt_shape_str(b->rank, b->shape, want, sizeof want));
	return RT_ERR;
}

static int bind_param(const rt_entry *e, int i, rt_tensorset *state, char *err, size_t errlen)
{
	const rt_buffer *b = &e->buf[i];
	rt_tensor *t = find_cached(state, b->name, &e->ctx->slot[i]);
	if (!t) {
		snprintf(err, errlen, "%s: the state has no '%s'", e->name, b->name);
		return RT_ERR;
	}
	if (t->dtype != b->dtype || !same_shape(t, b))
		return mismatch(e, "state", t, b, err, errlen);
	e->ctx->bufs[i] = t->data;
	return RT_OK;
}

static int bind_input(const rt_entry *e, int i, const rt_tensorset *inputs,
                      char *err, size_t errlen)
{
	const rt_buffer *b = &e->buf[i];
	struct rt_exec_ctx *c = e->ctx;
	rt_tensor *t = find_cached(inputs, b->name, &c->slot[i]);
	if (!t) {
		snprintf(err, errlen, "%s: input '%s' is missing", e->name, b->name);
		return RT_ERR;
	}
	if (rt_numel(t->rank, t->shape) != b->numel)
		return mismatch(e, "input", t, b, err, errlen);
	if (t->dtype == b->dtype) {
		c->bufs[i] = t->data;
		return RT_OK;
	}
	if (!c->conv[i] && !(c->conv[i] = malloc((size_t)(b->bytes ? b->bytes : 1)))) {
		snprintf(err, errlen, "%s: out of memory converting input '%s'", e->name, b->name);
		return RT_ERR;
	}
	rt_tensor dst = { .dtype = b->dtype, .rank = b->rank, .data = c->conv[i] };
	memcpy(dst.shape, b->shape, sizeof dst.shape);
	rt_tensor_convert(t, &dst);
	c->bufs[i] = c->conv[i];
	return RT_OK;
}

static int bind_output(const rt_entry *e, int i, rt_tensorset *outputs, char *err, size_t errlen)
{
	const rt_buffer *b = &e->buf[i];
	rt_tensor *t = find_cached(outputs, b->name, &e->ctx->slot[i]);
	if (t && (t->dtype != b->dtype || rt_numel(t->rank, t->shape) != b->numel))
		return mismatch(e, "output", t, b, err, errlen);
	if (t) {                /* reused: give it the buffer's shape */
		t->rank = b->rank;
		memcpy(t->shape, b->shape, sizeof t->shape);
	} else if (!(t = rt_set_add(outputs, b->name, b->dtype, b->rank, b->shape))) {
		snprintf(err, errlen, "%s: cannot add output '%s' (out of memory)", e->name, b->name);
		return RT_ERR;
	}
	e->ctx->bufs[i] = t->data;
	return RT_OK;
}

static int alloc_arena(const rt_entry *e, char *err, size_t errlen)
{
	struct rt_exec_ctx *c = e->ctx;
	if (c->arena || e->arena_bytes == 0)
		return RT_OK;
	size_t bytes = ((size_t)e->arena_bytes + 63) & ~(size_t)63;
	if (!(c->arena = aligned_alloc(64, bytes))) {
		snprintf(err, errlen, "%s: cannot allocate its %lld-byte arena", e->name,
		         (long long)e->arena_bytes);
		return RT_ERR;
	}
	return RT_OK;
}

/* Fills ctx->bufs; temps only when `arena` (else NULL). Outputs are
 * bound last: adding one may move the outputs set's array but never a
 * tensor's data. */
static int bind_all(const rt_program *p, const rt_entry *e, rt_tensorset *state,
                    const rt_tensorset *inputs, rt_tensorset *outputs, int arena, char *err,
                    size_t errlen)
{
	struct rt_exec_ctx *c = e->ctx;
	if (arena && alloc_arena(e, err, errlen))
		return RT_ERR;
	for (int i = 0; i < e->nbuf; i++) {
		const rt_buffer *b = &e->buf[i];
		int rc = RT_OK;
		switch (b->kind) {
		case RT_BUF_PARAM: rc = bind_param(e, i, state, err, errlen); break;
		case RT_BUF_INPUT: rc = bind_input(e, i, inputs, err, errlen); break;
		case RT_BUF_OUTPUT: rc = bind_output(e, i, outputs, err, errlen); break;
		case RT_BUF_TEMP: c->bufs[i] = arena ? c->arena + b->offset : NULL; break;
		case RT_BUF_CONST: c->bufs[i] = (void *)(p->data + b->offset); break;
		}
		if (rc)
			return rc;
	}
	return RT_OK;
}

double rt_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int rt_entry_run(const rt_program *p, const rt_entry *e, rt_tensorset *state,
                 const rt_tensorset *inputs, rt_tensorset *outputs, rt_pool *pool,
                 char *err, size_t errlen)
{
	struct rt_exec_ctx *c = e->ctx;
	for (int k = 0; k < e->nk; k++)
		if (!e->k[k].fn) {
			snprintf(err, errlen, "%s: kernel %s has no CPU code (compiled for OpenCL only)",
			         e->name, e->k[k].name);
			return RT_ERR;
		}
	if (bind_all(p, e, state, inputs, outputs, 1, err, errlen))
		return RT_ERR;
	for (int k = 0; k < e->nk; k++) {
		double t0 = c->ksec ? rt_seconds() : 0;
		const rt_kernel *kn = &e->k[k];
		void *args[kn->nargs + 1];
		for (int j = 0; j < kn->nargs; j++)
			args[j] = c->bufs[kn->args[j]];
		rt_pool_run(pool, kn->fn, args, kn->rows);
		if (c->ksec)
			c->ksec[k] += rt_seconds() - t0;
	}
	c->calls++;
	return RT_OK;
}

void *const *rt_entry_bind(const rt_program *p, const rt_entry *e, rt_tensorset *state,
                           const rt_tensorset *inputs, rt_tensorset *outputs, char *err,
                           size_t errlen)
{
	if (bind_all(p, e, state, inputs, outputs, 0, err, errlen))
		return NULL;
	e->ctx->calls++;
	return e->ctx->bufs;
}

void rt_exec_profile(const rt_entry *e, int on)
{
	struct rt_exec_ctx *c = e->ctx;
	if (!on) {
		free(c->ksec);
		c->ksec = NULL;
	} else if (!c->ksec)
		c->ksec = calloc((size_t)e->nk + 1, sizeof *c->ksec);
}

double rt_exec_kernel_seconds(const rt_entry *e, int k)
{
	return e->ctx->ksec && k >= 0 && k < e->nk ? e->ctx->ksec[k] : 0;
}

int rt_exec_profiling(const rt_entry *e)
{
	return e->ctx->ksec != NULL;
}

void rt_exec_add_seconds(const rt_entry *e, int k, double seconds)
{
	if (e->ctx->ksec && k >= 0 && k < e->nk)
		e->ctx->ksec[k] += seconds;
}

int64_t rt_exec_calls(const rt_entry *e)
{
	return e->ctx->calls;
}
