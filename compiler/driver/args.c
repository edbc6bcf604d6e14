/* args: the flags of the ddpmc commands: one table (name, commands that
 * take it, where the value goes, default, meaning) that the parser, the
 * defaults and `ddpmc COMMAND --help` all read. Unknown flags, another
 * command's flags and missing values are errors. Also the check of an
 * output path, made before a command does its work. */
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmdline.h"
#include "driver.h"
static int need_value(int i, int argc, char **argv)
{
	if (i + 1 < argc)
		return 0;
	fprintf(stderr, "ddpmc: %s needs a value\n", argv[i]);
	return -1;
}

static int parse_set(const char *kv, drv_args *a)
{
	char *eq = strchr(kv, '=');
	if (!eq || eq == kv || a->nset == DRV_MAXSET) {
		fprintf(stderr, "ddpmc: --set wants NAME=VALUE, got '%s'\n", kv);
		return -1;
	}
	size_t len = (size_t)(eq - kv);
	char *key = a->set_keys[a->nset];
	if (len >= sizeof a->set_keys[0]) {
		fprintf(stderr, "ddpmc: --set: the name in '%s' is longer than %zu bytes\n", kv,
		        sizeof a->set_keys[0] - 1);
		return -1;
	}
	memcpy(key, kv, len);
	key[len] = 0;
	a->set[a->nset++] = (fe_option){ key, eq + 1 };
	return 0;
}

/* *out := s, an integer from min to max (the value of `flag`). */
static int parse_count(const char *flag, const char *s, unsigned long long min,
                       unsigned long long max, unsigned long long *out)
{
	char *end;
	*out = strtoull(s, &end, 0);
	if (*s && !*end && *s != '-' && *out >= min && *out <= max)
		return 0;
	fprintf(stderr, "ddpmc: %s wants an integer from %llu to %llu, got '%s'\n", flag, min, max, s);
	return -1;
}

/* A_OPT: an integer (long long) given as FLAG=VALUE, or FLAG alone: -1. */
typedef enum { A_STR, A_BOOL, A_SET, A_U64, A_I64, A_OPT } arg_kind;

typedef struct {
	const char *name, *arg;         /* arg: the value in help; NULL for A_BOOL */
	arg_kind kind;
	unsigned cmds;                  /* DRV_ bits */
	size_t at;                      /* offsetof the value in drv_args */
	unsigned long long lo, hi;      /* A_U64, A_I64 */
	const char *dflt;               /* a value (set before parsing), "(a description)" or NULL */
	const char *meaning;
} drv_flag;

#define STR_(x) #x
#define STR(x) STR_(x)
#define AT(m) offsetof(drv_args, m)
static const drv_flag flags[] = {
	{ "-o", "OUT", A_STR, DRV_COMPILE, AT(output), 0, 0, "(the script's name without .lua)",
	  "the executable to write (its folder must exist)" },
	{ "--target", "cpu|opencl|all", A_STR, DRV_COMPILE, AT(target), 0, 0, "all",
	  "native CPU kernels, OpenCL C, or both (the executable's --device picks)" },
	{ "--cpu", "NAME|help", A_STR, DRV_COMPILE, AT(cpu), 0, 0, "(this machine's CPU)",
	  "the LLVM CPU to generate code for; help lists the names" },
	{ "--report", NULL, A_BOOL, DRV_COMPILE, AT(report), 0, 0, NULL,
	  "every kernel with its ops, FLOPs and bytes, and the memory plan's peak" },
	{ "--tune", "[=SECONDS]", A_OPT, DRV_COMPILE, AT(tune_seconds), 1, 86400,
	  "(off; " STR(DRV_TUNE_SECONDS) " s when given alone)",
	  "time the candidate register tiles of every contraction on this machine within SECONDS "
	  "and keep the fastest in the tuning file" },
	{ "--tuning", "FILE", A_STR, DRV_COMPILE, AT(tuning), 0, 0,
	  "($XDG_CACHE_HOME/ddpmc/tuning or ~/.cache/ddpmc/tuning)",
	  "the tuning file: its results for this machine fix the register tiles; --tune adds to it" },
	{ "--winograd", "tuned|none|2x2|4x4", A_STR, DRV_COMPILE, AT(winograd), 0, 0, "tuned",
	  "how 3x3, stride-1, padding-1 convolutions and their gradients run: each directly or by "
	  "Winograd F(2x2, 3x3) or F(4x4, 3x3) as --tune measured it, else the cost model's choice; "
	  "every one directly (none), or by F(2x2, 3x3) or F(4x4, 3x3)" },
	{ "--json", NULL, A_BOOL, DRV_INSPECT, AT(json), 0, 0, NULL, "print one JSON object" },
	{ "--entry", "NAME", A_STR, DRV_GRAPH, AT(entry), 0, 0, "(every node)",
	  "only the nodes this entry needs" },
	{ "--dot", NULL, A_BOOL, DRV_GRAPH, AT(dot), 0, 0, NULL, "print Graphviz" },
	{ "--entry", "NAME", A_STR, DRV_RUN, AT(entry), 0, 0, "(required)", "the entry to run" },
	{ "-o", "O.safetensors", A_STR, DRV_RUN, AT(output), 0, 0, "(required)",
	  "the entry's outputs, by name" },
	{ "--weights", "W.safetensors", A_STR, DRV_RUN, AT(weights), 0, 0, "(initialised from --seed)",
	  "parameter values by name, any dtype (diffusers' files as they are)" },
	{ "--inputs", "I.safetensors", A_STR, DRV_RUN, AT(inputs), 0, 0, "(none)",
	  "the entry's inputs by name" },
	{ "--interp", NULL, A_BOOL, DRV_RUN, AT(interp), 0, 0, NULL,
	  "run in the reference interpreter instead of compiled code" },
	{ "--kernels", NULL, A_BOOL, DRV_RUN, AT(kernels), 0, 0, NULL,
	  "run the lowered kernel IR in its plain-C evaluator" },
	{ "--seed", "S", A_U64, DRV_RUN, AT(seed), 0, ULLONG_MAX, "0",
	  "the seed of the initial parameters" },
	{ "-o", "MODEL.lua", A_STR, DRV_IMPORT, AT(output), 0, 0, "(required)",
	  "the model script to write (its folder must exist)" },
	{ "--force", NULL, A_BOOL, DRV_IMPORT, AT(force), 0, 0, NULL, "replace -o's file if it exists" },
	{ "--set", "NAME=VALUE", A_SET, DRV_ALL, 0, 0, 0, "(none; repeatable)",
	  "an option for the script, read with ddpm.option(NAME, default)" },
	{ "--lua-steps", "M", A_I64, DRV_ALL, AT(limits.msteps), 1, 1ull << 40, STR(FE_DEFAULT_MSTEPS),
	  "the script's budget in million Lua instructions" },
	{ "--lua-memory", "MB", A_I64, DRV_ALL, AT(limits.memory_mb), 1, 1ull << 40,
	  STR(FE_DEFAULT_MEMORY_MB), "the script's memory cap in megabytes" },
};
#undef AT
#define NFLAGS (sizeof flags / sizeof *flags)

