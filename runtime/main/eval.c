/* eval.c: `OUT eval` — a program's own measure of quality, chosen by the
 * entries it has:
 *   classify (ddpm.program.classifier): the accuracy of the argmax of its
 *     logits against the test set's labels;
 *   features (ddpm.program.diffusion's metric): FID and KID (fid.h)
 *     between the classifier features of --n images drawn by `sample`'s
 *     sampler (cli_sampler, the same flags and weights) and those of the
 *     whole test set, and beside them the real-vs-real floor: the same
 *     statistics for n training images (the first n of the seed's epoch-0
 *     shuffle) against the test set. FID from n samples is biased upwards
 *     as n shrinks; the floor shows how much of the figure that is.
 * A program with neither (RGB or 32x32 images: the only metric classifier
 * is Fashion-MNIST's) is told the metric is not available.
 *
 * The test set: --test PATH, else the IDX file beside --data's with
 * "train-" replaced by "t10k-" (Fashion-MNIST's t10k-images-idx3-ubyte.gz
 * beside train-images-idx3-ubyte.gz); a classifier's labels are read
 * beside it (data.h). Entries run in rounds of their compiled batch; the
 * last round is padded with copies of its first image and the extra
 * outputs dropped. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "fid.h"
#include "safetensors.h"

struct cli_quality {
	const cli_opts *o;
	const rt_program *p;
	const rt_entry *e;      /* features */
	rt_device *dev;
	rt_images train;        /* --data, for the floor */
	float *test;            /* (ntest, F) the test set's features */
	int64_t ntest, nf;
};

/* --- running an entry over many images ---------------------------------------- */

/* out (n, cols) = entry e's output `out_name` ((B, cols)) for the images x
 * (n, C, H, W) fed as input `in_name` ((B, C, H, W)), in rounds of B. */
static int run_rounds(const cli_opts *o, rt_device *dev, const rt_entry *e,
                      rt_tensorset *state, const char *in_name, const char *out_name,
                      const float *x, int64_t n, float *out)
{
	char err[1024];
	const rt_buffer *ib = rt_entry_buffer(e, RT_BUF_INPUT, in_name);
	const rt_buffer *ob = rt_entry_buffer(e, RT_BUF_OUTPUT, out_name);
	if (!ib || !ob || ib->rank != 4 || ob->rank != 2 || ob->shape[0] != ib->shape[0])
		return cli_fail(o, "%s: expected an input %s (B, C, H, W) and an output %s (B, K)",
		                e->name, in_name, out_name);
	int64_t b = ib->shape[0], chw = ib->numel / b, cols = ob->shape[1];
	rt_tensorset in = { 0 }, res = { 0 };
	rt_tensor *t = rt_set_add(&in, in_name, RT_F32, 4, ib->shape);
	int rc = t ? 0 : cli_fail(o, "out of memory");
	for (int64_t first = 0; !rc && first < n; first += b) {
		int64_t k = n - first < b ? n - first : b;
		float *px = t->data;
		memcpy(px, x + first * chw, (size_t)(k * chw) * sizeof *px);
		for (int64_t i = k; i < b; i++)
			memcpy(px + i * chw, x + first * chw, (size_t)chw * sizeof *px);
		if (rt_device_run(dev, e, state, &in, &res, err, sizeof err) != RT_OK) {
			rc = cli_fail(o, "%s", err);
			break;
		}
		rt_tensor got = { .dtype = RT_F32, .rank = 2, .shape = { k, cols },
		                  .data = out + first * cols };
		const rt_tensor *r = rt_set_find(&res, out_name);
		rt_tensor head = *r;
		head.shape[0] = k;
		rt_tensor_convert(&head, &got);
	}
	rt_set_free(&in);
	rt_set_free(&res);
	return rc;
}

/* The images of im, or those at idx[0..n) when idx, scaled to [-1, 1]. */
static float *scaled(const rt_images *im, const int64_t *idx, int64_t n)
{
	int64_t chw = im->c * im->h * im->w;
	float *x = malloc((size_t)(n * chw) * sizeof *x);
	for (int64_t i = 0; x && i < n; i++)
		rt_images_scaled(im, idx ? idx[i] : i, 0, x + i * chw);
	return x;
}

/* The test set (--test, else beside --data), c x h x w images. */
static int open_test(const cli_opts *o, const int64_t *chw, rt_images *im, char *path,
                     size_t len)
{
	char err[1024];
	if (o->test)
		snprintf(path, len, "%s", o->test);
	else if (rt_idx_sibling(o->data, "train-", "t10k-", path, len, err, sizeof err) != RT_OK)
		return cli_fail(o, "the test set: %s (give it with --test PATH)", err);
	if (rt_dataset_open(path, chw[0], chw[1], chw[2], &o->images, im, err, sizeof err) !=
	    RT_OK)
		return cli_fail(o, "%s", err);
	return 0;
}

