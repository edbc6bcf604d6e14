/* train.c: `OUT train` — runs the train_step entry over batches of a data
 * set and writes DIR/checkpoint.safetensors (every state tensor).
 *
 * Data order: image j of the batch at iteration i is position
 * q = i * B + j of an endless sequence of epochs; epoch e = q / n is a
 * permutation of the n images drawn from Philox (seed, SHUFFLE_STREAM + e).
 * The iteration is the state's train.iteration, so a resumed run sees the
 * batches an uninterrupted one would have seen. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "data.h"
#include "exec.h"
#include "philox.h"
#include "safetensors.h"

#define SHUFFLE_STREAM (UINT64_C(1) << 62)

static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig)
{
	(void)sig;
	interrupted = 1;
}

typedef struct {
	cli_opts *o;
	const rt_program *p;
	const rt_entry *e;
	const rt_buffer *x0;    /* (B, C, H, W) */
	rt_images im;
	int64_t *perm;          /* (n) the order of epoch `epoch` */
	int64_t epoch;
	rt_tensorset state, inputs, outputs;
	rt_pool *pool;
	char path[4096];        /* the checkpoint */
} trainer;

/* Fisher-Yates with Philox uniforms: the order of epoch e. */
static int shuffle(trainer *tr, int64_t e)
{
	int64_t n = tr->im.n;
	float *u = malloc((size_t)n * sizeof *u);
	if (!u)
		return -1;
	rt_philox_uniform((uint64_t)tr->o->seed, SHUFFLE_STREAM + (uint64_t)e, 0, n, u);
	for (int64_t i = 0; i < n; i++)
		tr->perm[i] = i;
	for (int64_t i = n - 1; i > 0; i--) {
		int64_t j = (int64_t)((double)u[i] * (double)(i + 1));
		j = j > i ? i : j;
		int64_t t = tr->perm[i];
		tr->perm[i] = tr->perm[j];
		tr->perm[j] = t;
	}
	free(u);
	tr->epoch = e;
	return 0;
}

/* The x0 batch of iteration `it`, scaled to [-1, 1]. */
static int make_batch(trainer *tr, int64_t it, float *x)
{
	int64_t b = tr->x0->shape[0], chw = tr->im.c * tr->im.h * tr->im.w;
	for (int64_t j = 0; j < b; j++) {
		int64_t q = it * b + j, e = q / tr->im.n;
		if (e != tr->epoch && shuffle(tr, e))
			return -1;
		rt_images_batch(&tr->im, tr->perm[q % tr->im.n], 1, x + j * chw);
	}
	return 0;
}

static int train_check_entry(trainer *tr)
{
	const cli_opts *o = tr->o;
	if (!(tr->e = rt_program_entry(tr->p, "train_step")))
		return cli_fail(o, "this program has no train_step entry");
	tr->x0 = rt_entry_buffer(tr->e, RT_BUF_INPUT, "x0");
	if (!tr->x0 || tr->x0->rank != 4)
		return cli_fail(o, "train_step has no input x0 of shape (B, C, H, W)");
	if (o->batch && o->batch != tr->x0->shape[0])
		return cli_fail(o, "--batch %lld: this program was compiled for batch %lld "
		                "(recompile with --set batch=%lld)", (long long)o->batch,
		                (long long)tr->x0->shape[0], (long long)o->batch);
	return 0;
}

static int load_data(trainer *tr)
{
	const cli_opts *o = tr->o;
	char err[1024];
	const char *path = strcmp(o->data, "fashion-mnist") == 0 ? CLI_DEFAULT_DATA : o->data;
	if (rt_idx_read_images(path, &tr->im, err, sizeof err) != RT_OK)
		return cli_fail(o, "%s", err);
	const int64_t *s = tr->x0->shape;
	if (tr->im.c != s[1] || tr->im.h != s[2] || tr->im.w != s[3])
		return cli_fail(o, "%s: images are %lld x %lld x %lld, the model takes %lld x %lld x %lld",
		                path, (long long)tr->im.c, (long long)tr->im.h, (long long)tr->im.w,
		                (long long)s[1], (long long)s[2], (long long)s[3]);
	if (!(tr->perm = malloc((size_t)tr->im.n * sizeof *tr->perm)))
		return cli_fail(o, "out of memory");
	tr->epoch = -1;
	printf("data: %s, %lld images\n", path, (long long)tr->im.n);
	return 0;
}

