/* cli.c: flags, dispatch, `info`, and the helpers train.c and sample.c
 * share. Flags are one table: name, kind, which commands take it, where
 * the value goes and its range; anything else is rejected by name. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"
#include "exec.h"

typedef enum { F_STR, F_INT, F_NUM, F_BOOL } flag_kind;

typedef struct {
	const char *name;
	flag_kind kind;
	unsigned cmds;
	size_t at;              /* offsetof the value in cli_opts */
	size_t has;             /* offsetof its "given" flag, or 0 */
	double lo, hi;          /* F_INT, F_NUM: accepted range */
} flag;

#define AT(m) offsetof(cli_opts, m)
static const flag flags[] = {
	{ "--data", F_STR, CLI_TRAIN | CLI_EVAL, AT(data), 0, 0, 0 },
	{ "--steps", F_INT, CLI_TRAIN | CLI_SAMPLE | CLI_EVAL, AT(steps), AT(has_steps), 1, 1e9 },
	{ "--out", F_STR, CLI_TRAIN | CLI_SAMPLE, AT(out), AT(has_out), 0, 0 },
	{ "--seed", F_INT, CLI_TRAIN | CLI_SAMPLE | CLI_EVAL, AT(seed), AT(has_seed), 0, 2147483647 },
	{ "--threads", F_INT, CLI_TRAIN | CLI_SAMPLE | CLI_EVAL, AT(threads), 0, 1, 1024 },
	{ "--resume", F_BOOL, CLI_TRAIN, AT(resume), 0, 0, 0 },
	{ "--overwrite", F_BOOL, CLI_TRAIN, AT(overwrite), 0, 0, 0 },
	{ "--save-minutes", F_NUM, CLI_TRAIN, AT(save_minutes), 0, 0, 1e6 },
	{ "--keep", F_INT, CLI_TRAIN, AT(keep), 0, 1, 1e6 },
	{ "--flip", F_BOOL, CLI_TRAIN, AT(flip), 0, 0, 0 },
	{ "--batch", F_INT, CLI_TRAIN, AT(batch), 0, 1, 1e7 },
	{ "--save-every", F_INT, CLI_TRAIN, AT(save_every), 0, 0, 1e9 },
	{ "--log-every", F_INT, CLI_TRAIN, AT(log_every), 0, 1, 1e9 },
	{ "--device", F_STR, CLI_TRAIN | CLI_SAMPLE | CLI_EVAL, AT(device), 0, 0, 0 },
	{ "--ckpt", F_STR, CLI_SAMPLE | CLI_EVAL, AT(ckpt), AT(has_ckpt), 0, 0 },
	{ "--sample-every", F_INT, CLI_TRAIN, AT(sample_every), 0, 0, 1e9 },
	{ "--eval-every", F_INT, CLI_TRAIN, AT(eval_every), 0, 0, 1e9 },
	{ "--n", F_INT, CLI_TRAIN | CLI_SAMPLE | CLI_EVAL, AT(n), AT(has_n), 1, 1e6 },
	{ "--sampler", F_STR, CLI_SAMPLE | CLI_EVAL, AT(sampler), 0, 0, 0 },
	{ "--eta", F_NUM, CLI_SAMPLE | CLI_EVAL, AT(eta), AT(has_eta), 0, 1e6 },
	{ "--no-ema", F_BOOL, CLI_SAMPLE | CLI_EVAL, AT(no_ema), 0, 0, 0 },
	{ "--no-clip", F_BOOL, CLI_SAMPLE | CLI_EVAL, AT(no_clip), 0, 0, 0 },
	{ "--clip-range", F_NUM, CLI_SAMPLE | CLI_EVAL, AT(clip_range), AT(has_clip_range), 1e-6, 1e6 },
	{ "--spacing", F_STR, CLI_SAMPLE | CLI_EVAL, AT(spacing), 0, 0, 0 },
	{ "--out-dir", F_STR, CLI_SAMPLE, AT(out_dir), AT(has_out_dir), 0, 0 },
	{ "--weights", F_STR, CLI_SAMPLE | CLI_EVAL, AT(weights), AT(has_weights), 0, 0 },
	{ "--test", F_STR, CLI_TRAIN | CLI_EVAL, AT(test), 0, 0, 0 },
	{ "--resize", F_BOOL, CLI_TRAIN | CLI_EVAL, AT(images.resize), 0, 0, 0 },
	{ "--crop", F_STR, CLI_TRAIN | CLI_EVAL, AT(crop), 0, 0, 0 },
	{ "--grey", F_BOOL, CLI_TRAIN | CLI_EVAL, AT(grey), 0, 0, 0 },
	{ "--rgb", F_BOOL, CLI_TRAIN | CLI_EVAL, AT(rgb), 0, 0, 0 },
	{ "--init", F_STR, CLI_TRAIN, AT(init), 0, 0, 0 },
};
#undef AT

