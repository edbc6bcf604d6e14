/* cli: the command line of every executable ddpmc compiles (docs/semantics.md §7).
 *
 *   OUT train | sample | eval | export | tune | info [FLAGS]
 *   OUT [COMMAND] --help       every flag of the command(s): meaning, default, an example
 *   OUT --version              the ddpmc and LLVM that compiled it, the model, its hash
 *   OUT train|sample|eval --device list    the OpenCL devices (numbered P.D) and the CPU
 *
 * The flags are one table in cli.c (name, commands, range, default,
 * meaning) that both the parser and the help read; the batch is not a
 * flag: it is compiled in (ddpmc compile --set batch=N).
 *
 * DEV (device.h): cpu (default), opencl (the first GPU, else the first
 * OpenCL device) or opencl:P.D. The commands run entries only through
 * rt_device_run; they call rt_device_sync before reading or saving state
 * on the host and rt_device_invalidate after writing it.
 *
 * main.c hands cli_run the program the generated object embeds; the
 * commands live in train.c, sample.c, eval.c and cli.c (info, flags); progress.c
 * draws progress bars, metrics.c keeps DIR/metrics.jsonl, plot.c draws
 * the loss curve, rundir.c keeps the run folder's other files,
 * checkpoint.c checks the checkpoints the commands load and dist.c runs
 * train data-parallel under MPI. Every
 * command returns an exit status: 0 on success, else non-zero after one
 * line "OUT: cause" on stderr. */
#ifndef DDPMC_RUNTIME_CLI_H
#define DDPMC_RUNTIME_CLI_H

#include <signal.h>
#include <stdint.h>
#include <stdio.h>

#include "data.h"
#include "json.h"
#include "device.h"
#include "pool.h"
#include "program.h"
#include "tensor.h"
#include "weights.h"

/* What the generated object defines (program.h, THE CONTRACT). */
typedef struct {
	rt_kernel_fn const *kernels;
	int64_t nkernels;               /* -1: unknown */
	const char *json;
	int64_t json_len;
	const unsigned char *data;
	int64_t data_len;
	const char *cl_json;            /* ddpmc_opencl_json: the OpenCL program, when both */
	int64_t cl_json_len;            /* targets' are (0: json is the only one) */
	const unsigned char *cl_data;
	int64_t cl_data_len;
	const char *cl_source;          /* ddpmc_opencl_source; "" for the CPU only */
	int64_t cl_source_len;
	const char *build;              /* ddpmc_build: "ddpmc 0.1.0, LLVM 19.1.7"; NULL: unknown */
} rt_embedded;

/* The whole command line (run.c): returns the exit status. */
int cli_run(int argc, char **argv, const rt_embedded *emb);


/* --- shared by the commands ---------------------------------------------- */

#define CLI_DEFAULT_DIR "runs/latest"

enum { CLI_MAX_HYPER = 16 };

typedef struct {
	const char *prog;               /* argv[0]'s base name, for messages */
	const char *data, *out, *ckpt, *sampler, *device;
	int64_t steps, n, seed, threads, save_every, log_every;
	double eta;
	int resume, no_ema;
	int overwrite;                  /* train: replace the run already in --out */
	double save_minutes;            /* train: also save when this long has passed (0: never) */
	int64_t keep;                   /* train: numbered checkpoints kept */
	int has_steps, has_seed, has_ckpt, has_out, has_eta;
	int64_t sample_every;           /* train: a grid every N steps (0: none) */
	int flip;                       /* train: random horizontal flips */
	const char *out_dir, *weights;  /* sample: one PNG per image; diffusers weights */
	int has_out_dir, has_weights;
	const char *spacing;            /* sample: leading (default), trailing, linspace */
	double clip_range;              /* sample: x0 clipped to [-R, R] (default meta's) */
	int no_clip, has_clip_range;
	double hyper[CLI_MAX_HYPER];    /* train: --lr, --warmup, ... (hyper.c's order) */
	unsigned has_hyper;             /* bit h: hyper[h] was given */
	const char *test;               /* eval: the test set (default: t10k beside --data) */
	int has_n;
	int64_t eval_every;             /* train: FID and KID every N steps (0: never) */
	int64_t scale;                  /* sample, train: grid magnification (0: rt_grid_scale's) */
	rt_image_opts images;           /* train, eval: --resize, --crop, --grey, --rgb */
	const char *crop;               /* --crop as given (NULL: none) */
	int grey, rgb;
	const char *init;               /* train: a fresh run from these weights (weights.h) */
	double seconds;                 /* tune: no kernel timed after this long */
	int has_seconds;
} cli_opts;