/* The state: from the checkpoint with --resume, else initialised. */
static int train_load_state(trainer *tr)
{
	const cli_opts *o = tr->o;
	char err[1024];
	rt_tensorset ckpt = { 0 };
	if (o->resume && rt_st_read(tr->path, &ckpt, err, sizeof err) != RT_OK)
		return cli_fail(o, "--resume: %s", err);
	int rc = rt_state_init(tr->p, (uint64_t)o->seed, o->resume ? &ckpt : NULL, tr->path,
	                       &tr->state, err, sizeof err);
	rt_set_free(&ckpt);
	if (rc != RT_OK)
		return cli_fail(o, "%s", err);
	if (!o->resume || o->has_seed)
		cli_set_scalar(&tr->state, "rng.seed", (double)o->seed);
	else if (rt_set_find(&tr->state, "rng.seed"))     /* the run's seed goes on */
		tr->o->seed = (int64_t)cli_scalar(&tr->state, "rng.seed");
	return 0;
}

static int save(trainer *tr)
{
	char err[1024], dir[4096];
	snprintf(dir, sizeof dir, "%s", tr->o->out);
	if (cli_mkdirs(dir))
		return cli_fail(tr->o, "cannot create %s: %s", dir, strerror(errno));
	rt_set_meta(&tr->state, "format", "ddpmc");
	rt_set_meta(&tr->state, "model", tr->p->model);
	if (rt_st_write(tr->path, &tr->state, err, sizeof err) != RT_OK)
		return cli_fail(tr->o, "%s", err);
	return 0;
}

static void log_step(const trainer *tr, int64_t it, double imgs)
{
	printf("step %lld loss %.6f lr %.4g img/s %.1f\n", (long long)it,
	       cli_scalar(&tr->outputs, "loss"), cli_scalar(&tr->outputs, "lr"), imgs);
	fflush(stdout);
}

/* The training loop proper. Timing starts after the first step (which
 * pays for page faults and the arena). */
static int loop(trainer *tr)
{
	const cli_opts *o = tr->o;
	char err[1024];
	int64_t b = tr->x0->shape[0];
	rt_tensor *x = rt_set_add(&tr->inputs, "x0", RT_F32, 4, tr->x0->shape);
	if (!x)
		return cli_fail(o, "out of memory");
	int64_t it0 = (int64_t)cli_scalar(&tr->state, "train.iteration");
	it0 = it0 > 0 ? it0 : 0;
	double t0 = cli_now(), t1 = t0;
	for (int64_t s = 0; s < o->steps && !interrupted; s++) {
		if (make_batch(tr, it0 + s, x->data))
			return cli_fail(o, "out of memory");
		if (rt_entry_run(tr->p, tr->e, &tr->state, &tr->inputs, &tr->outputs, tr->pool, err,
		                 sizeof err) != RT_OK)
			return cli_fail(o, "%s", err);
		double now = cli_now();
		if (s == 0)
			t1 = now;
		if ((s + 1) % o->log_every == 0 || s + 1 == o->steps)
			log_step(tr, it0 + s + 1, s == 0 ? (double)b / (now - t0)
			                                 : (double)(s * b) / (now - t1));
		if (o->save_every && (s + 1) % o->save_every == 0 && save(tr))
			return 1;
	}
	return 0;
}

static void start(trainer *tr)
{
	int64_t elems = 0;
	for (int i = 0; i < tr->p->nparams; i++)
		elems += tr->p->params[i].trainable ? tr->p->params[i].numel : 0;
	printf("train: %s, %lld params, batch %lld, %lld steps, %d threads, seed %lld\n",
	       tr->p->model, (long long)elems, (long long)tr->x0->shape[0], (long long)tr->o->steps,
	       rt_pool_threads(tr->pool), (long long)cli_scalar(&tr->state, "rng.seed"));
	fflush(stdout);
}

int cli_train(const cli_opts *opts, const rt_program *p)
{
	cli_opts o = *opts;
	trainer tr = { .o = &o, .p = p };
	if (!o.out)
		o.out = CLI_DEFAULT_DIR;
	snprintf(tr.path, sizeof tr.path, "%s/checkpoint.safetensors", o.out);
	int rc = train_check_entry(&tr) || load_data(&tr) || train_load_state(&tr) ||
	         !(tr.pool = cli_pool(&o));
	if (!rc) {
		struct sigaction sa = { .sa_handler = on_interrupt }, old_int, old_term;
		sigaction(SIGINT, &sa, &old_int);
		sigaction(SIGTERM, &sa, &old_term);
		start(&tr);
		cli_profile_start(tr.e);
		rc = loop(&tr);
		sigaction(SIGINT, &old_int, NULL);
		sigaction(SIGTERM, &old_term, NULL);
		if (!rc)
			rc = save(&tr);
		if (!rc)
			printf("%s %s\n", interrupted ? "interrupted; saved" : "saved", tr.path);
		if (!rc && interrupted)
			rc = 130;
		cli_profile_report(tr.e);
	}
	rt_pool_free(tr.pool);
	rt_images_free(&tr.im);
	free(tr.perm);
	rt_set_free(&tr.state);
	rt_set_free(&tr.inputs);
	rt_set_free(&tr.outputs);
	return rc;
}