static const char usage[] =
	"usage: %s COMMAND [FLAGS]\n"
	"  train  [--data PATH|fashion-mnist] [--steps N] [--out DIR] [--seed S] [--threads N]\n"
	"         [--resume | --overwrite] [--init W] [--batch B] [--save-every N]\n"
	"         [--save-minutes M] [--keep K] [--log-every N] [--sample-every N]\n"
	"         [--n N] [--flip] [--eval-every N [--test PATH]] [--device DEV]\n"
	"         [--resize] [--crop center|random] [--grey | --rgb]   (image files)\n"
	"         (saves every 10 minutes and keeps the 3 newest checkpoints by default)\n"
	"         [--lr X] [--warmup N] [--lr-schedule constant|linear|cosine] [--total-steps N]\n"
	"         [--clip X] [--weight-decay X] [--grad-accum N] [--ema DECAY]\n"
	"         [--ema-warmup none|power|ratio] [--ema-inv-gamma X] [--ema-power X]\n"
	"         [--ema-min-decay X]   (defaults: the script's; see info)\n"
	"         --init W: a fresh run from the weights of W (a diffusers folder or a\n"
	"         safetensors file)\n"
	"  sample [--ckpt FILE | --weights W] [--n N] [--sampler ddpm|ddim] [--steps K]\n"
	"         [--eta E] [--spacing leading|trailing|linspace] [--no-clip | --clip-range R]\n"
	"         [--seed S] [--out grid.png] [--out-dir DIR] [--threads N] [--no-ema]\n"
	"         [--device DEV]\n"
	"  eval   [--ckpt FILE | --weights W] [--n N] [--data PATH] [--test PATH] [--seed S]\n"
	"         [--resize] [--crop center|random] [--grey | --rgb]\n"
	"         [sample's --sampler, --steps, ... flags] [--threads N] [--device DEV]\n"
	"         a classifier: its test accuracy; a diffusion model: FID and KID of N samples\n"
	"  export --ckpt FILE --out DIR [--no-ema]   a folder diffusers loads\n"
	"  info   the model, its parameters, entries and kernels\n"
	"DEV: cpu (default), opencl (the first GPU, else the first OpenCL device),\n"
	"  opencl:N (the N-th of those) or opencl:P.D; --device list shows them\n";

int cli_fail(const cli_opts *o, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s: ", o->prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}

double cli_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

rt_device *cli_device(const cli_opts *o, const rt_program *p)
{
	char err[1024];
	rt_device *d = rt_device_open(p, o->device, (int)o->threads, err, sizeof err);
	if (!d)
		cli_fail(o, "--device %s: %s", o->device, err);
	return d;
}

void cli_set_scalar(rt_tensorset *state, const char *name, double v)
{
	rt_tensor *t = rt_set_find(state, name);
	if (t && rt_numel(t->rank, t->shape) == 1)
		rt_store(t->dtype, t->data, 0, v);
}

double cli_scalar(const rt_tensorset *s, const char *name)
{
	const rt_tensor *t = rt_set_find(s, name);
	return t && rt_numel(t->rank, t->shape) >= 1 ? rt_load(t->dtype, t->data, 0) : NAN;
}

const char *cli_meta_str(const rt_program *p, const char *key, const char *dflt)
{
	const rt_json *v = rt_json_get(p->meta, key);
	return v && v->type == RT_JSTR ? v->str : dflt;
}

double cli_meta_num(const rt_program *p, const char *key, double dflt)
{
	const rt_json *v = rt_json_get(p->meta, key);
	return v && v->type == RT_JNUM ? v->num : dflt;
}

int cli_meta_bool(const rt_program *p, const char *key, int dflt)
{
	const rt_json *v = rt_json_get(p->meta, key);
	return v && v->type == RT_JBOOL ? v->b : dflt;
}

int cli_mkdirs(const char *dir)
{
	char path[4096];
	if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path) {
		errno = ENAMETOOLONG;
		return -1;
	}
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(path, 0777) && errno != EEXIST)
			return -1;
		*p = '/';
	}
	return mkdir(path, 0777) && errno != EEXIST ? -1 : 0;
}

