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

#include "cli.h"
#include "cmdline.h"
#include "exec.h"

typedef enum { F_STR, F_INT, F_NUM, F_BOOL } flag_kind;

/* One row per flag and meaning: a flag whose meaning differs between
 * commands (--out, --steps, --n) has one row per meaning, with disjoint
 * command masks. The help is printed from these rows, and a default that
 * is a value (not in parentheses) is also what the parser starts from, so
 * the help cannot disagree with the parsing. */
typedef struct {
	const char *name;
	const char *arg;        /* the value in help ("N", "FILE"); NULL for F_BOOL */
	flag_kind kind;
	unsigned cmds;
	size_t at;              /* offsetof the value in cli_opts */
	size_t has;             /* offsetof its "given" flag, or 0 */
	double lo, hi;          /* F_INT, F_NUM: accepted range */
	const char *dflt;       /* a value, "(what happens without it)", or NULL (F_BOOL) */
	const char *meaning;    /* one line */
} flag;

#define TRAIN CLI_TRAIN
#define SAMPLE CLI_SAMPLE
#define EVAL CLI_EVAL
#define EXPORT CLI_EXPORT
#define TUNE CLI_TUNE
#define AT(m) offsetof(cli_opts, m)
static const flag flags[] = {
	{ "--data", "PATH", F_STR, TRAIN | EVAL, AT(data), 0, 0, 0, "fashion-mnist",
	  "the training images: an IDX file, CIFAR-10 .bin batches, a folder of PNGs, or fashion-mnist" },
	{ "--steps", "N", F_INT, TRAIN, AT(steps), AT(has_steps), 1, 1e9, "1000",
	  "train_step calls to run (with --resume: this many more)" },
	{ "--steps", "K", F_INT, SAMPLE | EVAL, AT(steps), AT(has_steps), 1, 1e9,
	  "(T for ddpm, min(T, 50) for ddim)", "inference steps, strided as diffusers' set_timesteps(K)" },
	{ "--out", "DIR", F_STR, TRAIN, AT(out), AT(has_out), 0, 0, CLI_DEFAULT_DIR,
	  "the run folder: checkpoints, metrics.jsonl, loss.png, samples/" },
	{ "--out", "FILE", F_STR, SAMPLE, AT(out), AT(has_out), 0, 0, "grid.png",
	  "the PNG grid of the images (none when --out-dir is given alone)" },
	{ "--out", "DIR", F_STR, EXPORT, AT(out), AT(has_out), 0, 0, "(required)",
	  "the folder to write (created when absent)" },
	{ "--seed", "S", F_INT, TRAIN | SAMPLE | EVAL | TUNE, AT(seed), AT(has_seed), 0, 2147483647, "0",
	  "the random seed: the same seed gives the same images, whatever the threads" },
	{ "--threads", "N", F_INT, TRAIN | SAMPLE | EVAL, AT(threads), 0, 1, 1024, "(one per core)",
	  "CPU threads (--device cpu)" },
	{ "--device", "DEV", F_STR, TRAIN | SAMPLE | EVAL, AT(device), 0, 0, 0, "cpu",
	  "where the kernels run: cpu, opencl, opencl:N, opencl:P.D, or list (prints them)" },
	{ "--device", "DEV", F_STR, TUNE, AT(device), 0, 0, 0, "opencl",
	  "the OpenCL device to tune for: opencl, opencl:N, opencl:P.D, or list (prints them)" },
	{ "--seconds", "S", F_NUM, TUNE, AT(seconds), AT(has_seconds), 0, 1e9, "(no limit)",
	  "no kernel is timed after S seconds; the next tune times those left" },
	{ "--resume", NULL, F_BOOL, TRAIN, AT(resume), 0, 0, 0, NULL,
	  "continue the run in --out from its checkpoint" },
	{ "--overwrite", NULL, F_BOOL, TRAIN, AT(overwrite), 0, 0, 0, NULL,
	  "replace the run already in --out" },
	{ "--save-minutes", "M", F_NUM, TRAIN, AT(save_minutes), 0, 0, 1e6, "10",
	  "also save when M minutes have passed since the last save (0: never)" },
	{ "--save-every", "N", F_INT, TRAIN, AT(save_every), 0, 0, 1e9, "0",
	  "also save every N steps (0: by time only)" },
	{ "--keep", "K", F_INT, TRAIN, AT(keep), 0, 1, 1e6, "3",
	  "numbered checkpoints kept, the newest" },
	{ "--log-every", "N", F_INT, TRAIN, AT(log_every), 0, 1, 1e9, "10",
	  "a metrics.jsonl line (and, off a terminal, a printed line) every N steps" },
	{ "--flip", NULL, F_BOOL, TRAIN, AT(flip), 0, 0, 0, NULL,
	  "mirror the images left-right at random" },
	{ "--sample-every", "N", F_INT, TRAIN, AT(sample_every), 0, 0, 1e9, "0",
	  "a grid of --n images (DDIM, 50 steps) in DIR/samples every N steps (0: none)" },
	{ "--eval-every", "N", F_INT, TRAIN, AT(eval_every), 0, 0, 1e9, "0",
	  "FID and KID of --n samples every N steps (0: never)" },
	{ "--n", "N", F_INT, TRAIN, AT(n), AT(has_n), 1, 1e6, "16",
	  "the images of each --sample-every grid and --eval-every score" },
	{ "--n", "N", F_INT, SAMPLE | EVAL, AT(n), AT(has_n), 1, 1e6, "16",
	  "images to draw, in rounds of the compiled batch (eval: use 1000 or more)" },
	{ "--scale", "K", F_INT, TRAIN | SAMPLE, AT(scale), 0, 1, 64, "(each image at least 64 px)",
	  "grid images magnified K times, nearest neighbour (1: actual size)" },
	{ "--test", "PATH", F_STR, TRAIN | EVAL, AT(test), 0, 0, 0, "(t10k beside --data)",
	  "the test set (IDX) that FID, KID or the accuracy is measured on" },
	{ "--ckpt", "FILE", F_STR, SAMPLE | EVAL | EXPORT, AT(ckpt), AT(has_ckpt), 0, 0,
	  CLI_DEFAULT_DIR "/checkpoint.safetensors", "the checkpoint whose weights are used" },
	{ "--weights", "W", F_STR, SAMPLE | EVAL, AT(weights), AT(has_weights), 0, 0, "(none)",
	  "parameters by name: a diffusers folder or a safetensors file (its configs checked); no EMA" },
	{ "--no-ema", NULL, F_BOOL, SAMPLE | EVAL | EXPORT, AT(no_ema), 0, 0, 0, NULL,
	  "the trained weights instead of the EMA weights" },
	{ "--sampler", "ddpm|ddim", F_STR, SAMPLE | EVAL, AT(sampler), 0, 0, 0, "ddpm",
	  "diffusers' DDPMScheduler or DDIMScheduler" },
	{ "--eta", "E", F_NUM, SAMPLE | EVAL, AT(eta), AT(has_eta), 0, 1e6, "0",
	  "DDIM only: the share of fresh noise (1 is DDPM-like)" },
	{ "--spacing", "leading|trailing|linspace", F_STR, SAMPLE | EVAL, AT(spacing), 0, 0, 0,
	  "leading", "diffusers' timestep_spacing" },
	{ "--no-clip", NULL, F_BOOL, SAMPLE | EVAL, AT(no_clip), 0, 0, 0, NULL,
	  "do not clip the predicted x0 (diffusers' clip_sample=False)" },
	{ "--clip-range", "R", F_NUM, SAMPLE | EVAL, AT(clip_range), AT(has_clip_range), 1e-6, 1e6,
	  "(the program's clip_sample_range)", "clip the predicted x0 to [-R, R]" },
	{ "--out-dir", "DIR", F_STR, SAMPLE, AT(out_dir), AT(has_out_dir), 0, 0, "(none)",
	  "also one PNG per image, DIR/image_0000.png, ... (DIR created when absent)" },
	{ "--resize", NULL, F_BOOL, TRAIN | EVAL, AT(images.resize), 0, 0, 0, NULL,
	  "image files: resize the shorter side to the model's (antialiased bilinear), then crop" },
	{ "--crop", "center|random", F_STR, TRAIN | EVAL, AT(crop), 0, 0, 0, "(center with --resize)",
	  "image files: crop to the model's size at the centre or at a seeded random place" },
	{ "--grey", NULL, F_BOOL, TRAIN | EVAL, AT(grey), 0, 0, 0, NULL,
	  "image files: convert colour to grey (BT.601 luma)" },
	{ "--rgb", NULL, F_BOOL, TRAIN | EVAL, AT(rgb), 0, 0, 0, NULL,
	  "image files: convert grey to RGB" },
	{ "--init", "W", F_STR, TRAIN, AT(init), 0, 0, 0, "(initialised from --seed)",
	  "a fresh run from the weights of W (a diffusers folder or a safetensors file)" },
};
#undef AT

