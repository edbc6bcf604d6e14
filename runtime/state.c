/* state.c: parameter initialisers and a program's initial state. The
 * interpreter (compiler/interp) calls rt_init_tensor too, so a compiled
 * executable and `ddpmc run --interp` start from the same bits. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "philox.h"
#include "program.h"
#include "state.h"

static const char *const init_names[] = { "zeros", "ones", "uniform", "normal", "copy" };

const char *rt_init_name(rt_initkind k)
{
	return (unsigned)k <= RT_INIT_COPY ? init_names[k] : "?";
}

int rt_init_parse(const char *s, rt_initkind *out)
{
	for (int k = 0; k <= RT_INIT_COPY; k++)
		if (strcmp(s, init_names[k]) == 0) {
			*out = (rt_initkind)k;
			return RT_OK;
		}
	return RT_ERR;
}

void rt_tensor_convert(const rt_tensor *src, rt_tensor *dst)
{
	int64_t n = rt_numel(dst->rank, dst->shape);
	if (src->dtype == dst->dtype) {
		memcpy(dst->data, src->data, (size_t)n * rt_dtype_size(dst->dtype));
		return;
	}
	for (int64_t k = 0; k < n; k++)
		rt_store(dst->dtype, dst->data, k, rt_load(src->dtype, src->data, k));
}

const char *rt_shape_str(int rank, const int64_t *shape, char *buf, size_t len)
{
	size_t at = 0;
	at += (size_t)snprintf(buf, len, "(");
	for (int k = 0; k < rank && at < len; k++)
		at += (size_t)snprintf(buf + at, len - at, "%s%lld", k ? ", " : "", (long long)shape[k]);
	if (at < len)
		snprintf(buf + at, len - at, ")");
	return buf;
}

int rt_init_tensor(const rt_init *init, uint64_t seed, uint64_t stream,
                   const rt_tensor *src, rt_tensor *t)
{
	int64_t n = rt_numel(t->rank, t->shape);
	if (init->kind == RT_INIT_COPY) {
		if (!src || rt_numel(src->rank, src->shape) != n)
			return RT_ERR;
		rt_tensor_convert(src, t);
		return RT_OK;
	}
	float *r = NULL;
	if ((init->kind == RT_INIT_UNIFORM || init->kind == RT_INIT_NORMAL) &&
	    !(r = malloc((size_t)(n ? n : 1) * sizeof *r)))
		return RT_ERR;
	if (init->kind == RT_INIT_UNIFORM)
		rt_philox_uniform(seed, stream, 0, n, r);
	else if (init->kind == RT_INIT_NORMAL)
		rt_philox_normal(seed, stream, 0, n, r);
	for (int64_t k = 0; k < n; k++) {
		double v = init->kind == RT_INIT_ONES ? 1.0
		         : init->kind == RT_INIT_UNIFORM ? init->a + (init->b - init->a) * (double)r[k]
		         : init->kind == RT_INIT_NORMAL ? init->a + init->b * (double)r[k] : 0.0;
		rt_store(t->dtype, t->data, k, v);
	}
	free(r);
	return RT_OK;
}

/* The weights' tensor for q, checked; NULL with a message when missing or
 * of another shape. */
static const rt_tensor *find_weight(const rt_tensorset *w, const char *what, const rt_param *q,
                                    char *err, size_t errlen)
{
	char want[96], got[96];
	const rt_tensor *t = rt_set_find(w, q->name);
	rt_shape_str(q->rank, q->shape, want, sizeof want);
	if (!t) {
		snprintf(err, errlen, "%s: missing '%s' (%s %s)", what, q->name, rt_dtype_name(q->dtype),
		         want);
		return NULL;
	}
	int same = t->rank == q->rank;
	for (int k = 0; same && k < q->rank; k++)
		same = t->shape[k] == q->shape[k];
	if (!same) {
		snprintf(err, errlen, "%s: '%s' has shape %s, the model expects %s", what, q->name,
		         rt_shape_str(t->rank, t->shape, got, sizeof got), want);
		return NULL;
	}
	return t;
}

int rt_state_init(const rt_program *p, uint64_t seed, const rt_tensorset *weights,
                  const char *weights_name, rt_tensorset *state, char *err, size_t errlen)
{
	const char *what = weights_name ? weights_name : "weights";
	for (int i = 0; i < p->nparams; i++) {
		const rt_param *q = &p->params[i];
		rt_tensor *t = rt_set_add(state, q->name, q->dtype, q->rank, q->shape);
		if (!t) {
			snprintf(err, errlen, "state: cannot add '%s' (duplicate or out of memory)", q->name);
			return RT_ERR;
		}
		const rt_tensor *w = weights ? rt_set_find(weights, q->name) : NULL;
		if (w || (weights && q->trainable)) {
			if (!(w = find_weight(weights, what, q, err, errlen)))
				return RT_ERR;
			rt_tensor_convert(w, t);
			continue;
		}
		/* t may have moved when the set grew: look the source up now */
		const rt_tensor *src = q->from >= 0 ? rt_set_find(state, p->params[q->from].name) : NULL;
		if (rt_init_tensor(&q->init, seed, (uint64_t)q->index, src, t) != RT_OK) {
			snprintf(err, errlen, "state: cannot initialise '%s' (out of memory)", q->name);
			return RT_ERR;
		}
	}
	return RT_OK;
}
