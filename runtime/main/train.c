/* train.c: `OUT train` — runs the train_step entry over batches of a data
 * set and keeps a run folder DIR (--out):
 *   DIR/checkpoint.safetensors  every state tensor (parameters, EMA, Adam
 *       moments, counters, loss scale, rng.seed) and, in its metadata, the
 *       model config and where the data order stands (below); written
 *       atomically every --save-every N steps, whenever --save-minutes M
 *       (default 10) have passed since the last save, at the end, and when
 *       SIGINT/SIGTERM stops the run (after the step in progress; exit 0);
 *   DIR/checkpoint-STEP.safetensors  the --keep K (default 3) newest saves,
 *       hard links (rundir.c);
 *   DIR/metrics.jsonl           one line per logged step (metrics.c);
 *   DIR/loss.png                the loss curve, redrawn at every save;
 *   DIR/samples/step_NNNNNN.png with --sample-every N: a grid of --n
 *       images (default 16) drawn from the EMA weights by DDIM in
 *       min(50, T) steps, eta 0, from the run's seed (the same noise every
 *       time, so grids compare across steps);
 *   with --eval-every N, "fid" and "kid" on the metrics line of every Nth
 *       step: --n images drawn as the grids are, against the test set
 *       (eval.c; the test set's features are computed once, at the start).
 * On a terminal a progress bar shows the steps, the smoothed loss (an EMA
 * of the loss with factor 0.98, bias-corrected), images/s and the ETA;
 * elsewhere a plain line every --log-every steps.
 *
 * Data: rt_dataset_open reads --data (data.h), and when train_step has an
 * input `labels` ((B) i32: a classifier's) rt_dataset_labels reads the
 * IDX labels file beside the images; a loader thread makes the
 * next batch while a step runs. The order is data.h's contract: position
 * q = 0, 1, ... of an endless sequence of epochs, each a shuffle drawn
 * from the run's seed (with --flip, every image mirrored or not by its
 * position); the batch of a step holds the B positions after the previous
 * one's. The checkpoint stores the position reached (data_position), so a
 * resumed run sees the batches an uninterrupted one would have seen, and
 * nothing else the run does (sample grids, saves, logging) touches the
 * training state: 10 steps + --resume 10 steps give the bytes of 20 steps.
 * A checkpoint without the metadata resumes at position step * B.
 *
 * Device (--device): train_step runs on it through rt_device_run; the
 * state lives there between steps, so everything that reads it on the
 * host (a save, a sample grid, the end of the run) calls rt_device_sync
 * first. The grids' sampler runs on the same device. On a device that
 * queues runs (OpenCL) the steps are queued, up to QUEUE_MAX, and the host
 * waits for them and reads their losses only at a step that logs, scores,
 * draws a grid or saves (and after the first, the last and an interrupted
 * one): between those no step waits for the one before, and the bar
 * moves in those strides. With several ranks every step waits (the
 * exchange).
 *
 * Safety: a fresh run refuses a DIR that holds a run unless --overwrite
 * (which clears it) or --resume; the unfinished saves of killed runs are
 * removed at the start. --resume checks the checkpoint (checkpoint.c):
 * its metadata numbers in range, its weights finite, the program's
 * configuration the same. A step whose loss is not finite stops the run
 * (unless loss scaling skipped it), and a state that is not finite is
 * never saved: the last good checkpoint stays.
 *
 * --init W starts a fresh run (step 0, fresh optimizer state and data
 * order) whose parameters and EMA weights are W's trainable parameters
 * (weights.h: a diffusers folder or a safetensors file, its config.json
 * checked against the program's); it goes with --overwrite, not --resume.
 *
 * Hyperparameters (hyper.c): the state tensors hp.NAME, set from the flags
 * after the state is loaded; a resumed run keeps the checkpoint's.
 *
 * Data parallelism (dist.c): under `mpirun -np N` (N > 1) every rank holds
 * the whole state, made identically from the seed or read from the
 * checkpoint, and a step is: the loader's shard `rank` of the global batch
 * of N * B positions (data.h), train_grads with input shard = rank (its
 * own t, noise and dropout draws: what one process of batch N * B would
 * draw for those rows), one MPI_Allreduce that averages the gradient sums
 * (and sums the loss and the ranks' stop flags), then train_apply, which
 * every rank runs on the same averaged sums: the replicas stay equal
 * without ever exchanging weights. Rank 0 alone writes the run folder and
 * prints; the others print only errors. A run stops after the step in
 * which any rank was interrupted, on every rank. A failing rank aborts
 * the job (MPI_Abort), so no other waits for it forever. The checkpoint
 * records ranks; --resume requires the same N (the data order and the
 * draws depend on it).
 *
 * Checkpoint metadata (strings): format "ddpmc", model, config (the
 * program's meta as JSON), hyperparameters (the hp.NAME values as JSON), step, seed, batch, data (the path), data_images
 * (n), data_position (q of the next image), data_epoch (q / n), data_flip
 * (0 or 1; a resumed run keeps flipping when its start did),
 * data_random_crop (0 or 1; likewise for --crop random), ranks (the
 * processes that trained it; absent: 1). */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "data.h"
#include "exec.h"
#include "image.h"
#include "safetensors.h"

