/* cifar.c: CIFAR-10 binary batches (https://www.cs.toronto.edu/~kriz/cifar.html,
 * "binary version"): a file is records of 3073 bytes, one label byte 0..9
 * then the 32x32 image as its R, G and B planes (1024 bytes each, rows top
 * to bottom): already the (C, H, W) layout of rt_images. Labels are
 * checked (they catch files that are not CIFAR-10, such as CIFAR-100's
 * 2-label records) and dropped.
 * A folder means its data_batch_*.bin (or .bin.gz), in numeric order. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data.h"
#include "data_impl.h"
#include "tensor.h"

enum { SIDE = 32, IMAGE = 3 * SIDE * SIDE, RECORD = 1 + IMAGE, MAX_FILES = 1024 };

/* Checks the records read into buf[from, *len) and moves their images
 * down to buf[from, ...), so that *len ends after the images. */
static int compact(const char *path, uint8_t *buf, size_t from, size_t *len, char *err,
                   size_t errlen)
{
	size_t bytes = *len - from, n = bytes / RECORD;
	if (bytes == 0 || bytes % RECORD) {
		snprintf(err, errlen, "%s: %s: %zu bytes is not a whole number of %d-byte CIFAR-10 "
		         "records (1 label + 3x32x32)", path, bytes ? "truncated or corrupt" : "empty",
		         bytes, RECORD);
		return RT_ERR;
	}
	for (size_t k = 0; k < n; k++) {
		const uint8_t *rec = buf + from + k * RECORD;
		if (rec[0] > 9) {
			snprintf(err, errlen, "%s: record %zu has label %d, not 0..9: not a CIFAR-10 batch",
			         path, k, rec[0]);
			return RT_ERR;
		}
		memmove(buf + from + k * IMAGE, rec + 1, IMAGE);
	}
	*len = from + n * IMAGE;
	return RT_OK;
}

/* Appends the images of one batch file to *buf (*len bytes so far). */
static int read_batch(const char *path, uint8_t **buf, size_t *len, char *err, size_t errlen)
{
	gzFile f = rt_data_gzopen(path, err, errlen);
	if (!f)
		return RT_ERR;
	size_t from = *len;
	int rc = rt_data_read(f, path, (size_t)1 << 40, buf, len, err, errlen);
	gzclose(f);
	if (rc == RT_OK)
		rc = compact(path, *buf, from, len, err, errlen);
	return rc;
}

typedef struct {
	long number;
	char name[256];
} batch_name;

static int by_number(const void *a, const void *b)
{
	const batch_name *x = a, *y = b;
	if (x->number != y->number)
		return x->number < y->number ? -1 : 1;
	return strcmp(x->name, y->name);
}

/* The data_batch_*.bin[.gz] of dir, sorted; their count, or -1. */
static int list_batches(const char *dir, batch_name *names, char *err, size_t errlen)
{
	DIR *d = opendir(dir);
	if (!d) {
		snprintf(err, errlen, "%s: cannot open: %s", dir, strerror(errno));
		return -1;
	}
	int n = 0;
	for (struct dirent *e; n < MAX_FILES && (e = readdir(d));) {
		const char *s = e->d_name;
		if (strncmp(s, "data_batch_", 11) != 0 || strlen(s) >= sizeof names[0].name ||
		    !(rt_data_ends_with(s, ".bin") || rt_data_ends_with(s, ".bin.gz")))
			continue;
		char *end;
		names[n].number = strtol(s + 11, &end, 10);
		names[n].number = end == s + 11 ? -1 : names[n].number;
		snprintf(names[n++].name, sizeof names[0].name, "%s", s);
	}
	closedir(d);
	if (n == 0)
		snprintf(err, errlen, "%s: no data_batch_*.bin files in this folder", dir);
	qsort(names, (size_t)n, sizeof *names, by_number);
	return n ? n : -1;
}

static int read_folder(const char *dir, uint8_t **buf, size_t *len, char *err, size_t errlen)
{
	batch_name *names = malloc(MAX_FILES * sizeof *names);
	if (!names) {
		snprintf(err, errlen, "%s: out of memory", dir);
		return RT_ERR;
	}
	int n = list_batches(dir, names, err, errlen), rc = n < 0 ? RT_ERR : RT_OK;
	for (int i = 0; rc == RT_OK && i < n; i++) {
		char path[4096 + 256];
		snprintf(path, sizeof path, "%s/%s", dir, names[i].name);
		rc = read_batch(path, buf, len, err, errlen);
	}
	free(names);
	return rc;
}

int rt_cifar_read(const char *path, rt_images *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof *out);
	struct stat st;
	uint8_t *buf = NULL;
	size_t len = 0;
	int rc = stat(path, &st) == 0 && S_ISDIR(st.st_mode)
	                 ? read_folder(path, &buf, &len, err, errlen)
	                 : read_batch(path, &buf, &len, err, errlen);
	if (rc != RT_OK) {
		free(buf);
		return rc;
	}
	uint8_t *shrunk = realloc(buf, len);
	*out = (rt_images){ (int64_t)(len / IMAGE), 3, SIDE, SIDE, shrunk ? shrunk : buf, NULL, NULL, NULL };
	return RT_OK;
}
