/* image_dir.c: an image file or a folder of them as a data set
 * (rt_imagedir_read, data.h): the recursive listing, the class labels of
 * sub-folders (torchvision's ImageFolder), decoding on one thread per core
 * (stb_image keeps its failure reason per thread), and the crops to the
 * model's size. Paths are sorted bytewise, so the data set, and with it a seeded
 * run, is the same whatever order the file system lists them in. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data.h"
#include "data_impl.h"
#include "tensor.h"

enum { MAX_DEPTH = 16, MAX_LABELS = 256, PATH_LEN = 4096 };

typedef struct {
	char **name;            /* (n) paths below the root ("" for the root file) */
	size_t n, cap;
} path_list;

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_paths(path_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->name[i]);
	free(l->name);
}

static int add_path(path_list *l, const char *s)
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

/* root/rel into buf; RT_ERR when it does not fit. */
static int join(char *buf, const char *root, const char *rel, char *err, size_t errlen)
{
	int n = snprintf(buf, PATH_LEN, "%s%s%s", root, *rel ? "/" : "", rel);
	if (n >= 0 && n < PATH_LEN)
		return RT_OK;
	snprintf(err, errlen, "%s: path too long", root);
	return RT_ERR;
}

static int walk(const char *root, const char *rel, int depth, path_list *l, char *err,
                size_t errlen);

/* One folder entry `name` of folder rel: an image is listed, a folder
 * walked. */
static int visit(const char *root, const char *rel, const char *name, int depth,
                 path_list *l, char *err, size_t errlen)
{
	char sub[PATH_LEN], full[PATH_LEN];
	struct stat st;
	if (name[0] == '.')
		return RT_OK;
	if (snprintf(sub, sizeof sub, "%s%s%s", rel, *rel ? "/" : "", name) >= (int)sizeof sub ||
	    join(full, root, sub, err, errlen) != RT_OK) {
		snprintf(err, errlen, "%s: path too long below it", root);
		return RT_ERR;
	}
	if (stat(full, &st) != 0)
		return RT_OK;   /* a dangling link is not an image */
	if (S_ISDIR(st.st_mode))
		return depth < MAX_DEPTH ? walk(root, sub, depth + 1, l, err, errlen) : RT_OK;
	if (!rt_image_name(name))
		return RT_OK;
	if (add_path(l, sub) == RT_OK)
		return RT_OK;
	snprintf(err, errlen, "%s: out of memory", root);
	return RT_ERR;
}

static int walk(const char *root, const char *rel, int depth, path_list *l, char *err,
                size_t errlen)
{
	char dir[PATH_LEN];
	if (join(dir, root, rel, err, errlen) != RT_OK)
		return RT_ERR;
	DIR *d = opendir(dir);
	if (!d)
		return rt_data_open_error(dir, err, errlen);
	int rc = RT_OK;
	for (struct dirent *e; rc == RT_OK && (e = readdir(d));)
		rc = visit(root, rel, e->d_name, depth, l, err, errlen);
	closedir(d);
	return rc;
}

/* Every image below root, sorted. */
static int list_images(const char *root, path_list *l, char *err, size_t errlen)
{
	int rc = walk(root, "", 0, l, err, errlen);
	if (rc == RT_OK && l->n == 0) {
		snprintf(err, errlen, "%s: no data in this folder (no data_batch_*.bin, "
		         "train-images-idx3-ubyte[.gz], or image files: .png .jpg .jpeg .bmp .gif "
		         ".tga .psd .hdr .pic .pnm .ppm .pgm, in it or below)", root);
		rc = RT_ERR;
	}
	if (rc == RT_OK)
		qsort(l->name, l->n, sizeof *l->name, by_name);
	return rc;
}

/* ---- labels: the class folder of every image ---- */

/* The class of path p (its first component) as a new string, or NULL. */
static char *class_of(const char *p)
{
	const char *slash = strchr(p, '/');
	return slash ? strndup(p, (size_t)(slash - p)) : NULL;
}

/* The sorted distinct classes of l into *names (K); -1 when an image lies
 * in the root or memory runs out. */