#define SMOOTHING 0.98
#define GRID_STEPS 50
/* Data positions and steps stay below 2^53: exact in a double, and far
 * from overflowing int64 when a run adds its steps times its batch. */
#define MAX_POSITION 9007199254740992LL

static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig)
{
	interrupted = sig;
}

/* Steps queued on a device before the host waits for them. */
enum { QUEUE_MAX = 32 };

typedef struct {
	cli_opts *o;
	const rt_program *p;
	const rt_entry *e;      /* train_step, or with several ranks train_grads */
	const rt_entry *apply;  /* train_apply with several ranks, else NULL */
	cli_dist dist;
	int stop;               /* several ranks: one was interrupted (agreed) */
	double exchanged;       /* seconds in cli_dist_reduce, this run */
	double ran_s;           /* seconds in the `ran` steps of this run */
	int64_t ran;
	const rt_buffer *x0;    /* (B, C, H, W) */
	const rt_buffer *labels;        /* (B) i32, when train_step takes labels */
	const char *data;       /* the data set's path */
	rt_images im;
	rt_loader *ld;
	int64_t position;       /* the data position of the next batch */
	rt_tensorset state, inputs;
	rt_tensorset outputs[QUEUE_MAX];        /* the queued steps' outputs, in order */
	double global_loss;     /* several ranks: the step's mean loss over all (they queue one) */
	int queued;             /* steps queued whose outputs the host has not read */
	int64_t queued_s, queued_it;    /* the first of them: its index in this run, its iteration */
	double queued_since;    /* rt_seconds() before its batch */
	const rt_tensorset *read;       /* the outputs of the last step read */
	rt_device *dev;
	char path[4096];        /* the checkpoint */
	cli_metrics mt;
	cli_sampler *sm;        /* --sample-every, --eval-every */
	const float *drawn;     /* the sampler's images after step drawn_step (NULL: none) */
	int64_t drawn_step;
	cli_quality *q;         /* --eval-every: the test set's features */
	cli_progress pg;
	double smooth, smooth_w;        /* loss EMA and its weight (for the bias) */
	double busy, busy_all;  /* seconds in steps since the last log line; since step 2 */
	double loss_sum;        /* since the last log line */
	double last_save;       /* rt_seconds() at the start or the last save */
	int64_t nsum, b;        /* b: this process's batch */
	int64_t gb;             /* the global batch: ranks x b */
	int plot_warned, keep_warned;
	char device[32];        /* this rank's --device, when it is not the flag's */
} trainer;

/* --- data --------------------------------------------------------------------- */

static int load_data(trainer *tr)
{
	const cli_opts *o = tr->o;
	char err[1024];
	const int64_t *s = tr->x0->shape;
	tr->data = strcmp(o->data, "fashion-mnist") == 0 ? RT_FASHION_MNIST : o->data;
	if (rt_dataset_open(o->data, s[1], s[2], s[3], &o->images, &tr->im, err, sizeof err) !=
	    RT_OK)
		return cli_fail(o, "%s", err);
	if (tr->labels && rt_dataset_labels(o->data, &tr->im, err, sizeof err) != RT_OK)
		return cli_fail(o, "%s", err);
	printf("data: %s, %lld images%s%s%s\n", tr->data, (long long)tr->im.n,
	       tr->labels ? " with labels" : "", o->flip ? ", random horizontal flips" : "",
	       tr->im.full ? ", random crops" : "");
	return 0;
}

/* The loader, at the position the state's run has reached. */
static int open_loader(trainer *tr)
{
	char err[1024];
	if (rt_loader_open(&tr->im, tr->b, (uint64_t)tr->o->seed, tr->o->flip, tr->position,
	                   tr->dist.rank, tr->dist.size, &tr->ld, err, sizeof err) != RT_OK)
		return cli_fail(tr->o, "%s", err);
	return 0;
}

/* --- state and checkpoint ------------------------------------------------------- */

/* The entries of a step: train_step, or with several ranks train_grads
 * (which takes the rank as its input shard) and train_apply. */
static int find_entries(trainer *tr)
{
	if (tr->dist.size == 1)
		return (tr->e = rt_program_entry(tr->p, "train_step")) ? 0
		       : cli_fail(tr->o, "this program has no train_step entry");
	tr->e = rt_program_entry(tr->p, "train_grads");
	tr->apply = rt_program_entry(tr->p, "train_apply");
	if (!tr->e || !tr->apply || !rt_entry_buffer(tr->e, RT_BUF_INPUT, "shard"))
		return cli_fail(tr->o, "training on %d processes needs the entries train_grads and "
		                "train_apply of a diffusion program (ddpm.program.diffusion, compiled "
		                "by this ddpmc)", tr->dist.size);
	return 0;
}