static int set_value(const drv_flag *f, const char *v, drv_args *a)
{
	unsigned long long n;
	char *at = (char *)a + f->at;
	switch (f->kind) {
	case A_STR: *(const char **)at = v; return 0;
	case A_BOOL: *(int *)at = 1; return 0;
	case A_SET: return parse_set(v, a);
	case A_OPT:
		if (!v) {
			*(long long *)at = -1;
			return 0;
		}
		/* fall through */
	case A_U64:
	case A_I64:
		if (parse_count(f->name, v, f->lo, f->hi, &n) < 0)
			return -1;
		if (f->kind == A_U64)
			*(unsigned long long *)at = n;
		else
			*(long long *)at = (long long)n;
		return 0;
	}
	return -1;
}

/* The row of `arg` for command cmd, or NULL after saying why not. */
static const drv_flag *find_flag(const char *arg, unsigned cmd, const char *cmdname)
{
	unsigned owners = 0;
	for (size_t k = 0; k < NFLAGS; k++)
		if (!strcmp(arg, flags[k].name)) {
			if (flags[k].cmds & cmd)
				return &flags[k];
			owners |= flags[k].cmds;
		}
	if (!owners)
		fprintf(stderr, "ddpmc %s: unknown argument '%s' (see ddpmc %s --help)\n", cmdname, arg,
		        cmdname);
	else
		fprintf(stderr, "ddpmc %s: %s is a flag of %s, not of %s (see ddpmc %s --help)\n", cmdname,
		        arg, drv_command_names(owners), cmdname, cmdname);
	return NULL;
}

int drv_parse_args(int argc, char **argv, unsigned cmd, const char *cmdname, drv_args *a)
{
	memset(a, 0, sizeof *a);
	for (size_t k = 0; k < NFLAGS; k++)
		if ((flags[k].cmds & cmd) && flags[k].dflt && flags[k].dflt[0] != '(' &&
		    set_value(&flags[k], flags[k].dflt, a) < 0)
			abort();        /* a default its own range refuses */
	for (int i = 0; i < argc; i++) {
		const char *arg = argv[i];
		if (arg[0] != '-' && !a->model) {
			a->model = arg;
			continue;
		}
		char name[64];
		const char *eq = arg[0] == '-' && arg[1] == '-' ? strchr(arg, '=') : NULL;
		snprintf(name, sizeof name, "%.*s", eq ? (int)(eq - arg) : (int)strlen(arg), arg);
		const drv_flag *f = find_flag(name, cmd, cmdname);
		if (!f)
			return -1;
		if (eq && f->kind == A_BOOL) {
			fprintf(stderr, "ddpmc %s: %s takes no value\n", cmdname, name);
			return -1;
		}
		if (!eq && f->kind != A_BOOL && f->kind != A_OPT && need_value(i, argc, argv) < 0)
			return -1;
		const char *v = eq ? eq + 1 : f->kind == A_BOOL || f->kind == A_OPT ? NULL : argv[++i];
		if (set_value(f, v, a) < 0)
			return -1;
	}
	if (!a->model) {
		fprintf(stderr, "ddpmc %s: no model script given (see ddpmc %s --help)\n", cmdname,
		        cmdname);
		return -1;
	}
	return 0;
}

void drv_help_flags(unsigned cmd)
{
	for (size_t k = 0; k < NFLAGS; k++)
		if (flags[k].cmds & cmd)
			rt_help_line(flags[k].name, flags[k].arg, flags[k].meaning, flags[k].dflt);
}

int drv_check_output(const char *what, const char *path)
{
	char why[4200];
	if (rt_out_file_check(path, why, sizeof why) == 0)
		return 0;
	fprintf(stderr, "ddpmc %s %s: %s\n", what, path, why);
	return -1;
}

ir_graph *drv_load(const drv_args *a)
{
	char err[1024];
	ir_graph *g = fe_load_limited(a->model, a->set, a->nset, &a->limits, err, sizeof err);
	if (!g) {
		fprintf(stderr, "%s\n", err);
		return NULL;
	}
	if (ir_verify(g) < 0) {
		fprintf(stderr, "ddpmc: internal error: %s\n", g->err);
		ir_free(g);
		return NULL;
	}
	return g;
}
