/* loader.c: the order contract of data.h (epoch shuffles, flips, random
 * crops) and the loader thread that makes batch k + 1 while the caller
 * computes on batch k.
 *
 * Loader protocol (one mutex, one condition variable): `full` says the
 * buffer holds the batch at `pos`. The thread fills the buffer while
 * !full, then sets full; rt_loader_next waits for full, copies the batch
 * out, advances pos and clears full. Only the thread writes the buffer,
 * the order cache (perm, epoch) and reads pos while !full; only
 * rt_loader_next changes pos, while full. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data.h"
#include "philox.h"
#include "tensor.h"

enum { CHUNK = 4096 };

void rt_data_order(int64_t n, uint64_t seed, int64_t epoch, int64_t *perm)
{
	float u[CHUNK];     /* uniform elements [lo, hi) of the epoch's stream */
	for (int64_t i = 0; i < n; i++)
		perm[i] = i;
	for (int64_t hi = n; hi > 1;) {
		int64_t lo = hi - CHUNK > 1 ? hi - CHUNK : 1;
		rt_philox_uniform(seed, RT_DATA_SHUFFLE_STREAM + (uint64_t)epoch, (uint64_t)lo,
		                  hi - lo, u);
		for (int64_t i = hi - 1; i >= lo; i--) {
			int64_t j = (int64_t)((double)u[i - lo] * (double)(i + 1));
			j = j > i ? i : j;
			int64_t t = perm[i];
			perm[i] = perm[j];
			perm[j] = t;
		}
		hi = lo;
	}
}

int rt_data_flipped(uint64_t seed, int64_t q)
{
	float u;
	rt_philox_uniform(seed, RT_DATA_FLIP_STREAM, (uint64_t)q, 1, &u);
	return u <= 0.5f;
}

/* top = min(floor(u * (room + 1)), room) for the room the crop has. */
static int64_t crop_place(float u, int64_t room)
{
	int64_t at = (int64_t)((double)u * (double)(room + 1));
	return at > room ? room : at;
}

void rt_data_crop(uint64_t seed, int64_t q, int64_t fh, int64_t fw, int64_t h, int64_t w,
                  int64_t *top, int64_t *left)
{
	float u[2];
	rt_philox_uniform(seed, RT_DATA_CROP_STREAM, 2 * (uint64_t)q, 2, u);
	*top = crop_place(u[0], fh - h);
	*left = crop_place(u[1], fw - w);
}

struct rt_loader {
	const rt_images *im;
	int64_t batch;
	uint64_t seed;
	int flip;
	int shard, shards;      /* this loader's B of every R * B positions */
	int64_t *perm;          /* (n) the order of epoch `epoch` (thread only) */
	int64_t epoch;
	float *buf;             /* (batch, c, h, w) the batch at pos, when full */
	int32_t *lab;           /* (batch) its labels, when im->labels */
	int64_t pos;            /* the global batch's first position */
	int full, quit;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t thread;
};

/* This shard's part of the global batch at ld->pos into ld->buf. */
static void fill(rt_loader *ld)
{
	const rt_images *im = ld->im;
	int64_t chw = im->c * im->h * im->w, first = ld->pos + ld->shard * ld->batch;
	for (int64_t k = 0; k < ld->batch; k++) {
		int64_t q = first + k, e = q / im->n;
		if (e != ld->epoch) {
			rt_data_order(im->n, ld->seed, e, ld->perm);
			ld->epoch = e;
		}
		int64_t i = ld->perm[q % im->n];
		rt_images_drawn(im, i, ld->seed, q, ld->flip && rt_data_flipped(ld->seed, q),
		                ld->buf + k * chw);
		if (im->labels)
			ld->lab[k] = im->labels[i];
	}
}

static void *run(void *arg)
{
	rt_loader *ld = arg;
	pthread_mutex_lock(&ld->mu);
	while (!ld->quit) {
		if (ld->full) {
			pthread_cond_wait(&ld->cv, &ld->mu);
			continue;
		}
		pthread_mutex_unlock(&ld->mu);
		fill(ld);
		pthread_mutex_lock(&ld->mu);
		ld->full = 1;
		pthread_cond_broadcast(&ld->cv);
	}
	pthread_mutex_unlock(&ld->mu);
	return NULL;
}

int rt_loader_open(const rt_images *im, int64_t batch, uint64_t seed, int flip,
                   int64_t position, int shard, int shards, rt_loader **out, char *err,
                   size_t errlen)
{
	*out = NULL;
	if (im->n < 1 || batch < 1 || position < 0 || shard < 0 || shard >= shards) {
		snprintf(err, errlen, "data loader: %s", im->n < 1 ? "no images" : batch < 1
		         ? "batch size below 1" : position < 0 ? "negative data position"
		         : "shard out of range");
		return RT_ERR;
	}
	rt_loader *ld = calloc(1, sizeof *ld);
	size_t floats = (size_t)(batch * im->c * im->h * im->w);
	if (!ld || !(ld->perm = malloc((size_t)im->n * sizeof *ld->perm)) ||
	    !(ld->buf = malloc(floats * sizeof *ld->buf)) ||
	    !(ld->lab = malloc((size_t)batch * sizeof *ld->lab))) {
		snprintf(err, errlen, "data loader: out of memory for a batch of %lld",
		         (long long)batch);
		goto abort;
	}
	ld->im = im, ld->batch = batch, ld->seed = seed, ld->flip = flip != 0;
	ld->shard = shard, ld->shards = shards;
	ld->epoch = -1, ld->pos = position;
	pthread_mutex_init(&ld->mu, NULL);
	pthread_cond_init(&ld->cv, NULL);
	int e = pthread_create(&ld->thread, NULL, run, ld);
	if (e) {
		snprintf(err, errlen, "data loader: cannot start its thread: %s", strerror(e));
		pthread_mutex_destroy(&ld->mu);
		pthread_cond_destroy(&ld->cv);
		goto abort;
	}
	*out = ld;
	return RT_OK;
abort:
	if (ld) {
		free(ld->perm);
		free(ld->buf);
		free(ld->lab);
	}
	free(ld);
	return RT_ERR;
}

void rt_loader_next(rt_loader *ld, float *out, int32_t *labels, int64_t *position)
{
	const rt_images *im = ld->im;
	pthread_mutex_lock(&ld->mu);
	while (!ld->full)
		pthread_cond_wait(&ld->cv, &ld->mu);
	memcpy(out, ld->buf, (size_t)(ld->batch * im->c * im->h * im->w) * sizeof *out);
	if (labels && im->labels)
		memcpy(labels, ld->lab, (size_t)ld->batch * sizeof *labels);
	ld->pos += ld->shards * ld->batch;
	if (position)
		*position = ld->pos;
	ld->full = 0;
	pthread_cond_broadcast(&ld->cv);
	pthread_mutex_unlock(&ld->mu);
}

void rt_loader_close(rt_loader *ld)
{
	if (!ld)
		return;
	pthread_mutex_lock(&ld->mu);
	ld->quit = 1;
	pthread_cond_broadcast(&ld->cv);
	pthread_mutex_unlock(&ld->mu);
	pthread_join(ld->thread, NULL);
	pthread_mutex_destroy(&ld->mu);
	pthread_cond_destroy(&ld->cv);
	free(ld->perm);
	free(ld->buf);
	free(ld->lab);
	free(ld);
}