static int train_check_entry(trainer *tr)
{
	const cli_opts *o = tr->o;
	if (find_entries(tr))
		return 1;
	tr->x0 = rt_entry_buffer(tr->e, RT_BUF_INPUT, "x0");
	if (!tr->x0 || tr->x0->rank != 4)
		return cli_fail(o, "%s has no input x0 of shape (B, C, H, W)", tr->e->name);
	tr->b = tr->x0->shape[0];
	tr->gb = tr->b * tr->dist.size;
	if (o->eval_every && cli_quality_available(o, tr->p))
		return 1;
	tr->labels = rt_entry_buffer(tr->e, RT_BUF_INPUT, "labels");
	if (tr->labels && (tr->labels->rank != 1 || tr->labels->shape[0] != tr->b ||
	                   tr->labels->dtype != RT_I32))
		return cli_fail(o, "train_step's input labels must be (B) i32");
	return 0;
}

static int64_t iteration(const trainer *tr)
{
	double it = cli_scalar(&tr->state, "train.iteration");
	return it > 0 ? (int64_t)it : 0;
}

/* What a resumed run takes from the checkpoint's metadata, each number
 * checked: the data position, flipping and random crops; a warning when
 * the batch size changed; a refusal when the number of processes did. 0,
 * or 1 after cli_fail. */
static int resume_meta(trainer *tr, const rt_tensorset *ckpt)
{
	int64_t b = tr->b, flip = 0, crop = 0, ranks = 1;
	if (cli_ckpt_int(tr->o, ckpt, tr->path, "batch", 1, 10000000, &b) ||
	    cli_ckpt_int(tr->o, ckpt, tr->path, "data_position", 0, MAX_POSITION, &tr->position) ||
	    cli_ckpt_int(tr->o, ckpt, tr->path, "data_flip", 0, 1, &flip) ||
	    cli_ckpt_int(tr->o, ckpt, tr->path, "data_random_crop", 0, 1, &crop) ||
	    cli_ckpt_int(tr->o, ckpt, tr->path, "ranks", 1, 1000000, &ranks))
		return 1;
	if (ranks != tr->dist.size)
		return cli_fail(tr->o, "--resume: %s was trained by %lld process%s, this run has %d: "
		                "resume it with mpirun -np %lld (the data order and the noise depend on "
		                "the number)", tr->path, (long long)ranks, ranks == 1 ? "" : "es",
		                tr->dist.size, (long long)ranks);
	if (b != tr->b)
		fprintf(stderr, "%s: warning: the checkpoint was trained at batch %lld, this program's is "
		        "%lld: the run goes on, but not as one uninterrupted run would have\n",
		        tr->o->prog, (long long)b, (long long)tr->b);
	tr->o->flip |= flip == 1;
	if (crop == 1)
		tr->o->images.crop = RT_CROP_RANDOM;
	return 0;
}

/* The resumed state's counters in range: the step (the data position of
 * a checkpoint without one is step * B) and the seed. */
static int resumed_counters(trainer *tr)
{
	double it = cli_scalar(&tr->state, "train.iteration"), seed = cli_scalar(&tr->state, "rng.seed");
	if (!isnan(it) && !(it >= 0 && it <= (double)(MAX_POSITION / tr->gb)))
		return cli_fail(tr->o, "%s: train.iteration = %g is not a step in [0, %lld]", tr->path, it,
		                MAX_POSITION / tr->gb);
	if (!isnan(seed) && !(seed >= 0 && seed <= 2147483647))
		return cli_fail(tr->o, "%s: rng.seed = %g is not a seed in [0, 2147483647]", tr->path,
		                seed);
	return 0;
}

/* The checkpoint --resume continues, checked, into *ckpt. */
static int read_resumed(trainer *tr, rt_tensorset *ckpt)
{
	const cli_opts *o = tr->o;
	char err[1024];
	if (access(tr->path, F_OK) != 0)
		return cli_fail(o, "--resume: no checkpoint at %s (%s)", tr->path, strerror(errno));
	if (rt_st_read(tr->path, ckpt, err, sizeof err) != RT_OK)
		return cli_fail(o, "--resume: %s", err);
	return cli_ckpt_finite(o, ckpt, tr->path) || cli_ckpt_config(o, ckpt, tr->path, tr->p) ||
	       resume_meta(tr, ckpt);
}

/* --init W: the program's trainable parameters from W (weights.h), checked
 * finite, into *init; nothing else of W is kept, so the optimizer's state,
 * the counters and the EMA start afresh (ema.NAME copies NAME). */
static int read_init(trainer *tr, rt_tensorset *init, char *file)
{
	rt_tensorset w = { 0 };
	int rc = cli_read_weights(tr->o, tr->p, tr->o->init, &w, file) ||
	         cli_ckpt_finite(tr->o, &w, file);
	for (int i = 0; i < tr->p->nparams && !rc; i++) {
		const rt_param *q = &tr->p->params[i];
		const rt_tensor *t = q->trainable ? rt_set_find(&w, q->name) : NULL;
		rt_tensor *c = t ? rt_set_add(init, t->name, t->dtype, t->rank, t->shape) : NULL;
		if (t && !c)
			rc = cli_fail(tr->o, "out of memory");
		else if (c)
			memcpy(c->data, t->data, (size_t)rt_numel(t->rank, t->shape) *
			       rt_dtype_size(t->dtype));
	}
	rt_set_free(&w);
	return rc;
}

/* The state: from the checkpoint with --resume, from --init's weights at
 * step 0, else initialised. */