/* The commands, in the order the help lists them; %s is the program. */
static const struct {
	unsigned bit;
	const char *name, *summary, *example;
} commands[] = {
	{ CLI_TRAIN, "train", "trains the model: train_step over batches of --data, saved in --out",
	  "%s train --steps 1000 --out runs/a --sample-every 200" },
	{ CLI_SAMPLE, "sample", "draws images from the trained weights into a PNG grid",
	  "%s sample --n 16 --sampler ddim --steps 50 --out grid.png" },
	{ CLI_EVAL, "eval", "FID and KID of --n samples (a classifier: its test accuracy)",
	  "%s eval --n 1000 --sampler ddim --steps 50" },
	{ CLI_EXPORT, "export", "a folder diffusers loads (a classifier: DIR/model.safetensors)",
	  "%s export --ckpt runs/latest/checkpoint.safetensors --out exported" },
	{ CLI_TUNE, "tune", "times each OpenCL kernel's variants on the device; later runs launch the fastest",
	  "%s tune --device opencl" },
	{ CLI_INFO, "info", "the model, its parameters, hyperparameters, entries and kernels",
	  "%s info" },
};
#define NCOMMANDS (sizeof commands / sizeof *commands)
#undef TRAIN
#undef SAMPLE
#undef EVAL
#undef EXPORT
#undef TUNE

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