int cli_read_weights(const cli_opts *o, const rt_program *p, const char *w, rt_tensorset *out,
                     char *file)
{
	char err[2048];
	rt_weights_src src;
	int rc = rt_weights_read(w, rt_json_get(p->meta, "config"), &src, out, err, sizeof err);
	snprintf(file, RT_WEIGHTS_PATH, "%s", src.file[0] ? src.file : w);
	return rc == RT_OK ? 0 : cli_fail(o, "%s", err);
}

/* --- profiling -------------------------------------------------------------- */

static int profiling(void)
{
	const char *s = getenv("DDPMC_PROFILE");
	return s && *s && strcmp(s, "0") != 0;
}

void cli_profile_start(const rt_entry *e)
{
	if (profiling())
		rt_exec_profile(e, 1);
}

static const rt_entry *sort_entry;

static int by_time(const void *a, const void *b)
{
	double ta = rt_exec_kernel_seconds(sort_entry, *(const int *)a);
	double tb = rt_exec_kernel_seconds(sort_entry, *(const int *)b);
	return ta < tb ? 1 : ta > tb ? -1 : 0;
}

/* Time per kind of kernel (its name after "kN_": the op at its root). */
static void profile_by_kind(const rt_entry *e, int64_t calls, double total)
{
	enum { MAXKIND = 64 };
	char kinds[MAXKIND][48];
	double secs[MAXKIND] = { 0 }, flops[MAXKIND] = { 0 };
	int nkind = 0;
	for (int k = 0; k < e->nk; k++) {
		const char *kind = strchr(e->k[k].name, '_');
		kind = kind ? kind + 1 : e->k[k].name;
		int i = 0;
		while (i < nkind && strcmp(kinds[i], kind) != 0)
			i++;
		if (i == nkind && nkind == MAXKIND)
			continue;
		if (i == nkind)
			snprintf(kinds[nkind++], sizeof kinds[0], "%s", kind);
		secs[i] += rt_exec_kernel_seconds(e, k) / (double)calls;
		flops[i] += e->k[k].flops;
	}
	fprintf(stderr, "by kind:\n");
	for (int i = 0; i < nkind; i++)
		if (secs[i] * (double)calls > 0.01 * total)
			fprintf(stderr, "  %-22s %9.3f ms %5.1f%% %8.2f GFLOP/s\n", kinds[i], 1e3 * secs[i],
			        100 * secs[i] * (double)calls / total, flops[i] / secs[i] * 1e-9);
}

void cli_profile_report(const rt_entry *e)
{
	if (!profiling() || e->nk == 0)
		return;
	double measured = 0;
	for (int k = 0; k < e->nk; k++)
		measured += rt_exec_kernel_seconds(e, k);
	if (measured <= 0) {
		fprintf(stderr, "profile %s: no kernel times\n", e->name);
		return;
	}
	int *order = malloc((size_t)e->nk * sizeof *order);
	double total = 0;
	if (!order)
		return;
	for (int k = 0; k < e->nk; k++) {
		order[k] = k;
		total += rt_exec_kernel_seconds(e, k);
	}
	sort_entry = e;
	qsort(order, (size_t)e->nk, sizeof *order, by_time);
	int64_t calls = rt_exec_calls(e) ? rt_exec_calls(e) : 1;
	fprintf(stderr, "profile %s: %.3f ms per call in %d kernels; the slowest:\n", e->name,
	        1e3 * total / (double)calls, e->nk);
	int shown = atoi(getenv("DDPMC_PROFILE"));   /* N > 1: the N slowest */
	shown = shown > 1 ? shown : 20;
	for (int i = 0; i < e->nk && i < shown; i++) {
		const rt_kernel *k = &e->k[order[i]];
		double s = rt_exec_kernel_seconds(e, order[i]) / (double)calls;
		fprintf(stderr, "  %6.3f ms %5.1f%% %8.2f GFLOP/s  rows %-8lld %s\n", 1e3 * s,
		        total > 0 ? 100 * s * (double)calls / total : 0, s > 0 ? k->flops / s * 1e-9 : 0,
		        (long long)k->rows, k->name);
	}
	free(order);
	profile_by_kind(e, calls, total);
}