/* --- FID and KID ------------------------------------------------------------------ */

static int features(cli_quality *q, const float *x, int64_t n, float **out)
{
	rt_tensorset none = { 0 };
	if (!(*out = malloc((size_t)(n * q->nf) * sizeof **out)))
		return cli_fail(q->o, "out of memory");
	return run_rounds(q->o, q->dev, q->e, &none, "features.x", "features", x, n, *out);
}

static int scores(cli_quality *q, const float *f, int64_t n, cli_scores *s)
{
	char err[1024];
	if (rt_fid(f, n, q->test, q->ntest, q->nf, &s->fid, err, sizeof err) != RT_OK ||
	    rt_kid(f, n, q->test, q->ntest, q->nf, RT_KID_SUBSETS, RT_KID_SUBSET_SIZE,
	           (uint64_t)q->o->seed, &s->kid, &s->kid_std, err, sizeof err) != RT_OK)
		return cli_fail(q->o, "FID/KID: %s", err);
	return 0;
}

int cli_quality_available(const cli_opts *o, const rt_program *p)
{
	if (rt_program_entry(p, "features"))
		return 0;
	return cli_fail(o, "FID/KID: not available for this program (%lldx%lldx%lld images): the "
	                "metric's classifier is Fashion-MNIST's, for 1x28x28 images "
	                "(ddpm.program.diffusion's metric = \"fashion-mnist\")",
	                (long long)p->image[0], (long long)p->image[1], (long long)p->image[2]);
}

cli_quality *cli_quality_new(const cli_opts *o, const rt_program *p, rt_device *dev)
{
	char err[1024], path[4096];
	const rt_entry *e = rt_program_entry(p, "features");
	if (cli_quality_available(o, p))
		return NULL;
	cli_quality *q = calloc(1, sizeof *q);
	rt_images test = { 0 };
	float *x = NULL;
	const rt_buffer *ib = rt_entry_buffer(e, RT_BUF_INPUT, "features.x");
	const rt_buffer *ob = rt_entry_buffer(e, RT_BUF_OUTPUT, "features");
	int rc = !q ? cli_fail(o, "out of memory") : !ib || !ob || ib->rank != 4 || ob->rank != 2
	       ? cli_fail(o, "features: expected features.x (B, C, H, W) -> features (B, F)") : 0;
	if (!rc) {
		*q = (cli_quality){ .o = o, .p = p, .e = e, .dev = dev, .nf = ob->shape[1] };
		rc = open_test(o, ib->shape + 1, &test, path, sizeof path);
	}
	if (!rc && rt_dataset_open(o->data, ib->shape[1], ib->shape[2], ib->shape[3], &o->images,
	                           &q->train, err, sizeof err) != RT_OK)
		rc = cli_fail(o, "%s", err);
	if (!rc && !(x = scaled(&test, NULL, test.n)))
		rc = cli_fail(o, "out of memory");
	if (!rc) {
		q->ntest = test.n;
		rc = features(q, x, test.n, &q->test);
	}
	free(x);
	rt_images_free(&test);
	if (rc) {
		cli_quality_free(q);
		return NULL;
	}
	return q;
}

int cli_quality_floor(cli_quality *q, int64_t n, cli_scores *out)
{
	if (n > q->train.n)
		return cli_fail(q->o, "the floor needs %lld training images, --data has %lld",
		                (long long)n, (long long)q->train.n);
	int64_t *order = malloc((size_t)q->train.n * sizeof *order);
	float *x = NULL, *f = NULL;
	if (order)
		rt_data_order(q->train.n, (uint64_t)q->o->seed, 0, order);
	int rc = !order || !(x = scaled(&q->train, order, n)) ? cli_fail(q->o, "out of memory")
	       : features(q, x, n, &f) || scores(q, f, n, out);
	free(order);
	free(x);
	free(f);
	return rc;
}

int cli_quality_score(cli_quality *q, const float *images, int64_t n, cli_scores *out)
{
	float *f = NULL;
	int rc = features(q, images, n, &f) || scores(q, f, n, out);
	free(f);
	return rc;
}

void cli_quality_free(cli_quality *q)
{
	if (!q)
		return;
	rt_images_free(&q->train);
	free(q->test);
	free(q);
}