static int train_load_state(trainer *tr)
{
	const cli_opts *o = tr->o;
	char err[1024], init_file[RT_WEIGHTS_PATH];
	rt_tensorset ckpt = { 0 };
	tr->position = -1;
	if ((o->resume && read_resumed(tr, &ckpt)) || (o->init && read_init(tr, &ckpt, init_file))) {
		rt_set_free(&ckpt);
		return 1;
	}
	int rc = rt_state_init(tr->p, (uint64_t)o->seed, o->resume || o->init ? &ckpt : NULL,
	                       o->init ? init_file : tr->path, &tr->state, err, sizeof err);
	rt_set_free(&ckpt);
	if (rc != RT_OK)
		return cli_fail(o, "%s", err);
	if (o->resume && resumed_counters(tr))
		return 1;
	if (!o->resume || o->has_seed)
		cli_set_scalar(&tr->state, "rng.seed", (double)o->seed);
	else if (rt_set_find(&tr->state, "rng.seed"))     /* the run's seed goes on */
		tr->o->seed = (int64_t)cli_scalar(&tr->state, "rng.seed");
	if (tr->position < 0)
		tr->position = iteration(tr) * tr->gb;
	if (cli_hyper_apply(o, &tr->state))
		return 1;
	if (tr->apply && cli_dist_bind(&tr->dist, &tr->state, "optim.grad_sum."))
		return cli_fail(o, "out of memory");
	return 0;
}

static int meta_int(rt_tensorset *s, const char *key, int64_t v)
{
	char buf[32];
	snprintf(buf, sizeof buf, "%lld", (long long)v);
	return rt_set_meta(s, key, buf);
}

static int set_meta(trainer *tr)
{
	rt_strbuf config = { 0 }, hyper = { 0 };
	rt_json_write(&config, tr->p->meta);
	cli_hyper_describe(&tr->state, &hyper, 1);
	int64_t it = iteration(tr), pos = tr->position;
	int bad = config.oom || !config.p || hyper.oom || !hyper.p;
	bad = bad || rt_set_meta(&tr->state, "format", "ddpmc") ||
	      rt_set_meta(&tr->state, "model", tr->p->model) ||
	      rt_set_meta(&tr->state, "config", config.p) ||
	      rt_set_meta(&tr->state, "hyperparameters", hyper.p) || meta_int(&tr->state, "step", it) ||
	      meta_int(&tr->state, "seed", tr->o->seed) || meta_int(&tr->state, "batch", tr->b) ||
	      rt_set_meta(&tr->state, "data", tr->data) ||
	      meta_int(&tr->state, "data_images", tr->im.n) ||
	      meta_int(&tr->state, "data_position", pos) ||
	      meta_int(&tr->state, "data_epoch", pos / tr->im.n) ||
	      meta_int(&tr->state, "data_flip", tr->o->flip) ||
	      meta_int(&tr->state, "data_random_crop", tr->im.full != NULL) ||
	      meta_int(&tr->state, "ranks", tr->dist.size);
	rt_sb_free(&config);
	rt_sb_free(&hyper);
	return bad ? cli_fail(tr->o, "out of memory") : 0;
}

/* The loss curve; a failure is a warning (once): the run goes on. */
static void draw_plot(trainer *tr)
{
	char err[1024], path[4200];
	snprintf(path, sizeof path, "%s/loss.png", tr->o->out);
	if (tr->mt.n > 0 && cli_plot_loss(path, tr->mt.m, tr->mt.n, err, sizeof err) != RT_OK &&
	    !tr->plot_warned++) {
		cli_progress_clear(&tr->pg);
		fprintf(stderr, "%s: warning: %s\n", tr->o->prog, err);
	}
}

/* The state on the host as the device has it. */
static int sync_state(trainer *tr)
{
	char err[1024];
	if (rt_device_sync(tr->dev, &tr->state, err, sizeof err) != RT_OK)
		return cli_fail(tr->o, "%s", err);
	return 0;
}

/* The numbered link of the save just made; a failure is a warning
 * (once): the checkpoint itself is saved. */
static void keep_numbered(trainer *tr)
{
	if (cli_run_keep(tr->o->out, tr->path, iteration(tr), tr->o->keep) != 0 && !tr->keep_warned++) {
		cli_progress_clear(&tr->pg);
		fprintf(stderr, "%s: warning: cannot keep numbered checkpoints in %s: %s\n", tr->o->prog,
		        tr->o->out, strerror(errno));
	}
}

/* The state as the checkpoint, unless a value is not finite: then the
 * run stops and the last good checkpoint stays. */
static int save(trainer *tr)
{
	char err[1024], what[4200];
	if (sync_state(tr) || set_meta(tr))
		return 1;
	snprintf(what, sizeof what, "not saving step %lld (%s keeps the last good state)",
	         (long long)iteration(tr), tr->path);
	if (cli_ckpt_finite(tr->o, &tr->state, what))
		return 1;
	if (rt_st_write(tr->path, &tr->state, err, sizeof err) != RT_OK)
		return cli_fail(tr->o, "%s", err);
	tr->last_save = rt_seconds();
	keep_numbered(tr);
	draw_plot(tr);
	return 0;
}

/* A save is due after step `done`: every --save-every steps, and when
 * --save-minutes have passed since the last. */
