/* cli: the command line of every executable ddpmc compiles (DESIGN.md §7).
 *
 *   OUT train  [--data PATH|fashion-mnist] [--steps N] [--out DIR] [--seed S]
 *              [--threads N] [--resume] [--batch B] [--save-every N]
 *              [--log-every N] [--device cpu]
 *   OUT sample [--ckpt FILE] [--n N] [--sampler ddpm|ddim] [--steps K]
 *              [--eta E] [--seed S] [--out grid.png] [--threads N] [--no-ema]
 *              [--device cpu]
 *   OUT info
 *
 * main.c hands cli_run the program the generated object embeds; the
 * commands live in train.c, sample.c and cli.c (info, flags). Every
 * command returns an exit status: 0 on success, else non-zero after one
 * line "OUT: cause" on stderr. */
#ifndef DDPMC_RUNTIME_CLI_H
#define DDPMC_RUNTIME_CLI_H

#include <stdint.h>

#include "pool.h"
#include "program.h"
#include "tensor.h"

/* What the generated object defines (program.h, THE CONTRACT). */
typedef struct {
	rt_kernel_fn const *kernels;
	int64_t nkernels;               /* -1: unknown */
	const char *json;
	int64_t json_len;
	const unsigned char *data;
	int64_t data_len;
} rt_embedded;

/* The whole command line (run.c): returns the exit status. */
int cli_run(int argc, char **argv, const rt_embedded *emb);


/* --- shared by the commands ---------------------------------------------- */

#define CLI_DEFAULT_DIR "runs/latest"
#define CLI_DEFAULT_DATA "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"

typedef struct {
	const char *prog;               /* argv[0]'s base name, for messages */
	const char *data, *out, *ckpt, *sampler, *device;
	int64_t steps, n, seed, threads, batch, save_every, log_every;
	double eta;
	int resume, no_ema;
	int has_steps, has_seed, has_ckpt, has_out, has_eta;
} cli_opts;

/* Prints "prog: message" on stderr; returns 1 (the exit status). */
int cli_fail(const cli_opts *o, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
double cli_now(void);
/* A pool of o->threads threads (0: one per CPU); NULL after cli_fail. */
rt_pool *cli_pool(const cli_opts *o);
/* Sets the scalar state tensor `name` (any dtype) when the state has it. */
void cli_set_scalar(rt_tensorset *state, const char *name, double v);
/* A scalar state or output tensor as a double (NAN when absent). */
double cli_scalar(const rt_tensorset *s, const char *name);
/* mkdir -p; 0 or -1 with errno set. */
int cli_mkdirs(const char *dir);
/* DDPMC_PROFILE=1: per-kernel times of entry e, the slowest first. */
void cli_profile_start(const rt_entry *e);
void cli_profile_report(const rt_entry *e);

enum { CLI_TRAIN = 1, CLI_SAMPLE = 2, CLI_INFO = 4 };

/* Parses the command line into *o and *which (a CLI_ command, or 0 when
 * only help was asked for). Returns 0 to go on (or exit 0 if *which is
 * 0), else the exit status, having printed the one-line cause. */
int cli_parse(int argc, char **argv, cli_opts *o, unsigned *which);

/* The commands (main.c dispatches). */
int cli_train(const cli_opts *o, const rt_program *p);
int cli_sample(const cli_opts *o, const rt_program *p);
int cli_info(const rt_program *p);

#endif
