/* rundir.c: the files of a run folder that train manages beside its
 * checkpoint: whether a folder already holds a run, the temporary files
 * of saves that were killed, the numbered checkpoints --keep rotates, and
 * clearing an earlier run for --overwrite. */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

/* What a run folder holds that makes it a run (train.c writes them). */
static const char *const run_files[] = { "checkpoint.safetensors", "metrics.jsonl" };

/* The number that s is made of (digits only, at least one), or -1. */
static int64_t all_digits(const char *s)
{
	char *end;
	if (*s < '0' || *s > '9')
		return -1;
	long long v = strtoll(s, &end, 10);
	return *end || v < 0 ? -1 : (int64_t)v;
}

/* The step of a numbered checkpoint "checkpoint-STEP.safetensors", or -1. */
static int64_t numbered_step(const char *name)
{
	static const char pre[] = "checkpoint-", suf[] = ".safetensors";
	size_t n = strlen(name), lp = sizeof pre - 1, ls = sizeof suf - 1;
	char digits[32];
	if (n <= lp + ls || n - lp - ls >= sizeof digits || strncmp(name, pre, lp) != 0 ||
	    strcmp(name + n - ls, suf) != 0)
		return -1;
	memcpy(digits, name + lp, n - lp - ls);
	digits[n - lp - ls] = 0;
	return all_digits(digits);
}

/* A save's temporary file "NAME.tmp.PID" (safetensors.h) whose process
 * is gone. */
static int stale_temporary(const char *name)
{
	const char *tmp = strstr(name, ".tmp.");
	int64_t pid = tmp ? all_digits(tmp + 5) : -1;
	return pid > 0 && pid <= 0x7fffffff && kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

/* What --overwrite removes: the earlier run's checkpoints, metrics and plot. */
static int earlier_run_file(const char *name)
{
	for (size_t k = 0; k < sizeof run_files / sizeof *run_files; k++)
		if (strcmp(name, run_files[k]) == 0)
			return 1;
	return strcmp(name, "loss.png") == 0 || numbered_step(name) >= 0;
}

/* Removes the entries of dir that `match` accepts, saying so when `say`;
 * 0, or -1 with errno set. A dir that is missing or not a folder holds
 * nothing (creating it fails later, and says so). */
static int remove_matching(const char *dir, int (*match)(const char *name), const char *say)
{
	char path[4400];
	DIR *d = opendir(dir);
	if (!d)
		return errno == ENOENT || errno == ENOTDIR ? 0 : -1;
	int rc = 0;
	for (struct dirent *e; (e = readdir(d)) != NULL;) {
		if (!match(e->d_name))
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		if (unlink(path) != 0)
			rc = -1;
		else if (say)
			printf("%s %s\n", say, path);
	}
	closedir(d);
	return rc;
}

const char *cli_run_found(const char *dir)
{
	char path[4200];
	for (size_t k = 0; k < sizeof run_files / sizeof *run_files; k++) {
		snprintf(path, sizeof path, "%s/%s", dir, run_files[k]);
		if (access(path, F_OK) == 0)
			return run_files[k];
	}
	return NULL;
}

int cli_run_clean_stale(const char *dir)
{
	return remove_matching(dir, stale_temporary, "removed the unfinished save");
}

int cli_run_clear(const char *dir)
{
	return remove_matching(dir, earlier_run_file, NULL);
}

static int by_step(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

/* The steps of dir's numbered checkpoints into *steps (malloc'd); their
 * count, or -1 with errno set. */
static int64_t numbered_steps(const char *dir, int64_t **steps)
{
	int64_t n = 0, cap = 0;
	DIR *d = opendir(dir);
	*steps = NULL;
	if (!d)
		return -1;
	for (struct dirent *e; (e = readdir(d)) != NULL;) {
		int64_t s = numbered_step(e->d_name);
		if (s < 0)
			continue;
		if (n == cap) {
			int64_t *grown = realloc(*steps, (size_t)(cap = cap ? 2 * cap : 16) * sizeof **steps);
			if (!grown) {
				closedir(d);
				return -1;
			}
			*steps = grown;
		}
		(*steps)[n++] = s;
	}
	closedir(d);
	return n;
}

/* DIR/checkpoint-STEP.safetensors, the step in 8 digits or more. */
static const char *numbered_path(const char *dir, int64_t step, char *buf, size_t len)
{
	snprintf(buf, len, "%s/checkpoint-%08lld.safetensors", dir, (long long)step);
	return buf;
}

int cli_run_keep(const char *dir, const char *ckpt, int64_t step, int64_t keep)
{
	char path[4400];
	int64_t *steps;
	numbered_path(dir, step, path, sizeof path);
	if ((unlink(path) != 0 && errno != ENOENT) || link(ckpt, path) != 0)
		return -1;
	int64_t n = numbered_steps(dir, &steps);
	if (n < 0)
		return -1;
	qsort(steps, (size_t)n, sizeof *steps, by_step);
	int rc = 0;
	for (int64_t k = 0; k + keep < n; k++) {
		rc |= unlink(numbered_path(dir, steps[k], path, sizeof path));
	}
	free(steps);
	return rc;
}