static int save_due(const trainer *tr, int64_t done)
{
	const cli_opts *o = tr->o;
	return (o->save_every && done % o->save_every == 0) ||
	       (o->save_minutes > 0 && rt_seconds() - tr->last_save >= 60 * o->save_minutes);
}

/* A loss that is not finite poisons the weights, unless loss scaling
 * skipped the step (then the state has optim.loss_scale and kept its
 * weights). 0, or 1 after cli_fail. */
static int check_loss(trainer *tr, int64_t done, double loss)
{
	if (isfinite(loss) || rt_set_find(&tr->state, "optim.loss_scale"))
		return 0;
	cli_progress_clear(&tr->pg);
	return cli_fail(tr->o, "step %lld: the loss is %g; stopping without saving (%s keeps the "
	                "last good state)", (long long)done, isnan(loss) ? NAN : loss, tr->path);
}

/* --- the run ------------------------------------------------------------------- */

/* --n images from the EMA weights of the state as it is after `step`
 * steps, with the run's seed: drawn once per step, whether a grid, the
 * metric or both want them. 0, 1 after cli_fail, or 2 when interrupted. */
static int draw_now(trainer *tr, int64_t step, const float **x)
{
	if (tr->drawn && tr->drawn_step == step) {
		*x = tr->drawn;
		return 0;
	}
	if (sync_state(tr) ||
	    cli_sampler_weights(tr->sm, &tr->state, tr->path, (uint64_t)tr->o->seed, 1))
		return 1;
	int rc = cli_sampler_draw(tr->sm, tr->o->n, tr->o->seed, -1, &interrupted, x);
	tr->drawn = rc ? NULL : *x;
	tr->drawn_step = step;
	return rc;
}

/* A grid from the EMA weights of the state as it is now. */
static int sample_grid(trainer *tr, int64_t step)
{
	char err[1024], path[4200];
	const float *x;
	int64_t chw[3];
	int rc = draw_now(tr, step, &x);
	if (rc)
		return rc == 2 ? 0 : 1;
	snprintf(path, sizeof path, "%s/samples", tr->o->out);
	if (cli_mkdirs(path))
		return cli_fail(tr->o, "cannot create %s: %s", path, strerror(errno));
	snprintf(path, sizeof path, "%s/samples/step_%06lld.png", tr->o->out, (long long)step);
	cli_sampler_image(tr->sm, chw);
	if (rt_png_write_grid(path, x, tr->o->n, chw[0], chw[1], chw[2], tr->o->scale, err,
	                      sizeof err) != RT_OK)
		return cli_fail(tr->o, "%s", err);
	cli_progress_clear(&tr->pg);
	printf("samples %s\n", path);
	fflush(stdout);
	return 0;
}

/* FID and KID of --n images drawn from the EMA weights as they are now
 * (the grids' sampler and seed) against the test set. */
static int measure(trainer *tr, int64_t step, cli_scores *s)
{
	const float *x;
	int rc = draw_now(tr, step, &x);
	if (rc)
		return rc == 2 ? -1 : 1;
	if (cli_quality_score(tr->q, x, tr->o->n, s))
		return 1;
	cli_progress_clear(&tr->pg);
	printf("eval step %lld: FID %.4f KID %.6f (%lld samples)\n", (long long)step, s->fid, s->kid,
	       (long long)tr->o->n);
	fflush(stdout);
	return 0;
}

/* The metrics line of step `step` (with s's FID and KID when not NULL)
 * and, off a terminal, the plain line. */
static int log_step(trainer *tr, int64_t step, double loss, const cli_scores *s)
{
	cli_metric m = {
		.step = step, .loss = loss, .loss_mean = tr->loss_sum / (double)tr->nsum,
		.lr = cli_scalar(tr->read, "lr"), .loss_scale = cli_scalar(tr->read, "loss_scale"),
		.ema_decay = cli_scalar(tr->read, "ema_decay"), .batch = tr->gb,
		.images_per_s = tr->busy > 0 ? (double)(tr->nsum * tr->gb) / tr->busy : 0,
		.fid = s ? s->fid : NAN, .kid = s ? s->kid : NAN,
	};
	if (isnan(m.loss_scale))
		m.loss_scale = 1;
	tr->loss_sum = tr->busy = 0;
	tr->nsum = 0;
	if (!tr->pg.tty) {
		printf("step %lld loss %.6f lr %.4g img/s %.1f\n", (long long)step, loss, m.lr,
		       m.images_per_s);
		fflush(stdout);
	}
	return cli_metrics_add(&tr->mt, tr->o, &m);
}

/* The bar: step s + 1 of this run. img/s counts from the second step on
 * (the first pays for page faults and the arena). */
static void show(trainer *tr, int64_t s, double loss)
{
	char extra[128];
	if (isfinite(loss)) {   /* a step skipped by loss scaling reports inf */
		tr->smooth = SMOOTHING * tr->smooth + (1 - SMOOTHING) * loss;
		tr->smooth_w = SMOOTHING * tr->smooth_w + (1 - SMOOTHING);
	}
	double ips = s > 0 && tr->busy_all > 0 ? (double)(s * tr->gb) / tr->busy_all : 0;
	double smooth = tr->smooth_w > 0 ? tr->smooth / tr->smooth_w : NAN;
	if (ips > 0)
		snprintf(extra, sizeof extra, "loss %.4f | %.1f img/s", smooth, ips);
	else
		snprintf(extra, sizeof extra, "loss %.4f", smooth);
	cli_progress_update(&tr->pg, s + 1, extra, s + 1 == tr->o->steps);
}

