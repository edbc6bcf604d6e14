/* args: the flags of the ddpmc commands, parsed once for all of them.
 * Unknown flags and missing values are errors; a command ignores flags it
 * does not use. */
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* --seed S, --lua-steps M, --lua-memory MB. */
static int parse_number_flag(const char *flag, const char *s, drv_args *a)
{
	unsigned long long v;
	if (!strcmp(flag, "--seed"))
		return parse_count(flag, s, 0, ULLONG_MAX, &a->seed);
	if (parse_count(flag, s, 1, 1ull << 40, &v) < 0)
		return -1;
	*(strcmp(flag, "--lua-steps") ? &a->limits.memory_mb : &a->limits.msteps) = (long long)v;
	return 0;
}

static int is_number_flag(const char *arg)
{
	return !strcmp(arg, "--seed") || !strcmp(arg, "--lua-steps") || !strcmp(arg, "--lua-memory");
}

int drv_parse_args(int argc, char **argv, drv_args *a)
{
	static const struct { const char *flag; size_t off; } valued[] = {
		{ "--entry", offsetof(drv_args, entry) },
		{ "--weights", offsetof(drv_args, weights) },
		{ "--inputs", offsetof(drv_args, inputs) },
		{ "-o", offsetof(drv_args, output) },
		{ "--target", offsetof(drv_args, target) },
		{ "--cpu", offsetof(drv_args, cpu) },
	};
	memset(a, 0, sizeof *a);
	for (int i = 0; i < argc; i++) {
		const char *arg = argv[i];
		int done = 0;
		for (size_t k = 0; k < sizeof valued / sizeof valued[0] && !done; k++)
			if (!strcmp(arg, valued[k].flag)) {
				if (need_value(i, argc, argv) < 0)
					return -1;
				*(const char **)((char *)a + valued[k].off) = argv[++i];
				done = 1;
			}
		if (done)
			continue;
		if (!strcmp(arg, "--json"))
			a->json = 1;
		else if (!strcmp(arg, "--dot"))
			a->dot = 1;
		else if (!strcmp(arg, "--interp"))
			a->interp = 1;
		else if (!strcmp(arg, "--kernels"))
			a->kernels = 1;
		else if (!strcmp(arg, "--report"))
			a->report = 1;
		else if (!strcmp(arg, "--force"))
			a->force = 1;
		else if (!strcmp(arg, "--set")) {
			if (need_value(i, argc, argv) < 0 || parse_set(argv[++i], a) < 0)
				return -1;
		} else if (is_number_flag(arg)) {
			if (need_value(i, argc, argv) < 0 || parse_number_flag(arg, argv[i + 1], a) < 0)
				return -1;
			i++;
		} else if (arg[0] != '-' && !a->model)
			a->model = arg;
		else {
			fprintf(stderr, "ddpmc: unknown argument '%s'\n", arg);
			return -1;
		}
	}
	if (!a->model) {
		fputs("ddpmc: no model script given\n", stderr);
		return -1;
	}
	return 0;
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