static int64_t classes(const path_list *l, char ***names)
{
	char **c = calloc(l->n, sizeof *c);
	size_t k = 0;
	for (size_t i = 0; c && i < l->n; i++)
		if (!(c[i] = class_of(l->name[i])))
			break;
	if (!c || (l->n && !c[l->n - 1])) {
		for (size_t i = 0; c && i < l->n; i++)
			free(c[i]);
		free(c);
		return -1;
	}
	qsort(c, l->n, sizeof *c, by_name);
	for (size_t i = 0; i < l->n; i++)
		if (k == 0 || strcmp(c[k - 1], c[i]) != 0)
			c[k++] = c[i];
		else
			free(c[i]);
	*names = c;
	return (int64_t)k;
}

/* labels (n): each image's class, when every image has one and there
 * are at most MAX_LABELS; else *labels stays NULL. */
static int label_images(const path_list *l, uint8_t **labels)
{
	char **names = NULL;
	int64_t k = classes(l, &names);
	*labels = k >= 1 && k <= MAX_LABELS ? malloc(l->n) : NULL;
	for (size_t i = 0; *labels && i < l->n; i++) {
		char *mine = class_of(l->name[i]);
		char **at = mine ? bsearch(&mine, names, (size_t)k, sizeof *names, by_name) : NULL;
		free(mine);
		if (!at) {
			free(*labels);
			*labels = NULL;
		} else
			(*labels)[i] = (uint8_t)(at - names);
	}
	for (int64_t i = 0; i < k; i++)
		free(names[i]);
	free(names);
	return k >= 1 && k <= MAX_LABELS && !*labels ? RT_ERR : RT_OK;
}

/* ---- the images ---- */

/* src (c, sh, sw) cut at (top, left) to dst (c, h, w). */
static void crop(const uint8_t *src, int64_t c, int64_t sh, int64_t sw, int64_t top,
                 int64_t left, uint8_t *dst, int64_t h, int64_t w)
{
	for (int64_t k = 0; k < c; k++)
		for (int64_t y = 0; y < h; y++)
			memcpy(dst + (k * h + y) * w, src + (k * sh + top + y) * sw + left, (size_t)w);
}

/* Appends image px (c, ih, iw) to out->full (random crops keep it whole). */
static int keep_whole(rt_images *out, int64_t i, const uint8_t *px, int64_t ih, int64_t iw,
                      size_t *cap)
{
	size_t at = i ? (size_t)(out->full_dims[3 * i - 3] + out->c * out->full_dims[3 * i - 2] *
	                         out->full_dims[3 * i - 1]) : 0;
	size_t size = (size_t)(out->c * ih * iw);
	if (at + size > *cap) {
		size_t grow = 2 * *cap > at + size ? 2 * *cap : at + size;
		uint8_t *p = realloc(out->full, grow);
		if (!p)
			return RT_ERR;
		out->full = p, *cap = grow;
	}
	memcpy(out->full + at, px, size);
	out->full_dims[3 * i] = (int64_t)at;
	out->full_dims[3 * i + 1] = ih, out->full_dims[3 * i + 2] = iw;
	return RT_OK;
}

/* One image as decoded, before it joins the data set. */
typedef struct {
	uint8_t *px;            /* (c, ih, iw), or NULL */
	int64_t ih, iw;
	int rc;
} decoded;

/* The images of l below root, decoded on threads that each take the
 * next index; after the first failure no new image is started. */
typedef struct {
	const char *root;
	const path_list *l;
	int64_t c, h, w;
	const rt_image_opts *o;
	decoded *d;             /* (l->n) */
	atomic_size_t next;
	atomic_int failed;
} decode_job;

/* Image i of the job; its message (when it fails) into err. */
static int decode_one(decode_job *j, size_t i, char *err, size_t errlen)
{
	char full[PATH_LEN];
	decoded *d = &j->d[i];
	d->rc = join(full, j->root, j->l->name[i], err, errlen);
	if (d->rc == RT_OK)
		d->rc = rt_image_read(full, j->c, j->h, j->w, j->o, &d->px, &d->ih, &d->iw, err,
		                      errlen);
	return d->rc;
}

static void *decode_worker(void *arg)
{
	decode_job *j = arg;
	char err[8];    /* messages are made again for the first failure only */
	for (size_t i; !atomic_load(&j->failed) && (i = atomic_fetch_add(&j->next, 1)) < j->l->n;)
		if (decode_one(j, i, err, sizeof err) != RT_OK)
			atomic_store(&j->failed, 1);
	return NULL;
}

/* Decodes every image on up to one thread per core. Indices are claimed
 * in order and a claimed image is always finished, so every image before
 * the first failing one was read: that one's message is the error, the
 * same however the threads ran. */