static int run_entry(trainer *tr, const rt_entry *e, rt_tensorset *out)
{
	char err[1024];
	if (rt_device_run(tr->dev, e, &tr->state, &tr->inputs, out, err, sizeof err) != RT_OK)
		return cli_fail(tr->o, "%s", err);
	return 0;
}

/* Several ranks: the gradient sums averaged, the loss and the stop flags
 * summed, between train_grads and train_apply. */
static int exchange(trainer *tr, double *loss)
{
	double extra[2] = { *loss, interrupted != 0 };
	if (sync_state(tr))
		return 1;
	double t0 = rt_seconds();
	if (cli_dist_reduce(&tr->dist, extra, 2))
		return cli_fail(tr->o, "MPI_Allreduce of the gradients failed");
	tr->exchanged += rt_seconds() - t0;
	rt_device_invalidate(tr->dev, &tr->state);
	*loss = extra[0] / tr->dist.size;
	tr->stop = extra[1] > 0;
	return 0;
}

/* Step s of this run (iteration it) queued on the device: train_step,
 * or, waiting for each, train_grads, the exchange and train_apply. */
static int queue_step(trainer *tr, int64_t s, int64_t it)
{
	char err[1024];
	int k = tr->queued;
	rt_tensorset *out = &tr->outputs[k];
	if (k == 0)
		tr->queued_s = s, tr->queued_it = it;
	if (!tr->apply) {
		if (rt_device_submit(tr->dev, tr->e, &tr->state, &tr->inputs, out, err, sizeof err))
			return cli_fail(tr->o, "%s", err);
	} else if (run_entry(tr, tr->e, out) || (tr->global_loss = cli_scalar(out, "loss"),
	                                         exchange(tr, &tr->global_loss)) ||
	           run_entry(tr, tr->apply, out))
		return 1;
	tr->queued++;
	return 0;
}

/* Waits for the queued steps and reads their losses in order: the bar,
 * the sums of the log line, a stop at a loss that is not finite (rank 0).
 * Their time is the wall time since the first one's batch. *last: the
 * last one's loss. */
static int read_queued(trainer *tr, double *last)
{
	char err[1024];
	if (rt_device_wait(tr->dev, err, sizeof err) != RT_OK)
		return cli_fail(tr->o, "%s", err);
	double dt = rt_seconds() - tr->queued_since;
	int n = tr->queued;
	tr->queued = 0;
	tr->busy += dt;
	tr->busy_all += tr->queued_s > 0 ? dt : 0;
	tr->ran_s += dt;
	tr->ran += n;
	for (int k = 0; k < n; k++) {
		double loss = tr->apply ? tr->global_loss : cli_scalar(&tr->outputs[k], "loss");
		tr->loss_sum += loss;
		tr->nsum++;
		show(tr, tr->queued_s + k, loss);
		if (tr->dist.rank == 0 && check_loss(tr, tr->queued_it + k + 1, loss))
			return 1;
		*last = loss;
	}
	tr->read = &tr->outputs[n - 1];
	return 0;
}

/* One step: the batch and the step queued; then, where this step needs
 * the host (a log line, a score, a grid, a save; the first and last
 * steps, an interrupt, a full queue, a device that does not queue), the
 * wait and the bookkeeping (rank 0's alone writes). *last: the loss of
 * the last step read. */
static int train_one(trainer *tr, rt_tensor *x, rt_tensor *labels, int64_t s, int64_t it,
                     double *last)
{
	const cli_opts *o = tr->o;
	int64_t done = it + 1;
	if (tr->queued == 0)
		tr->queued_since = rt_seconds();
	rt_loader_next(tr->ld, x->data, labels ? labels->data : NULL, &tr->position);
	if (queue_step(tr, s, it))
		return 1;
	int log = done % o->log_every == 0 || s + 1 == o->steps;
	int eval = o->eval_every && done % o->eval_every == 0;
	int grid = o->sample_every && done % o->sample_every == 0;
	int keep = save_due(tr, done);
	if (!(log || eval || grid || keep || s == 0 || interrupted || tr->apply ||
	      tr->queued == QUEUE_MAX || !rt_device_queues(tr->dev)))
		return 0;
	if (read_queued(tr, last))
		return 1;
	if (tr->dist.rank > 0)
		return 0;
	cli_scores sc;
	int evaluated = eval ? measure(tr, done, &sc) : -1;
	if (evaluated > 0)
		return 1;
	if ((log || evaluated == 0) && log_step(tr, done, *last, evaluated == 0 ? &sc : NULL))
		return 1;
	if (grid && sample_grid(tr, done))
		return 1;
	if (keep && save(tr))
		return 1;
	return 0;
}

/* Several ranks stop together (the flag they agreed on); one alone at once. */
static int stopping(const trainer *tr)
{
	return tr->apply ? tr->stop : interrupted != 0;
}

