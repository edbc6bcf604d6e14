/* cmdline.c: help lines and output-path checks (cmdline.h). The checks
 * use stat and access: they say at once what the write at the end of a
 * command would meet (a missing folder, a file in the way, no permission),
 * before minutes of compiling, training or sampling. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmdline.h"

void rt_help_line(const char *name, const char *arg, const char *meaning, const char *dflt)
{
	char both[96];
	snprintf(both, sizeof both, "%s%s%s", name, arg && arg[0] != '[' ? " " : "", arg ? arg : "");
	printf("  %-28s %s", both, meaning);
	if (!dflt)
		printf("\n");
	else if (!strcmp(dflt, "(required)"))
		printf(" (required)\n");
	else if (dflt[0] == '(')
		printf(" (default: %.*s)\n", (int)strlen(dflt) - 2, dflt + 1);
	else
		printf(" (default: %s)\n", dflt);
}

/* Why folder dir cannot take new files (an errno), or 0. */
static int unwritable(const char *dir)
{
	struct stat st;
	return stat(dir, &st) ? errno : !S_ISDIR(st.st_mode) ? ENOTDIR
	     : access(dir, W_OK | X_OK) ? errno : 0;
}

/* What errno e means for a folder we want to write in. */
static const char *reason(int e)
{
	return e == ENOTDIR ? "not a folder" : strerror(e);
}

/* The folder part of path: "a/b" -> "a", "b" -> ".", "/b" -> "/". */
static void folder_of(const char *path, char *dir, size_t len)
{
	snprintf(dir, len, "%s", path);
	char *slash = strrchr(dir, '/');
	if (!slash)
		snprintf(dir, len, ".");
	else
		slash[slash == dir] = 0;
}

int rt_out_dir_check(const char *dir, char *why, size_t len)
{
	char at[4096], up[4096];
	struct stat st;
	snprintf(at, sizeof at, "%s", dir);
	while (stat(at, &st) && (errno == ENOENT || errno == ENOTDIR) && strcmp(at, ".") &&
	       strcmp(at, "/")) {
		folder_of(at, up, sizeof up);           /* the nearest that exists */
		memcpy(at, up, sizeof at);
	}
	int bad = unwritable(at);
	if (!bad)
		return 0;
	if (!strcmp(at, dir))
		snprintf(why, len, "cannot write there: %s", reason(bad));
	else
		snprintf(why, len, "cannot create it in %s: %s", at, reason(bad));
	return -1;
}

int rt_out_file_check(const char *path, char *why, size_t len)
{
	char dir[4096];
	struct stat st;
	folder_of(path, dir, sizeof dir);
	int bad = unwritable(dir);
	if (bad) {
		snprintf(why, len, "cannot write in %s: %s", dir, reason(bad));
		return -1;
	}
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
		snprintf(why, len, "is a folder");
		return -1;
	}
	return 0;
}

int rt_cache_dir(const char *env, char *dir, size_t len)
{
	const char *set = env ? getenv(env) : NULL, *xdg = getenv("XDG_CACHE_HOME"),
	           *home = getenv("HOME");
	int n;
	if (set && *set)
		n = snprintf(dir, len, "%s", set);
	else if (xdg && *xdg)
		n = snprintf(dir, len, "%s/ddpmc", xdg);
	else if (home && *home)
		n = snprintf(dir, len, "%s/.cache/ddpmc", home);
	else
		return 0;
	return n > 0 && (size_t)n < len;
}

int rt_make_parents(char *path)
{
	for (char *s = path + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = 0;
		int bad = mkdir(path, 0777) && errno != EEXIST;
		*s = '/';
		if (bad)
			return -1;
	}
	return 0;
}