static int decode_all(decode_job *j, char *err, size_t errlen)
{
	enum { MAX_THREADS = 16 };
	pthread_t t[MAX_THREADS];
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	int n = cpus < 1 ? 1 : cpus > MAX_THREADS ? MAX_THREADS : (int)cpus, started = 0;
	while (started < n && (size_t)started < j->l->n &&
	       pthread_create(&t[started], NULL, decode_worker, j) == 0)
		started++;
	if (!started)
		decode_worker(j);
	for (int k = 0; k < started; k++)
		pthread_join(t[k], NULL);
	for (size_t i = 0; i < j->l->n; i++)
		if (j->d[i].rc != RT_OK)
			return decode_one(j, i, err, errlen);
	return RT_OK;
}

/* Decoded image i into the data set: its centre crop into pixels, and
 * with random crops the whole resized image into full. */
static int add_image(rt_images *out, int64_t i, const decoded *d, size_t *cap,
                     const char *root, char *err, size_t errlen)
{
	int64_t c = out->c, h = out->h, w = out->w;
	int64_t top = (int64_t)nearbyint((double)(d->ih - h) / 2);
	int64_t left = (int64_t)nearbyint((double)(d->iw - w) / 2);
	crop(d->px, c, d->ih, d->iw, top, left, out->pixels + i * c * h * w, h, w);
	if (!out->full || keep_whole(out, i, d->px, d->ih, d->iw, cap) == RT_OK)
		return RT_OK;
	snprintf(err, errlen, "%s: out of memory keeping the images whole for random crops", root);
	return RT_ERR;
}

static int alloc_images(const char *root, size_t n, const rt_image_opts *o, rt_images *out,
                        size_t *cap, char *err, size_t errlen)
{
	size_t chw = (size_t)(out->c * out->h * out->w);
	out->pixels = malloc(n * chw);
	int ok = out->pixels != NULL;
	if (ok && o->crop == RT_CROP_RANDOM) {
		*cap = n * chw;
		out->full = malloc(*cap);
		out->full_dims = malloc(3 * n * sizeof *out->full_dims);
		ok = out->full && out->full_dims;
	}
	if (!ok)
		snprintf(err, errlen, "%s: out of memory for %zu images", root, n);
	return ok ? RT_OK : RT_ERR;
}

/* The images of l (below path) decoded into out. */
static int read_images(const char *path, const path_list *l, const rt_image_opts *o,
                       rt_images *out, char *err, size_t errlen)
{
	size_t cap = 0;
	decode_job j = { path, l, out->c, out->h, out->w, o, calloc(l->n, sizeof(decoded)), 0, 0 };
	int rc = j.d ? decode_all(&j, err, errlen) : RT_ERR;
	if (!j.d)
		snprintf(err, errlen, "%s: out of memory for %zu images", path, l->n);
	if (rc == RT_OK)
		rc = alloc_images(path, l->n, o, out, &cap, err, errlen);
	for (size_t i = 0; rc == RT_OK && i < l->n; i++)
		rc = add_image(out, (int64_t)i, &j.d[i], &cap, path, err, errlen);
	for (size_t i = 0; j.d && i < l->n; i++)
		free(j.d[i].px);
	free(j.d);
	return rc;
}

int rt_imagedir_read(const char *path, int64_t c, int64_t h, int64_t w,
                     const rt_image_opts *opts, rt_images *out, char *err, size_t errlen)
{
	static const rt_image_opts as_is = { 0 };
	const rt_image_opts *o = opts ? opts : &as_is;
	path_list l = { 0 };
	struct stat st;
	*out = (rt_images){ 0, c, h, w, NULL, NULL, NULL, NULL };
	int dir = stat(path, &st) == 0 && S_ISDIR(st.st_mode);
	int rc = dir ? list_images(path, &l, err, errlen) : add_path(&l, "");
	if (rc != RT_OK && !dir)
		snprintf(err, errlen, "%s: out of memory", path);
	if (rc == RT_OK)
		rc = read_images(path, &l, o, out, err, errlen);
	if (rc == RT_OK && dir && label_images(&l, &out->labels) != RT_OK) {
		snprintf(err, errlen, "%s: out of memory for the labels", path);
		rc = RT_ERR;
	}
	if (rc == RT_OK)
		out->n = (int64_t)l.n;
	else
		rt_images_free(out);
	free_paths(&l);
	return rc;
}