/* Prints "prog: message" on stderr; returns 1 (the exit status). */
int cli_fail(const cli_opts *o, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* The device o->device for p, with o->threads threads on the CPU (0: one
 * per CPU); NULL after cli_fail. */
rt_device *cli_device(const cli_opts *o, const rt_program *p);
/* Sets the scalar state tensor `name` (any dtype) when the state has it. */
void cli_set_scalar(rt_tensorset *state, const char *name, double v);
/* A scalar state or output tensor as a double (NAN when absent). */
double cli_scalar(const rt_tensorset *s, const char *name);
/* The program's meta.KEY as a string, number or boolean; dflt when it is
 * absent or of another type. */
const char *cli_meta_str(const rt_program *p, const char *key, const char *dflt);
double cli_meta_num(const rt_program *p, const char *key, double dflt);
int cli_meta_bool(const rt_program *p, const char *key, int dflt);
/* Parses v, the value of flag `name`, as a number (an integer when
 * `integer`) in [lo, hi] into *out; 0, or 1 after cli_fail. */
int cli_number(const cli_opts *o, const char *name, const char *v, double lo, double hi,
               int integer, double *out);
/* Output paths, checked before any work (cmdline.h's rt_out_dir_check,
 * rt_out_file_check): 0, or 1 after cli_fail naming the flag `name`, the
 * path and the reason. */
int cli_check_out_dir(const cli_opts *o, const char *name, const char *dir);
int cli_check_out_file(const cli_opts *o, const char *name, const char *path);
/* The tensors of --weights or --init W (weights.h: a diffusers folder or
 * a safetensors file; its config.json and scheduler_config.json, when it
 * has them, checked against p's meta.config and schedule) into out; the
 * file read into file (RT_WEIGHTS_PATH bytes). 0, or 1 after cli_fail. */
int cli_read_weights(const cli_opts *o, const rt_program *p, const char *w, rt_tensorset *out,
                     char *file);
/* mkdir -p; 0 or -1 with errno set. */
int cli_mkdirs(const char *dir);
/* DDPMC_PROFILE=1: per-kernel times of entry e as device d runs it
 * (rt_device_entry: its own kernels), the slowest first. */
void cli_profile_start(const rt_device *d, const rt_entry *e);
void cli_profile_report(const rt_device *d, const rt_entry *e);

/* --- progress (progress.c) ----------------------------------------------------
 * On a terminal (stdout is a TTY) one line redrawn in place, at most ten
 * times a second: "LABEL done/total [#####.....] EXTRA ETA 1m05s"; the ETA
 * is the time per step so far times the steps left. Elsewhere nothing is
 * drawn (the commands print their plain periodic lines instead). */
typedef struct {
	int tty;                /* stdout is a terminal */
	const char *label;
	int64_t total;          /* steps in this run */
	double t0, last;        /* start; last redraw */
	int shown;              /* the bar is on the screen */
} cli_progress;

void cli_progress_start(cli_progress *pg, const char *label, int64_t total);
/* done of total; extra: e.g. "loss 0.0312 | 95.1 img/s" (may be NULL);
 * force: redraw even within a tenth of a second of the last one. */
void cli_progress_update(cli_progress *pg, int64_t done, const char *extra, int force);
/* Erases the bar so that a line can be printed (the next update redraws). */
void cli_progress_clear(cli_progress *pg);
/* Leaves the last state of the bar on the screen and ends the line. */
void cli_progress_end(cli_progress *pg);
/* "1h02m", "3m05s", "12s". */
const char *cli_duration(double secs, char *buf, size_t len);

/* --- metrics (metrics.c) -------------------------------------------------------
 * DIR/metrics.jsonl: one JSON object per logged step,
 *   {"step": 100, "loss": 0.0412, "loss_mean": 0.0435, "lr": 0.0002,
 *    "loss_scale": 1, "ema_decay": 0.9999, "batch": 64, "images_per_s": 95.2}
 * loss is that step's, loss_mean the mean since the previous line, lr and
 * ema_decay (absent without EMA weights) the ones that step applied, batch
 * the global batch (data-parallel: the processes times each one's); with
 * train --eval-every the lines of those steps also hold "fid" and "kid". A fresh
 * run starts the file afresh; a resumed one keeps the lines up to the
 * checkpoint's step (a run killed after its last save logged steps that
 * the resumed run does again) and appends. Every line is flushed. */
typedef struct {
	int64_t step;
	double loss, loss_mean, lr, loss_scale, ema_decay, images_per_s;
	int64_t batch;                  /* the global batch */
	double fid, kid;        /* train --eval-every: on that step's line, else NAN (not written) */
} cli_metric;

typedef struct {
	FILE *f;
	char path[4096];
	cli_metric *m;          /* every line so far, for the plot */
	int64_t n, cap;
} cli_metrics;

/* Opens DIR/metrics.jsonl; with resume, keeps the lines of steps <= upto.
 * Returns 0, or 1 after cli_fail. */
int cli_metrics_open(cli_metrics *mt, const cli_opts *o, const char *dir, int resume,
                     int64_t upto);
int cli_metrics_add(cli_metrics *mt, const cli_opts *o, const cli_metric *m);
void cli_metrics_close(cli_metrics *mt);

/* --- the run folder (rundir.c) ------------------------------------------------
 * Besides checkpoint.safetensors, metrics.jsonl and loss.png, every save
 * appears as DIR/checkpoint-STEP.safetensors (STEP in 8 digits or more), a
 * hard link to the checkpoint written: the K newest are kept. Each
 * returns 0, or -1 with errno set unless said otherwise. */

/* The name of a run's file (a checkpoint or metrics) that dir holds, or
 * NULL when it holds none. */
const char *cli_run_found(const char *dir);
/* Removes the temporary files of saves whose process is gone (a kill
 * during rt_st_write), saying so on stdout. */
int cli_run_clean_stale(const char *dir);
/* Removes the checkpoints (numbered too), metrics and plot of a run. */
int cli_run_clear(const char *dir);
/* Links ckpt, just saved at step, as dir's numbered checkpoint and
 * removes all but the `keep` newest. */
int cli_run_keep(const char *dir, const char *ckpt, int64_t step, int64_t keep);

/* --- checkpoint checks (checkpoint.c) -------------------------------------------
 * Each returns 0, or 1 after cli_fail naming path (or what) and the field. */

/* The checkpoint's metadata `key` as an integer in [lo, hi] into *out
 * (left as it is when the key is absent). */
int cli_ckpt_int(const cli_opts *o, const rt_tensorset *ckpt, const char *path, const char *key,
                 int64_t lo, int64_t hi, int64_t *out);
/* Every floating-point value of s is finite. */
int cli_ckpt_finite(const cli_opts *o, const rt_tensorset *s, const char *what);
/* The checkpoint's metadata config (the program's meta when it was saved)
 * agrees with p's but for the batch and the optimizer's defaults; a
 * checkpoint without config passes. */
int cli_ckpt_config(const cli_opts *o, const rt_tensorset *ckpt, const char *path,
                    const rt_program *p);

/* plot.c: the loss curve (loss_mean against step, log-scale loss axis,
 * with the axis ranges written in small digits) as a PNG; RT_OK or RT_ERR. */
int cli_plot_loss(const char *path, const cli_metric *m, int64_t n, char *err, size_t errlen);

/* --- sampling (sample.c), shared by `sample` and train's --sample-every ---------
 * A sampler runs sample_ddpm or sample_ddim (o->sampler) for K steps
 * (o->steps when has_steps, else T for ddpm and min(T, 50) for ddim) over
 * the timesteps of o->spacing (timesteps.h), with eta o->eta and x0
 * clipped as meta.clip_sample and meta.clip_sample_range say unless
 * o->no_clip or o->clip_range, on weights set by cli_sampler_weights. */
typedef struct cli_sampler cli_sampler;

/* NULL after cli_fail. */
cli_sampler *cli_sampler_new(const cli_opts *o, const rt_program *p, rt_device *dev);
/* The sampler's state from weights (a checkpoint or a diffusers file: the
 * tensors it names; NULL: everything from the seed; `name` says which in
 * messages), then, when ema is asked and the EMA has warmed up, every
 * ema.NAME copied into NAME; the device's copy is invalidated. The state
 * tensors keep their addresses from one call to the next. 0, or 1 after
 * cli_fail. */
int cli_sampler_weights(cli_sampler *sm, const rt_tensorset *weights, const char *name,
                        uint64_t seed, int ema);
/* What cli_sampler_weights used, for the startup line: "the EMA weights of
 * NAME", or the trained ones when the EMA still gives the initial weights
 * a share over 1 % (state optim.ema_init_share), saying so. */
const char *cli_sampler_weights_used(const cli_sampler *sm);
/* The weights `sample` and `eval` use: --weights, --ckpt, or the default
 * checkpoint (when absent: untrained weights from the seed, with a
 * warning), EMA unless --no-ema or --weights. 0, or 1 after cli_fail. */
int cli_sampler_load(cli_sampler *sm);
/* Draws n images (n, C, H, W) from the seed; *images points into the
 * sampler (valid until the next call). bar: a progress bar over the
 * reverse steps on a terminal, else plain lines every 100 steps (-1: no
 * output at all). stop: when non-NULL and set, returns 2 between steps.
 * 0, or 1 after cli_fail. */
int cli_sampler_draw(cli_sampler *sm, int64_t n, int64_t seed, int bar,
                     volatile sig_atomic_t *stop, const float **images);
/* The shape of one image: C, H, W. */
void cli_sampler_image(const cli_sampler *sm, int64_t chw[3]);
int64_t cli_sampler_steps(const cli_sampler *sm);
void cli_sampler_free(cli_sampler *sm);

/* --- hyperparameters (hyper.c) ------------------------------------------------
 * train's --lr, --warmup, --lr-schedule, --total-steps, --clip,
 * --weight-decay, --grad-accum, --ema, --ema-warmup, --ema-inv-gamma,
 * --ema-power, --ema-min-decay: each sets the state tensor hp.NAME that the
 * compiled train_step reads (lua/ddpm/optim.lua). */

/* The hyperparameter flag arg[0..len) (its index), or -1. */
int cli_hyper_find(const char *arg, size_t len);
/* v as the value of hyperparameter h, into o; 0, or 1 after cli_fail. */
int cli_hyper_parse(cli_opts *o, int h, const char *v);
/* Writes the flags' values into the state and gives hp.total_steps its
 * default (a decaying schedule's end: the last step of this run) when it
 * is 0; 0, or 1 after cli_fail (a flag the program has no hp.NAME for). */
int cli_hyper_apply(const cli_opts *o, rt_tensorset *state);
/* train --help: a line per hyperparameter flag (rt_help_line). */
void cli_hyper_help(void);
/* The state's hyperparameters, "lr 0.001, warmup 10, ..." or as a JSON object. */
void cli_hyper_describe(const rt_tensorset *state, rt_strbuf *b, int json);
/* info: the script's values (the meta "optimizer") by flag. */
void cli_hyper_info(const rt_program *p);

/* --- sample quality (eval.c), shared by `eval` and train's --eval-every -------
 * The features of the test set (and of n training images, the floor)
 * through the program's `features` entry, computed once; then FID and KID
 * (fid.h) of any n images against the test set. */
typedef struct cli_quality cli_quality;
typedef struct {
	double fid, kid, kid_std;
} cli_scores;

/* 0 when p has the metric's features entry; else 1 after cli_fail saying
 * the metric is not available for p's images. */
int cli_quality_available(const cli_opts *o, const rt_program *p);
/* NULL after cli_fail (cli_quality_available's, or the test set's). */
cli_quality *cli_quality_new(const cli_opts *o, const rt_program *p, rt_device *dev);
/* The floor: n training images (the seed's first n) against the test set. */
int cli_quality_floor(cli_quality *q, int64_t n, cli_scores *out);
/* images (n, C, H, W) in [-1, 1] against the test set. 0, or 1 after cli_fail. */
int cli_quality_score(cli_quality *q, const float *images, int64_t n, cli_scores *out);
void cli_quality_free(cli_quality *q);

/* --- data parallelism (dist.c) -------------------------------------------------
 * train under an MPI launcher is rank `rank` of `size` (elsewhere 0 of 1):
 * every rank trains on its shard of each global batch, and the ranks
 * average their gradient sums between train_grads and train_apply. */
enum { CLI_DIST_EXTRA = 4 };    /* values cli_dist_reduce sums besides the gradients */

typedef struct {
	int rank, size;
	int mpi;                        /* MPI_Init was called */
	rt_tensor **bound;              /* the tensors averaged (cli_dist_bind) */
	int nbound;
	float *pack;                    /* (npack + CLI_DIST_EXTRA) the message */
	int64_t npack;
} cli_dist;

/* Rank and size; MPI_Init when launched by MPI. 0; 1 when MPI_Init failed;
 * 2 when launched by MPI in a build without it. */
int cli_dist_open(cli_dist *d);
/* Binds the f32 tensors of state whose names start with prefix; 0, or 1
 * when out of memory. */
int cli_dist_bind(cli_dist *d, rt_tensorset *state, const char *prefix);
/* Every bound tensor becomes its mean over the ranks and extra[0..nextra)
 * (nextra <= CLI_DIST_EXTRA, as f32) its sum, in one MPI_Allreduce. 0, or 1. */
int cli_dist_reduce(cli_dist *d, double *extra, int nextra);
/* 1 when every rank passed the same v (collective). */
int cli_dist_same(const cli_dist *d, int64_t v);
/* Frees d; ends MPI: MPI_Abort when rc != 0 on one of several ranks (so
 * that none waits for this one forever), else MPI_Finalize. */
void cli_dist_close(cli_dist *d, int rc);

enum { CLI_TRAIN = 1, CLI_SAMPLE = 2, CLI_INFO = 4, CLI_EVAL = 8, CLI_EXPORT = 16,
       CLI_VERSION = 32, CLI_TUNE = 64 };

/* Parses the command line into *o and *which (a CLI_ command, or 0 when
 * only help was asked for). Returns 0 to go on (or exit 0 if *which is
 * 0), else the exit status, having printed the one-line cause.
 * `OUT --help` prints every command's flags, `OUT COMMAND --help` one
 * command's: each flag with its meaning and default, from the flag table
 * the parser reads, and an example. */
int cli_parse(int argc, char **argv, cli_opts *o, unsigned *which);

/* The commands (main.c dispatches). */
int cli_train(const cli_opts *o, const rt_program *p);
int cli_sample(const cli_opts *o, const rt_program *p);
int cli_info(const rt_program *p);
int cli_eval(const cli_opts *o, const rt_program *p);
/* OUT export [--ckpt FILE] --out DIR [--no-ema] (export.c). */
int cli_export(const cli_opts *o, const rt_program *p);
/* OUT tune [--device DEV] [--seed S] (tune.c). */
int cli_tune(const cli_opts *o, const rt_program *p);
/* OUT --version: the ddpmc and LLVM versions that compiled it (emb->build),
 * the model and the FNV-1a 64 hash of its descriptor (run.c). */
int cli_version(const rt_embedded *emb, const rt_program *p);

#endif