/* The inputs: x0, labels for a classifier, the rank as shard for train_grads. */
static int add_inputs(trainer *tr)
{
	int64_t none[1] = { 0 };
	rt_tensor *shard;
	int ok = rt_set_add(&tr->inputs, "x0", RT_F32, 4, tr->x0->shape) &&
	         (!tr->labels || rt_set_add(&tr->inputs, "labels", RT_I32, 1, tr->labels->shape));
	if (ok && tr->apply && (ok = (shard = rt_set_add(&tr->inputs, "shard", RT_I32, 0, none)) != NULL))
		*(int32_t *)shard->data = tr->dist.rank;
	return ok ? 0 : cli_fail(tr->o, "out of memory");
}

static int loop(trainer *tr)
{
	const cli_opts *o = tr->o;
	if (add_inputs(tr))
		return 1;
	rt_tensor *x = rt_set_find(&tr->inputs, "x0"), *labels = rt_set_find(&tr->inputs, "labels");
	int64_t it0 = iteration(tr);
	double loss = NAN;
	for (int64_t s = 0; s < o->steps && !stopping(tr); s++)
		if (train_one(tr, x, labels, s, it0 + s, &loss))
			return 1;
	if ((tr->queued && read_queued(tr, &loss)) || sync_state(tr))
		return 1;
	if (tr->dist.rank == 0 && tr->nsum > 0 && log_step(tr, iteration(tr), loss, NULL))
		return 1;
	return 0;
}

/* The folder, the metrics file and the sampler: every failure that
 * output could meet shows before the first step. Rank 0's alone. */
static int prepare_out(trainer *tr)
{
	cli_opts *o = tr->o;
	if (tr->dist.rank > 0)
		return 0;
	if (o->overwrite && cli_run_clear(o->out))
		return cli_fail(o, "--overwrite: cannot clear %s: %s", o->out, strerror(errno));
	if (cli_mkdirs(o->out))
		return cli_fail(o, "cannot create %s: %s", o->out, strerror(errno));
	if (cli_metrics_open(&tr->mt, o, o->out, o->resume, iteration(tr)))
		return 1;
	if (!o->sample_every && !o->eval_every)
		return 0;
	if (o->eval_every && !(tr->q = cli_quality_new(o, tr->p, tr->dev)))
		return 1;
	cli_opts so = *o;
	so.sampler = "ddim";
	so.spacing = "leading";
	so.has_steps = 1;
	so.steps = tr->p->timesteps && tr->p->timesteps < GRID_STEPS ? tr->p->timesteps : GRID_STEPS;
	so.eta = 0;
	so.has_eta = 1;
	return !(tr->sm = cli_sampler_new(&so, tr->p, tr->dev));
}

/* Before anything is read or written: a fresh run does not replace
 * another without --overwrite, and the unfinished saves of killed runs go. */
static int check_out(trainer *tr)
{
	const cli_opts *o = tr->o;
	if (o->resume && o->overwrite)
		return cli_fail(o, "--resume and --overwrite: give one of them");
	if (o->resume && o->init)
		return cli_fail(o, "--resume and --init: give one of them (--resume continues the run "
		                "in --out, --init starts a fresh one from weights)");
	if (tr->dist.rank > 0)          /* rank 0 alone keeps the folder */
		return 0;
	if (cli_check_out_dir(o, "--out", o->out))
		return 1;
	if (cli_run_clean_stale(o->out))
		return cli_fail(o, "cannot remove the unfinished saves in %s: %s", o->out, strerror(errno));
	const char *found = o->resume || o->overwrite ? NULL : cli_run_found(o->out);
	if (found)
		return cli_fail(o, "%s already holds a run (%s/%s): --resume continues it, --overwrite "
		                "replaces it, or give another --out", o->out, o->out, found);
	return 0;
}

/* The save policy, for the startup line. */
static void describe_saving(const cli_opts *o, rt_strbuf *b)
{
	rt_sb_puts(b, "saving");
	if (o->save_every)
		rt_sb_printf(b, " every %lld steps%s", (long long)o->save_every,
		             o->save_minutes > 0 ? " and" : "");
	if (o->save_minutes > 0)
		rt_sb_printf(b, " every %g minutes", o->save_minutes);
	rt_sb_printf(b, "%s, keeping the %lld newest as %s/checkpoint-STEP.safetensors",
	             o->save_every || o->save_minutes > 0 ? "" : " at the end", (long long)o->keep,
	             o->out);
}

