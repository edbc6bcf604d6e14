/* pngdir.c: a folder of PNG images as a data set. Every entry whose name
 * ends in .png (any case) and does not start with '.' is one image, in
 * bytewise name order (so the data set, and with it a seeded run, is the
 * same whatever order the file system lists them in). Each must be the
 * model's size (rt_png_read); the first that is not stops the read. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "data.h"
#include "data_impl.h"
#include "tensor.h"

typedef struct {
	char **name;
	size_t n, cap;
} name_list;

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int is_png_name(const char *s)
{
	size_t n = strlen(s);
	return s[0] != '.' && n > 4 && strcasecmp(s + n - 4, ".png") == 0;
}

static int add_name(name_list *l, const char *s)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 64;
		char **p = realloc(l->name, cap * sizeof *p);
		if (!p)
			return RT_ERR;
		l->name = p, l->cap = cap;
	}
	return (l->name[l->n] = strdup(s)) ? (l->n++, RT_OK) : RT_ERR;
}

static void free_names(name_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->name[i]);
	free(l->name);
}

static int list_pngs(const char *dir, name_list *l, char *err, size_t errlen)
{
	DIR *d = opendir(dir);
	if (!d) {
		snprintf(err, errlen, "%s: cannot open: %s", dir, strerror(errno));
		return RT_ERR;
	}
	int rc = RT_OK;
	for (struct dirent *e; rc == RT_OK && (e = readdir(d));)
		if (is_png_name(e->d_name) && add_name(l, e->d_name) != RT_OK) {
			snprintf(err, errlen, "%s: out of memory", dir);
			rc = RT_ERR;
		}
	closedir(d);
	if (rc == RT_OK && l->n == 0) {
		snprintf(err, errlen, "%s: no data in this folder (no data_batch_*.bin, "
		         "train-images-idx3-ubyte[.gz] or *.png)", dir);
		rc = RT_ERR;
	}
	if (rc == RT_OK)
		qsort(l->name, l->n, sizeof *l->name, by_name);
	return rc;
}

int rt_pngdir_read(const char *dir, int64_t c, int64_t h, int64_t w, rt_images *out,
                   char *err, size_t errlen)
{
	name_list l = { 0 };
	memset(out, 0, sizeof *out);
	int rc = list_pngs(dir, &l, err, errlen);
	size_t chw = (size_t)(c * h * w);
	if (rc == RT_OK && !(out->pixels = malloc(l.n * chw))) {
		snprintf(err, errlen, "%s: out of memory for %zu images", dir, l.n);
		rc = RT_ERR;
	}
	for (size_t i = 0; rc == RT_OK && i < l.n; i++) {
		size_t len = strlen(dir) + strlen(l.name[i]) + 2;
		char *path = malloc(len);
		if (!path) {
			snprintf(err, errlen, "%s: out of memory", dir);
			rc = RT_ERR;
			break;
		}
		snprintf(path, len, "%s/%s", dir, l.name[i]);
		rc = rt_png_read(path, c, h, w, out->pixels + i * chw, err, errlen);
		free(path);
	}
	if (rc == RT_OK)
		*out = (rt_images){ (int64_t)l.n, c, h, w, out->pixels, NULL };
	else
		rt_images_free(out);
	free_names(&l);
	return rc;
}