static int eval_quality(const cli_opts *o, const rt_program *p, rt_device *dev)
{
	cli_scores gen, floor_;
	const float *x;
	cli_sampler *sm = cli_sampler_new(o, p, dev);
	cli_quality *q = NULL;
	int rc = !sm || cli_sampler_load(sm);
	if (!rc) {
		printf("eval: %s, %lld images, %s %lld steps, %s, %s, seed %lld\n", p->model,
		       (long long)o->n, o->sampler, (long long)cli_sampler_steps(sm),
		       cli_sampler_weights_used(sm), rt_device_name(dev), (long long)o->seed);
		fflush(stdout);
		rc = !(q = cli_quality_new(o, p, dev));
	}
	rc = rc || cli_sampler_draw(sm, o->n, o->seed, 1, NULL, &x) ||
	     cli_quality_score(q, x, o->n, &gen) || cli_quality_floor(q, o->n, &floor_);
	if (!rc) {
		printf("FID %.4f  KID %.6f +- %.6f  (%lld samples vs %lld test images)\n", gen.fid,
		       gen.kid, gen.kid_std, (long long)o->n, (long long)q->ntest);
		printf("floor: FID %.4f  KID %.6f +- %.6f  (%lld training images vs the test set)\n",
		       floor_.fid, floor_.kid, floor_.kid_std, (long long)o->n);
	}
	cli_quality_free(q);
	cli_sampler_free(sm);
	return rc;
}

/* --- a classifier's accuracy -------------------------------------------------------- */

/* The weights: --weights FILE or --ckpt FILE (default runs/latest). */
static int classifier_state(const cli_opts *o, const rt_program *p, rt_tensorset *state)
{
	char err[1024], path[RT_WEIGHTS_PATH];
	rt_tensorset file = { 0 };
	if (o->has_ckpt && o->has_weights)
		return cli_fail(o, "--ckpt and --weights: give one of them");
	snprintf(path, sizeof path, "%s", o->has_ckpt ? o->ckpt
	         : CLI_DEFAULT_DIR "/checkpoint.safetensors");
	if (o->has_weights && cli_read_weights(o, p, o->weights, &file, path))
		return 1;
	if (!o->has_weights && rt_st_read(path, &file, err, sizeof err) != RT_OK)
		return cli_fail(o, "%s", err);
	int rc = rt_state_init(p, (uint64_t)o->seed, &file, path, state, err, sizeof err);
	rt_set_free(&file);
	return rc == RT_OK ? 0 : cli_fail(o, "%s", err);
}

static int64_t argmax(const float *v, int64_t n)
{
	int64_t best = 0;
	for (int64_t i = 1; i < n; i++)
		best = v[i] > v[best] ? i : best;
	return best;
}

static int eval_accuracy(const cli_opts *o, const rt_program *p, const rt_entry *e,
                         rt_device *dev)
{
	char err[1024], path[4096];
	const rt_buffer *ib = rt_entry_buffer(e, RT_BUF_INPUT, "x");
	const rt_buffer *ob = rt_entry_buffer(e, RT_BUF_OUTPUT, "logits");
	if (!ib || !ob || ib->rank != 4 || ob->rank != 2)
		return cli_fail(o, "classify: expected x (B, C, H, W) -> logits (B, K)");
	rt_tensorset state = { 0 };
	rt_images test = { 0 };
	float *x = NULL, *logits = NULL;
	int64_t k = ob->shape[1], right = 0;
	int rc = classifier_state(o, p, &state) || open_test(o, ib->shape + 1, &test, path, sizeof path);
	if (!rc && rt_dataset_labels(path, &test, err, sizeof err) != RT_OK)
		rc = cli_fail(o, "%s", err);
	if (!rc && (!(x = scaled(&test, NULL, test.n)) ||
	            !(logits = malloc((size_t)(test.n * k) * sizeof *logits))))
		rc = cli_fail(o, "out of memory");
	if (!rc)
		rc = run_rounds(o, dev, e, &state, "x", "logits", x, test.n, logits);
	for (int64_t i = 0; !rc && i < test.n; i++)
		right += argmax(logits + i * k, k) == test.labels[i];
	if (!rc)
		printf("accuracy %.4f (%lld of %lld images of %s)\n", (double)right / (double)test.n,
		       (long long)right, (long long)test.n, path);
	free(x);
	free(logits);
	rt_images_free(&test);
	rt_set_free(&state);
	return rc;
}

int cli_eval(const cli_opts *o, const rt_program *p)
{
	const rt_entry *classify = rt_program_entry(p, "classify");
	if (!classify && cli_quality_available(o, p))
		return 1;
	rt_device *dev = cli_device(o, p);
	if (!dev)
		return 1;
	int rc = classify ? eval_accuracy(o, p, classify, dev) : eval_quality(o, p, dev);
	rt_device_free(dev);
	return rc;
}