int cli_check_out_dir(const cli_opts *o, const char *name, const char *dir)
{
	char why[4200];
	return rt_out_dir_check(dir, why, sizeof why) ? cli_fail(o, "%s %s: %s", name, dir, why) : 0;
}

int cli_check_out_file(const cli_opts *o, const char *name, const char *path)
{
	char why[4200];
	return rt_out_file_check(path, why, sizeof why) ? cli_fail(o, "%s %s: %s", name, path, why) : 0;
}

int cli_read_weights(const cli_opts *o, const rt_program *p, const char *w, rt_tensorset *out,
                     char *file)
{
	char err[2048];
	rt_weights_src src;
	int rc = rt_weights_read(w, p->meta, &src, out, err, sizeof err);
	snprintf(file, RT_WEIGHTS_PATH, "%s", src.file[0] ? src.file : w);
	return rc == RT_OK ? 0 : cli_fail(o, "%s", err);
}

/* --- profiling -------------------------------------------------------------- */

static int profiling(void)
{
	const char *s = getenv("DDPMC_PROFILE");
	return s && *s && strcmp(s, "0") != 0;
}

void cli_profile_start(const rt_device *d, const rt_entry *e)
{
	if (profiling())
		rt_exec_profile(rt_device_entry(d, e), 1);
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

void cli_profile_report(const rt_device *d, const rt_entry *e)
{
	e = rt_device_entry(d, e);
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

static void print_entries(const char *title, const rt_program *p)
{
	printf("%s\n", title);
	for (int i = 0; i < p->nentries; i++) {
		const rt_entry *e = &p->entries[i];
		printf("  %-18s %5d kernels %5d buffers  arena %9.1f MB  %10.4f GFLOP per call\n",
		       e->name, e->nk, e->nbuf, (double)e->arena_bytes / 1e6, e->flops * 1e-9);
	}
}

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
	print_entries("entries:", p);
	if (p->opencl)
		print_entries("entries on OpenCL (lowered for a GPU):", p->opencl);
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

/* --- help ------------------------------------------------------------------- */

static void command_help(const char *prog, size_t c)
{
	printf("%s %s: %s\n", prog, commands[c].name, commands[c].summary);
	for (size_t k = 0; k < sizeof flags / sizeof *flags; k++)
		if (flags[k].cmds & commands[c].bit)
			rt_help_line(flags[k].name, flags[k].arg, flags[k].meaning, flags[k].dflt);
	if (commands[c].bit == CLI_TRAIN) {
		cli_hyper_help();
		printf("  the batch is the compiled one: ddpmc compile MODEL.lua --set batch=N "
		       "(%s info shows it)\n", prog);
	}
	printf("  example: ");
	printf(commands[c].example, prog);
	printf("\n");
}

/* Every command's flags (COMMAND 0: all commands). */
static void help(const char *prog, unsigned cmd)
{
	if (!cmd)
		printf("usage: %s COMMAND [FLAGS]   (%s COMMAND --help: that command alone)\n"
		       "       %s --version         the ddpmc and LLVM that compiled it, the model and "
		       "its hash\n", prog, prog, prog);
	for (size_t c = 0; c < NCOMMANDS; c++)
		if (!cmd || commands[c].bit == cmd) {
			printf(cmd ? "" : "\n");
			command_help(prog, c);
		}
}

/* --- flags ------------------------------------------------------------------ */

/* "train", "sample and eval", ...: the commands of the bits cmds. */
static const char *command_names(unsigned cmds, char *buf, size_t len)
{
	size_t at = 0;
	int left = __builtin_popcount(cmds & ~(unsigned)CLI_INFO);
	buf[0] = 0;
	for (size_t k = 0; k < NCOMMANDS && at < len; k++)
		if (cmds & commands[k].bit & ~(unsigned)CLI_INFO)
			at += (size_t)snprintf(buf + at, len - at, "%s%s", commands[k].name,
			                       --left > 1 ? ", " : left == 1 ? " and " : "");
	return buf;
}

/* A flag that command `cmd` does not take: unknown, retired, or another command's. */
static int refuse_flag(const cli_opts *o, const char *cmd, const char *arg, size_t len,
                       unsigned owners)
{
	char names[64];
	if (len == 7 && !strncmp(arg, "--batch", len))
		return cli_fail(o, "%s: --batch is fixed when the program is compiled: ddpmc compile "
		                "MODEL.lua --set batch=N (%s info shows this one's)", cmd, o->prog);
	if (!owners)
		return cli_fail(o, "%s: unknown %s '%.*s' (see %s %s --help)", cmd,
		                arg[0] == '-' ? "flag" : "argument", (int)len, arg, o->prog, cmd);
	return cli_fail(o, "%s: %.*s is a flag of %s, not of %s (see %s %s --help)", cmd, (int)len,
	                arg, command_names(owners, names, sizeof names), cmd, o->prog, cmd);
}

/* The row of flag arg[0..len) for command cmd (NULL if none); *owners:
 * the commands that take it. */
static const flag *find_flag(const char *arg, size_t len, unsigned cmd, unsigned *owners)
{
	const flag *f = NULL;
	*owners = cli_hyper_find(arg, len) >= 0 ? CLI_TRAIN : 0;
	for (size_t k = 0; k < sizeof flags / sizeof *flags; k++)
		if (strlen(flags[k].name) == len && strncmp(flags[k].name, arg, len) == 0) {
			*owners |= flags[k].cmds;
			if (flags[k].cmds & cmd)
				f = &flags[k];
		}
	return f;
}

/* argv[first..argc) into o; `cmd` is one CLI_ command. */
static int parse_flags(int argc, char **argv, int first, unsigned cmd, cli_opts *o)
{
	for (int i = first; i < argc; i++) {
		const char *arg = argv[i], *eq = strchr(arg, '=');
		size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
		unsigned owners;
		const flag *f = find_flag(arg, len, cmd, &owners);
		int h = f ? -1 : cli_hyper_find(arg, len);
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

/* The defaults of command cmd's flags: every default of the table that is
 * a value (the help shows the same text). */
static void defaults(cli_opts *o, const char *argv0, unsigned cmd)
{
	const char *slash = strrchr(argv0, '/');
	memset(o, 0, sizeof *o);
	o->prog = slash ? slash + 1 : argv0;
	o->device = "cpu";      /* --device list, whatever the command (tune's default: opencl) */
	for (size_t k = 0; k < sizeof flags / sizeof *flags; k++)
		if ((flags[k].cmds & cmd) && flags[k].dflt && flags[k].dflt[0] != '(' &&
		    set_flag(o, &flags[k], flags[k].dflt, (char *)o))
			abort();        /* a default the table's own range refuses */
}

static unsigned command_bit(const char *name)
{
	for (size_t c = 0; c < NCOMMANDS; c++)
		if (!strcmp(name, commands[c].name))
			return commands[c].bit;
	return 0;
}

static int is_help(const char *arg)
{
	return !strcmp(arg, "--help") || !strcmp(arg, "-h");
}

int cli_parse(int argc, char **argv, cli_opts *o, unsigned *which)
{
	const char *argv0 = argc > 0 ? argv[0] : "ddpmc-program";
	const char *cmd = argc > 1 ? argv[1] : "";
	*which = command_bit(cmd);
	defaults(o, argv0, *which);
	if (argc < 2 || is_help(cmd) || !strcmp(cmd, "help")) {
		help(o->prog, argc > 2 ? command_bit(argv[2]) : 0);
		*which = 0;
		return argc < 2 ? 2 : 0;
	}
	if (!strcmp(cmd, "--version")) {
		*which = CLI_VERSION;
		return 0;
	}
	if (!*which)
		return cli_fail(o, "unknown command '%s' (train, sample, eval, export, tune, info; see %s "
		                "--help)", cmd, o->prog);
	for (int i = 2; i < argc; i++)
		if (is_help(argv[i])) {
			help(o->prog, *which);
			*which = 0;
			return 0;
		}
	if (parse_flags(argc, argv, 2, *which, o) || image_flags(o) ||
	    (*which == CLI_TRAIN && train_flags_used(o)))
		return 1;
	if (*which == CLI_EXPORT && !o->has_out)
		return cli_fail(o, "export needs --out DIR (see %s export --help)", o->prog);
	if (strcmp(o->device, "list") == 0) {   /* whatever the other flags */
		rt_device_list(stdout);
		*which = 0;
	}
	return 0;
}
