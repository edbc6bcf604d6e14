/* fuzz.c: the helpers of fuzz.h, linked into every harness. */
#define _GNU_SOURCE
#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

void fuzz_abort(const char *file, int line, const char *what)
{
	fprintf(stderr, "%s:%d: contract broken: %s\n", file, line, what);
	abort();
}

static char path[64];     /* fuzz_path's, once made */

const char *fuzz_path(const uint8_t *data, size_t size)
{
	static int fd = -1;
	if (fd < 0) {
		fd = memfd_create("ddpmc-fuzz", 0);
		FUZZ_CHECK(fd >= 0);
		snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	}
	FUZZ_CHECK(ftruncate(fd, 0) == 0);
	for (size_t at = 0; at < size;) {
		ssize_t n = pwrite(fd, data + at, size - at, (off_t)at);
		FUZZ_CHECK(n > 0);
		at += (size_t)n;
	}
	return path;
}

void fuzz_check_message(const char *err, const char *prefix)
{
	FUZZ_CHECK(strncmp(err, prefix, strlen(prefix)) == 0);
	FUZZ_CHECK(strchr(err, '\n') == NULL);
}

void fuzz_check_file_message(const char *err)
{
	char prefix[sizeof path + 2];
	FUZZ_CHECK(path[0]);
	snprintf(prefix, sizeof prefix, "%s: ", path);
	fuzz_check_message(err, prefix);
}

void fuzz_touch(const void *p, size_t n)
{
	volatile uint8_t sum = 0;
	for (size_t k = 0; k < n; k++)
		sum ^= ((const uint8_t *)p)[k];
	(void)sum;
}