/* --- info ------------------------------------------------------------------- */

int cli_info(const rt_program *p)
{
	int64_t trainable = 0, elems = 0, bytes = 0;
	int ntrain = 0;
	for (int i = 0; i < p->nparams; i++) {
		const rt_param *q = &p->params[i];
		elems += q->numel;
		bytes += q->numel * (int64_t)rt_dtype_size(q->dtype);
		if (q->trainable)
			trainable += q->numel, ntrain++;
	}
	printf("model: %s\n", p->model);
	if (p->image[0])
		printf("image: %lld x %lld x %lld\n", (long long)p->image[0], (long long)p->image[1],
		       (long long)p->image[2]);
	if (p->batch)
		printf("batch: %lld\n", (long long)p->batch);
	if (p->timesteps)
		printf("timesteps: %lld\n", (long long)p->timesteps);
	printf("params: %lld in %d trainable tensors\n", (long long)trainable, ntrain);
	printf("state: %d tensors, %lld elements, %.1f MB\n", p->nparams, (long long)elems,
	       (double)bytes / 1e6);
	cli_hyper_info(p);
	printf("entries:\n");
	for (int i = 0; i < p->nentries; i++) {
		const rt_entry *e = &p->entries[i];
		printf("  %-18s %5d kernels %5d buffers  arena %9.1f MB  %10.4f GFLOP per call\n",
		       e->name, e->nk, e->nbuf, (double)e->arena_bytes / 1e6, e->flops * 1e-9);
	}
	return 0;
}

/* --- flags ------------------------------------------------------------------ */

int cli_number(const cli_opts *o, const char *name, const char *v, double lo, double hi,
               int integer, double *out)
{
	char *end;
	errno = 0;
	double x = integer ? (double)strtoll(v, &end, 10) : strtod(v, &end);
	if (errno || end == v || *end || !isfinite(x) || x < lo || x > hi)
		return integer ? cli_fail(o, "%s: expected an integer in [%.0f, %.0f], got '%s'", name, lo,
		                          hi, v)
		               : cli_fail(o, "%s: expected a number in [%g, %g], got '%s'", name, lo, hi, v);
	*out = x;
	return 0;
}

static int set_flag(const cli_opts *o, const flag *f, const char *v, char *base)
{
	double x;
	if (f->kind == F_STR) {
		if (!*v)
			return cli_fail(o, "%s needs a value", f->name);
		*(const char **)(base + f->at) = v;
	} else if (cli_number(o, f->name, v, f->lo, f->hi, f->kind == F_INT, &x)) {
		return 1;
	} else if (f->kind == F_INT) {
		*(int64_t *)(base + f->at) = (int64_t)x;
	} else {
		*(double *)(base + f->at) = x;
	}
	return 0;
}

/* "train", "sample and eval", ...: the commands of the bits cmds. */
static const char *command_names(unsigned cmds, char *buf, size_t len)
{
	static const struct { unsigned bit; const char *name; } names[] = {
		{ CLI_TRAIN, "train" }, { CLI_SAMPLE, "sample" }, { CLI_EVAL, "eval" },
	};
	size_t at = 0;
	int left = __builtin_popcount(cmds & (CLI_TRAIN | CLI_SAMPLE | CLI_EVAL));
	buf[0] = 0;
	for (size_t k = 0; k < sizeof names / sizeof *names && at < len; k++)
		if (cmds & names[k].bit)
			at += (size_t)snprintf(buf + at, len - at, "%s%s", names[k].name,
			                       --left > 1 ? ", " : left == 1 ? " and " : "");
	return buf;
}

/* A flag that command `cmd` does not take: unknown, or another command's. */
static int refuse_flag(const cli_opts *o, const char *cmd, const char *arg, size_t len,
                       unsigned owners)
{
	char names[64];
	if (!owners)
		return cli_fail(o, "%s: unknown %s '%.*s' (see %s --help)", cmd,
		                arg[0] == '-' ? "flag" : "argument", (int)len, arg, o->prog);
	return cli_fail(o, "%s: %.*s is a flag of %s, not of %s (see %s --help)", cmd, (int)len, arg,
	                command_names(owners, names, sizeof names), cmd, o->prog);
}