static void start(trainer *tr)
{
	int64_t elems = 0;
	for (int i = 0; i < tr->p->nparams; i++)
		elems += tr->p->params[i].trainable ? tr->p->params[i].numel : 0;
	char ranks[64] = "";
	if (tr->dist.size > 1)
		snprintf(ranks, sizeof ranks, " (%d processes x %lld)", tr->dist.size, (long long)tr->b);
	printf("train: %s, %lld params, batch %lld%s, %lld steps from step %lld, %s, seed %lld\n",
	       tr->p->model, (long long)elems, (long long)tr->gb, ranks, (long long)tr->o->steps,
	       (long long)iteration(tr), rt_device_name(tr->dev),
	       (long long)cli_scalar(&tr->state, "rng.seed"));
	if (tr->o->init)
		printf("initial weights: %s (the EMA starts from them; fresh optimizer state)\n",
		       tr->o->init);
	rt_strbuf hyper = { 0 };
	cli_hyper_describe(&tr->state, &hyper, 0);
	if (hyper.p && *hyper.p)
		printf("hyperparameters: %s\n", hyper.p);
	rt_sb_free(&hyper);
	rt_strbuf saving = { 0 };
	describe_saving(tr->o, &saving);
	if (saving.p)
		printf("%s\n", saving.p);
	rt_sb_free(&saving);
	fflush(stdout);
	tr->last_save = rt_seconds();
	cli_progress_start(&tr->pg, "step", tr->o->steps);
}

/* Several ranks: what the gradient exchange cost (its bytes are one
 * gradient's, whatever the number of ranks, plus the loss and stop flag;
 * its time includes waiting for the slowest rank). */
static void report_exchange(const trainer *tr)
{
	double mb = (double)(tr->dist.npack + CLI_DIST_EXTRA) * sizeof(float) / 1e6;
	if (tr->ran > 0 && tr->ran_s > 0)
		printf("allreduce: %.2f MB per rank per step, %.2f ms per step with the wait for the "
		       "slowest rank (%.1f %% of the steps' time)\n", mb,
		       1e3 * tr->exchanged / (double)tr->ran, 100 * tr->exchanged / tr->ran_s);
}

/* SIGINT and SIGTERM end the run after the current step; a second one
 * kills it at once (SA_RESETHAND), which the atomic writes survive. */
static int train_run(trainer *tr)
{
	struct sigaction sa = { .sa_handler = on_interrupt, .sa_flags = SA_RESETHAND }, old_int,
	                 old_term;
	interrupted = 0;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);
	start(tr);
	cli_profile_start(tr->dev, tr->e);
	int rc = loop(tr);
	cli_progress_end(&tr->pg);
	if (!rc && tr->apply)
		report_exchange(tr);
	if (!rc && interrupted)
		printf("%s: stopping after step %lld\n", interrupted == SIGINT ? "interrupt" : "terminate",
		       (long long)iteration(tr));
	if (!rc && tr->dist.rank == 0)
		rc = save(tr);
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	if (!rc)
		printf("saved %s (step %lld)\n", tr->path, (long long)iteration(tr));
	cli_profile_report(tr->dev, tr->e);
	return rc;
}

/* Several ranks: rank 0 prints (the others' stdout goes to /dev/null), and
 * every rank must start from the same step with the same settings. */
static int check_ranks(trainer *tr)
{
	if (tr->dist.rank > 0 && !freopen("/dev/null", "w", stdout))
		return cli_fail(tr->o, "rank %d: cannot silence stdout", tr->dist.rank);
	if (tr->dist.size == 1)
		return 0;
	if (!cli_dist_same(&tr->dist, iteration(tr)) || !cli_dist_same(&tr->dist, tr->o->steps) ||
	    !cli_dist_same(&tr->dist, tr->o->seed) || !cli_dist_same(&tr->dist, tr->position))
		return cli_fail(tr->o, "rank %d: the processes disagree on the step, --steps, --seed "
		                "or the data position (each must run the same command on the same "
		                "checkpoint)", tr->dist.rank);
	return 0;
}

/* The device; under MPI `--device opencl` gives each rank its own:
 * rank r takes opencl:r (device.h). */
static int open_device(trainer *tr)
{
	cli_opts *o = tr->o;
	if (tr->dist.size > 1 && strcmp(o->device, "opencl") == 0) {
		snprintf(tr->device, sizeof tr->device, "opencl:%d", tr->dist.rank);
		o->device = tr->device;
	}
	return !(tr->dev = cli_device(o, tr->p));
}

int cli_train(const cli_opts *opts, const rt_program *p)
{
	cli_opts o = *opts;
	trainer tr = { .o = &o, .p = p };
	snprintf(tr.path, sizeof tr.path, "%s/checkpoint.safetensors", o.out);
	int opened = cli_dist_open(&tr.dist);
	if (opened)
		return cli_fail(&o, opened == 1 ? "MPI_Init failed" : "started by an MPI launcher, but "
		                "built without MPI: each process would train alone into the same folder "
		                "(install Open MPI, tools/install-deps.sh, and rebuild ddpmc)");
	int rc = train_check_entry(&tr) || check_out(&tr) || open_device(&tr) ||
	         train_load_state(&tr) || check_ranks(&tr) || load_data(&tr) || prepare_out(&tr) ||
	         open_loader(&tr);
	if (!rc)
		rc = train_run(&tr);
	cli_sampler_free(tr.sm);
	cli_quality_free(tr.q);
	cli_metrics_close(&tr.mt);
	rt_device_free(tr.dev);
	rt_images_free(&tr.im);
	rt_loader_close(tr.ld);
	rt_set_free(&tr.state);
	rt_set_free(&tr.inputs);
	for (int k = 0; k < QUEUE_MAX; k++)
		rt_set_free(&tr.outputs[k]);
	cli_dist_close(&tr.dist, rc);
	return rc;
}