/* argv[first..argc) into o; `cmd` is one of CLI_TRAIN, CLI_SAMPLE, CLI_INFO. */
static int parse_flags(int argc, char **argv, int first, unsigned cmd, cli_opts *o)
{
	for (int i = first; i < argc; i++) {
		const char *arg = argv[i], *eq = strchr(arg, '=');
		size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
		const flag *f = NULL;
		for (size_t k = 0; k < sizeof flags / sizeof *flags; k++)
			if (strlen(flags[k].name) == len && strncmp(flags[k].name, arg, len) == 0)
				f = &flags[k];
		int h = f ? -1 : cli_hyper_find(arg, len);
		unsigned owners = f ? f->cmds : h >= 0 ? CLI_TRAIN : 0;
		if (!(owners & cmd))
			return refuse_flag(o, argv[1], arg, len, owners);
		if (h < 0 && f->kind == F_BOOL) {
			if (eq)
				return cli_fail(o, "%s takes no value", f->name);
			*(int *)((char *)o + f->at) = 1;
			continue;
		}
		const char *v = eq ? eq + 1 : i + 1 < argc ? argv[++i] : NULL;
		if (!v)
			return cli_fail(o, "%.*s needs a value", (int)len, arg);
		if (h >= 0 ? cli_hyper_parse(o, h, v) : set_flag(o, f, v, (char *)o))
			return 1;
		if (h < 0 && f->has)
			*(int *)((char *)o + f->has) = 1;
	}
	return 0;
}

/* train's flags that only serve another: refused when it is absent, since
 * they would do nothing. 0, or 1 after cli_fail. */
static int train_flags_used(const cli_opts *o)
{
	if (o->has_n && !o->sample_every && !o->eval_every)
		return cli_fail(o, "train: --n is the number of images of --sample-every and "
		                "--eval-every; give one of them");
	if (o->test && !o->eval_every)
		return cli_fail(o, "train: --test is the test set of --eval-every; give it too");
	return 0;
}

/* --crop, --grey and --rgb into o->images. 0, or 1 after cli_fail. */
static int image_flags(cli_opts *o)
{
	if (o->grey && o->rgb)
		return cli_fail(o, "--grey and --rgb exclude each other");
	o->images.channels = o->grey ? RT_CHANNELS_GREY : o->rgb ? RT_CHANNELS_RGB
	                                                         : RT_CHANNELS_AS_IS;
	if (!o->crop)
		return 0;
	if (strcmp(o->crop, "center") != 0 && strcmp(o->crop, "random") != 0)
		return cli_fail(o, "--crop %s: expected center or random", o->crop);
	o->images.crop = o->crop[0] == 'c' ? RT_CROP_CENTER : RT_CROP_RANDOM;
	return 0;
}

static void defaults(cli_opts *o, const char *argv0)
{
	const char *slash = strrchr(argv0, '/');
	memset(o, 0, sizeof *o);
	o->prog = slash ? slash + 1 : argv0;
	o->data = RT_FASHION_MNIST;
	o->out = NULL;
	o->sampler = "ddpm";
	o->spacing = "leading";
	o->device = "cpu";
	o->steps = 1000;
	o->n = 16;
	o->log_every = 10;
	o->save_minutes = 10;
	o->keep = 3;
}

int cli_parse(int argc, char **argv, cli_opts *o, unsigned *which)
{
	defaults(o, argc > 0 ? argv[0] : "ddpmc-program");
	if (argc < 2) {
		fprintf(stderr, usage, o->prog);
		return 2;
	}
	const char *cmd = argv[1];
	int help = !strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help");
	for (int i = 2; i < argc; i++)
		help |= !strcmp(argv[i], "--help") || !strcmp(argv[i], "-h");
	*which = !strcmp(cmd, "train") ? CLI_TRAIN : !strcmp(cmd, "sample") ? CLI_SAMPLE
	       : !strcmp(cmd, "eval") ? CLI_EVAL : !strcmp(cmd, "info") ? CLI_INFO : 0;
	if (help && (*which || cmd[0] == '-' || !strcmp(cmd, "help"))) {
		printf(usage, o->prog);
		*which = 0;
		return 0;
	}
	if (!*which)
		return cli_fail(o, "unknown command '%s' (train, sample, eval, export, info)", cmd);
	if (parse_flags(argc, argv, 2, *which, o) || image_flags(o) ||
	    (*which == CLI_TRAIN && train_flags_used(o)))
		return 1;
	if (strcmp(o->device, "list") == 0) {   /* whatever the other flags */
		rt_device_list(stdout);
		*which = 0;
	}
	return 0;
}
