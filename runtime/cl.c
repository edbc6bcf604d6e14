/* cl.c: the OpenCL device (device.h). One context, one in-order queue, one
 * program per part of the source — built with -D DDPMC_PART_<part> (the
 * renderer guards each part's kernels so), at open the parts that the
 * kernels' variants need (each kernel's from the tuning file, cl_tune.c,
 * else the compiler's choice) on as many threads as the host has cores,
 * each binary kept on disk by cl_cache.c — and one cl_kernel per kernel,
 * of its chosen variant; tune builds the other variants' parts in the
 * background (cl_build_start). While parts compile, a tty on stderr shows
 * "building OpenCL programs: k/n"; a line says how long they took.
 * $DDPMC_CL_OPTIONS adds build options (the tests pass -cl-opt-disable:
 * PoCL compiles each kernel at its first launch).
 *
 * Buffers (the launch ABI is program.h's "cl" object): per entry an arena
 * of max(arena_bytes, 64) bytes and one buffer per input and output,
 * made on the entry's first run. Params and consts are "copies" kept by
 * the device and keyed by their host pointer (the state tensor's data, or
 * the program data at the const's offset): a copy is uploaded when it is
 * not valid (new, or invalidated), and a param's copy is marked newer
 * than the host by every run that binds it, until rt_device_sync reads it
 * back. A run is queued (rt_device_submit): its inputs copied into one of
 * the entry's two staging copies and written from there, its kernels
 * enqueued, its outputs read into the caller's tensors, and nothing
 * waited for but the write from the same staging copy two runs before;
 * rt_device_wait is one clFinish. When the entry is profiled (exec.h),
 * every launch gets an event, the run is waited for and each launch's
 * device time goes to the entry's kernel times. */
#include "cl_impl.h"            /* first: it sets the OpenCL version */

#include <CL/cl_ext.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "exec.h"

#define NO_PLATFORM "no OpenCL platform found (is an ICD installed? see /etc/OpenCL/vendors)"
#define MIN_BYTES 64            /* no buffer is smaller (a 0-byte one is an error) */

static const char *cl_errname(cl_int rc)
{
	switch (rc) {
#define E(x) case x: return #x;
	E(CL_DEVICE_NOT_FOUND) E(CL_DEVICE_NOT_AVAILABLE) E(CL_COMPILER_NOT_AVAILABLE)
	E(CL_MEM_OBJECT_ALLOCATION_FAILURE) E(CL_OUT_OF_RESOURCES) E(CL_OUT_OF_HOST_MEMORY)
	E(CL_BUILD_PROGRAM_FAILURE) E(CL_INVALID_VALUE) E(CL_INVALID_PLATFORM)
	E(CL_INVALID_DEVICE) E(CL_INVALID_CONTEXT) E(CL_INVALID_COMMAND_QUEUE)
	E(CL_INVALID_MEM_OBJECT) E(CL_INVALID_BINARY) E(CL_INVALID_BUILD_OPTIONS)
	E(CL_INVALID_PROGRAM) E(CL_INVALID_PROGRAM_EXECUTABLE) E(CL_INVALID_KERNEL_NAME)
	E(CL_INVALID_KERNEL) E(CL_INVALID_ARG_INDEX) E(CL_INVALID_ARG_VALUE)
	E(CL_INVALID_ARG_SIZE) E(CL_INVALID_KERNEL_ARGS) E(CL_INVALID_WORK_DIMENSION)
	E(CL_INVALID_WORK_GROUP_SIZE) E(CL_INVALID_WORK_ITEM_SIZE) E(CL_INVALID_GLOBAL_OFFSET)
	E(CL_INVALID_EVENT_WAIT_LIST) E(CL_INVALID_OPERATION) E(CL_INVALID_BUFFER_SIZE)
	E(CL_INVALID_GLOBAL_WORK_SIZE) E(CL_PLATFORM_NOT_FOUND_KHR)
#undef E
	default: return "an OpenCL error";
	}
}

int cl_fail(char *err, size_t errlen, cl_int rc, const char *fmt, const char *what)
{
	char msg[512];
	snprintf(msg, sizeof msg, fmt, what);
	snprintf(err, errlen, "OpenCL: %s: %s (%d)", msg, cl_errname(rc), (int)rc);
	return RT_ERR;
}

/* --- platforms and devices -------------------------------------------------- */

/* Every platform (malloc'd); 0 with *n = 0 when there is none. */
static cl_platform_id *platforms(cl_uint *n)
{
	cl_platform_id *ids = NULL;
	*n = 0;
	if (clGetPlatformIDs(0, NULL, n) != CL_SUCCESS || *n == 0 ||
	    !(ids = calloc(*n, sizeof *ids)) || clGetPlatformIDs(*n, ids, NULL) != CL_SUCCESS) {
		free(ids);
		*n = 0;
		return NULL;
	}
	return ids;
}

/* Every device of platform pl, in the numbering of --device list. */
static cl_device_id *devices(cl_platform_id pl, cl_uint *n)
{
	cl_device_id *ids = NULL;
	*n = 0;
	if (clGetDeviceIDs(pl, CL_DEVICE_TYPE_ALL, 0, NULL, n) != CL_SUCCESS || *n == 0 ||
	    !(ids = calloc(*n, sizeof *ids)) ||
	    clGetDeviceIDs(pl, CL_DEVICE_TYPE_ALL, *n, ids, NULL) != CL_SUCCESS) {
		free(ids);
		*n = 0;
		return NULL;
	}
	return ids;
}

static void plat_str(cl_platform_id pl, cl_platform_info what, char *buf, size_t len)
{
	if (clGetPlatformInfo(pl, what, len, buf, NULL) != CL_SUCCESS)
		snprintf(buf, len, "?");
	buf[len - 1] = 0;
}

static void dev_str(cl_device_id d, cl_device_info what, char *buf, size_t len)
{
	if (clGetDeviceInfo(d, what, len, buf, NULL) != CL_SUCCESS)
		snprintf(buf, len, "?");
	buf[len - 1] = 0;
}

static cl_device_type dev_type(cl_device_id d)
{
	cl_device_type t = 0;
	clGetDeviceInfo(d, CL_DEVICE_TYPE, sizeof t, &t, NULL);
	return t;
}

/* One device in --device list's numbering P.D. */
typedef struct {
	int plat, dev;
	cl_platform_id pl;
	cl_device_id id;
} cl_place;

/* Every device of every platform in --device list's order (malloc'd;
 * NULL when there is none) and, in *np, the number of platforms. */
static cl_place *places(int *n, cl_uint *np)
{
	cl_platform_id *pls = platforms(np);
	cl_place *all = NULL;
	*n = 0;
	for (cl_uint p = 0; p < *np; p++) {
		cl_uint nd;
		cl_device_id *ds = devices(pls[p], &nd);
		cl_place *grown = nd ? realloc(all, (size_t)(*n + (int)nd) * sizeof *all) : all;
		if (nd && !grown)
			nd = 0;
		all = grown;
		for (cl_uint d = 0; d < nd; d++)
			all[(*n)++] = (cl_place){ (int)p, (int)d, pls[p], ds[d] };
		free(ds);
	}
	free(pls);
	return all;
}

/* The device P.D asked for, or a message naming what exists. */
static const cl_place *choose_given(const cl_place *all, int n, cl_uint np, int plat, int dev,
                                    char *err, size_t errlen)
{
	int last = -1;
	for (int i = 0; i < n; i++)
		if (all[i].plat == plat) {
			if (all[i].dev == dev)
				return &all[i];
			last = all[i].dev;
		}
	if ((cl_uint)plat >= np)
		snprintf(err, errlen, "there is no OpenCL platform %d (platforms 0 to %u; see --device "
		         "list)", plat, np - 1);
	else if (last < 0)
		snprintf(err, errlen, "OpenCL platform %d has no devices (see --device list)", plat);
	else
		snprintf(err, errlen, "OpenCL platform %d has no device %d (devices 0 to %d; see "
		         "--device list)", plat, dev, last);
	return NULL;
}

/* The nth (modulo their number) of the devices `opencl` chooses from:
 * the GPUs of every platform when there is one, else every device. */
static const cl_place *choose_nth(const cl_place *all, int n, int nth)
{
	int gpus = 0, k = 0;
	for (int i = 0; i < n; i++)
		gpus += (dev_type(all[i].id) & CL_DEVICE_TYPE_GPU) != 0;
	int want = nth % (gpus ? gpus : n);
	for (int i = 0; i < n; i++)
		if (!gpus || (dev_type(all[i].id) & CL_DEVICE_TYPE_GPU))
			if (k++ == want)
				return &all[i];
	return NULL;
}

/* *plat >= 0: device *dev of platform *plat; else the *dev-th device of
 * choose_nth. Sets *plat and *dev to the one chosen. */
static int choose(int *plat, int *dev, cl_platform_id *pl_out, cl_device_id *dev_out, char *err,
                  size_t errlen)
{
	int n;
	cl_uint np;
	cl_place *all = places(&n, &np);
	const cl_place *c = NULL;
	if (!np)
		snprintf(err, errlen, NO_PLATFORM);
	else if (*plat >= 0)
		c = choose_given(all, n, np, *plat, *dev, err, errlen);
	else if (!n)
		snprintf(err, errlen, "the OpenCL platforms have no device (see --device list)");
	else
		c = choose_nth(all, n, *dev);
	if (c) {
		*plat = c->plat, *dev = c->dev;
		*pl_out = c->pl, *dev_out = c->id;
	}
	free(all);
	return c ? RT_OK : RT_ERR;
}

int rt_cl_list(FILE *f)
{
	cl_uint np, nd;
	cl_platform_id *pls = platforms(&np);
	char name[256], vendor[256], version[256];
	if (!np)
		fprintf(f, "%s\n", NO_PLATFORM);
	for (cl_uint p = 0; p < np; p++) {
		plat_str(pls[p], CL_PLATFORM_NAME, name, sizeof name);
		plat_str(pls[p], CL_PLATFORM_VERSION, version, sizeof version);
		fprintf(f, "OpenCL platform %u: %s (%s)\n", p, name, version);
		cl_device_id *ds = devices(pls[p], &nd);
		if (!nd)
			fprintf(f, "  (no devices)\n");
		for (cl_uint d = 0; d < nd; d++) {
			cl_uint cu = 0;
			cl_ulong mem = 0;
			size_t args = 0;
			dev_str(ds[d], CL_DEVICE_NAME, name, sizeof name);
			dev_str(ds[d], CL_DEVICE_VENDOR, vendor, sizeof vendor);
			dev_str(ds[d], CL_DEVICE_VERSION, version, sizeof version);
			clGetDeviceInfo(ds[d], CL_DEVICE_MAX_COMPUTE_UNITS, sizeof cu, &cu, NULL);
			clGetDeviceInfo(ds[d], CL_DEVICE_GLOBAL_MEM_SIZE, sizeof mem, &mem, NULL);
			clGetDeviceInfo(ds[d], CL_DEVICE_MAX_PARAMETER_SIZE, sizeof args, &args, NULL);
			fprintf(f, "opencl:%u.%u  %s (%s), %s, %u compute units, %.1f GB, kernel arguments up to "
			        "%zu bytes%s\n", p, d, name, vendor, version, cu, (double)mem / 1e9, args,
			        dev_type(ds[d]) & CL_DEVICE_TYPE_GPU ? ", GPU" : "");
		}
		free(ds);
	}
	free(pls);
	return RT_OK;
}

/* --- the program --------------------------------------------------------------- */

static void print_log(cl_dev *c, cl_program prog)
{
	size_t n = 0;
	char *log;
	if (clGetProgramBuildInfo(prog, c->dev, CL_PROGRAM_BUILD_LOG, 0, NULL, &n) != CL_SUCCESS ||
	    !(log = malloc(n + 1)))
		return;
	if (clGetProgramBuildInfo(prog, c->dev, CL_PROGRAM_BUILD_LOG, n, log, NULL) == CL_SUCCESS) {
		log[n] = 0;
		fprintf(stderr, "OpenCL build log (%s):\n%s\n", c->base.name, log);
	}
	free(log);
}

/* The build options of part i. */
static void build_options(int i, char *buf, size_t len)
{
	const char *extra = getenv("DDPMC_CL_OPTIONS");
	snprintf(buf, len, "-D DDPMC_PART_%d %s", i, extra ? extra : "");
}

/* What every part's binary depends on: the source (hashed once, not per
 * part: megabytes), the device, its driver and platform. */
static void source_key(cl_dev *c, rt_cl_key *k)
{
	char s[1024];
	rt_cl_key_init(k);
	rt_cl_key_add(k, c->base.p->cl_source, (size_t)c->base.p->cl_source_len);
	dev_str(c->dev, CL_DEVICE_NAME, s, sizeof s);
	rt_cl_key_add(k, s, strlen(s));
	dev_str(c->dev, CL_DRIVER_VERSION, s, sizeof s);
	rt_cl_key_add(k, s, strlen(s));
	plat_str(c->pl, CL_PLATFORM_VERSION, s, sizeof s);
	rt_cl_key_add(k, s, strlen(s));
}

/* From the cached binary; NULL (quietly) when absent or rejected. */
static cl_program build_cached(cl_dev *c, const rt_cl_key *k, const char *options)
{
	size_t len = 0;
	cl_int rc, status;
	unsigned char *bin = rt_cl_cache_load(k, &len);
	if (!bin)
		return NULL;
	const unsigned char *bins[1] = { bin };
	cl_program prog = clCreateProgramWithBinary(c->ctx, 1, &c->dev, &len, bins, &status, &rc);
	free(bin);
	if (rc == CL_SUCCESS && status == CL_SUCCESS &&
	    clBuildProgram(prog, 1, &c->dev, options, NULL, NULL) == CL_SUCCESS)
		return prog;
	if (prog)
		clReleaseProgram(prog);
	return NULL;
}

static void store_binary(cl_program prog, const rt_cl_key *k)
{
	size_t len = 0;
	unsigned char *bin;
	if (clGetProgramInfo(prog, CL_PROGRAM_BINARY_SIZES, sizeof len, &len, NULL) != CL_SUCCESS ||
	    !len || !(bin = malloc(len)))
		return;
	unsigned char *bins[1] = { bin };
	if (clGetProgramInfo(prog, CL_PROGRAM_BINARIES, sizeof bins, bins, NULL) == CL_SUCCESS)
		rt_cl_cache_store(k, bin, len);
	free(bin);
}

/* Part i's program into c->part[i], from the cache when it has it
 * (*compiled = 0) or from the source (*compiled = 1). */
static int build(cl_dev *c, int i, int *compiled, char *err, size_t errlen)
{
	char options[512];
	rt_cl_key k = c->source_key;
	cl_int rc;
	build_options(i, options, sizeof options);
	rt_cl_key_add(&k, options, strlen(options));
	cl_program *prog = &c->part[i];
	*compiled = 0;
	if ((*prog = build_cached(c, &k, options)))
		return RT_OK;
	*compiled = 1;
	const char *src = c->base.p->cl_source;
	size_t len = (size_t)c->base.p->cl_source_len;
	*prog = clCreateProgramWithSource(c->ctx, 1, &src, &len, &rc);
	if (rc != CL_SUCCESS)
		return cl_fail(err, errlen, rc, "cannot load the program for %s", c->base.name);
	rc = clBuildProgram(*prog, 1, &c->dev, options, NULL, NULL);
	if (rc == CL_BUILD_PROGRAM_FAILURE)
		print_log(c, *prog);
	if (rc != CL_SUCCESS) {
		clReleaseProgram(*prog);
		*prog = NULL;
		return cl_fail(err, errlen, rc, "the program does not build for %s (the build log is "
		               "on stderr)", c->base.name);
	}
	store_binary(*prog, &k);
	return RT_OK;
}

/* Builds of program parts, shared by the threads that run them: each
 * takes the next part of todo until none is left, one has failed
 * (optional: a part that fails is marked broken and the others go on) or
 * they are stopped; finished[i] once part i is built or left out. */
struct cl_builds {
	cl_dev *c;
	int *todo;              /* the parts to build, in order */
	int ntodo;
	int optional;
	char *finished;         /* (nparts) */
	pthread_mutex_t lock;
	pthread_cond_t progress;        /* a part finished (CLOCK_MONOTONIC) */
	int next, done, compiled, broken, rc, stop;
	double deadline;        /* rt_seconds() after which no part is started */
	int tty;                /* stderr shows the progress line */
	char err[512];
	pthread_t *th;
	char *started;
	int nthreads;
	double t0;
};

static void *build_worker(void *arg)
{
	cl_builds *b = arg;
	char err[512];
	for (;;) {
		pthread_mutex_lock(&b->lock);
		int i = b->rc == RT_OK && !b->stop && b->next < b->ntodo && rt_seconds() < b->deadline
		        ? b->todo[b->next++] : -1;
		pthread_mutex_unlock(&b->lock);
		if (i < 0)
			return NULL;
		int compiled = 0, rc = build(b->c, i, &compiled, err, sizeof err);
		pthread_mutex_lock(&b->lock);
		b->done++;
		b->compiled += compiled && rc == RT_OK;
		if (rc != RT_OK && b->optional) {
			b->c->broken[i] = 1;
			b->broken++;
			fprintf(stderr, "%swarning: OpenCL program part %d left out, its variants not timed: %s\n",
			        b->tty ? "\r" : "", i, err);
		} else if (rc != RT_OK && b->rc == RT_OK) {
			b->rc = rc;
			snprintf(b->err, sizeof b->err, "%s", err);
		}
		if (compiled && b->tty)
			fprintf(stderr, "\rbuilding OpenCL programs: %d/%d", b->done, b->ntodo);
		b->finished[i] = 1;
		pthread_cond_broadcast(&b->progress);
		pthread_mutex_unlock(&b->lock);
	}
}

/* The launches' scratch (program.h): `bytes`, the most any variant asks
 * for, zero. */
static int make_scratch(cl_dev *c, int64_t bytes, char *err, size_t errlen)
{
	if (!bytes)
		return RT_OK;
	cl_int rc;
	const cl_uint zero = 0;
	bytes = (bytes + 3) / 4 * 4;
	c->scratch = clCreateBuffer(c->ctx, CL_MEM_READ_WRITE, (size_t)bytes, NULL, &rc);
	if (rc == CL_SUCCESS)
		rc = clEnqueueFillBuffer(c->q, c->scratch, &zero, sizeof zero, 0, (size_t)bytes, 0, NULL, NULL);
	if (rc == CL_SUCCESS)
		rc = clFinish(c->q);
	return rc == CL_SUCCESS ? RT_OK : cl_fail(err, errlen, rc, "%s", "making the launches' scratch");
}

/* What the launches' variants need of the device: the number of program
 * parts they name and the most scratch any asks for. */
static void scan_variants(const rt_program *p, int *nparts, int64_t *scratch)
{
	*nparts = 0;
	*scratch = 0;
	for (int e = 0; e < p->nentries; e++)
		for (int i = 0; i < p->entries[e].nk; i++)
			for (int j = 0; j < p->entries[e].k[i].cl.nv; j++) {
				const rt_cl_variant *v = &p->entries[e].k[i].cl.v[j];
				if (v->part >= *nparts)
					*nparts = v->part + 1;
				if (v->scratch > *scratch)
					*scratch = v->scratch;
			}
}

static void builds_free(cl_builds *b)
{
	if (!b)
		return;
	free(b->todo);
	free(b->finished);
	free(b->th);
	free(b->started);
	free(b);
}

/* b with room for every part of c, or NULL. */
static cl_builds *builds_alloc(const cl_dev *c)
{
	cl_builds *b = calloc(1, sizeof *b);
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	if (!b)
		return NULL;
	b->nthreads = (int)(cores < 1 ? 1 : cores);
	b->todo = calloc((size_t)c->nparts + 1, sizeof *b->todo);
	b->finished = calloc((size_t)c->nparts + 1, 1);
	b->th = calloc((size_t)b->nthreads + 1, sizeof *b->th);
	b->started = calloc((size_t)b->nthreads + 1, 1);
	if (b->todo && b->finished && b->th && b->started)
		return b;
	builds_free(b);
	return NULL;
}

/* Starts building parts[0..n) (distinct) not built yet (nor broken), in
 * that order, on background threads, as many as the host has cores but no more than
 * there are parts (an OpenCL compiler takes seconds to minutes per
 * program; parts build independently), none started after `deadline`;
 * when no thread starts, builds them before it returns. */
static cl_builds *builds_start(cl_dev *c, const int *parts, int n, int optional, double deadline, char *err,
                               size_t errlen)
{
	cl_builds *b = builds_alloc(c);
	if (!b) {
		cl_fail(err, errlen, CL_OUT_OF_HOST_MEMORY, "%s", "building the programs");
		return NULL;
	}
	memset(b->finished, 1, (size_t)c->nparts);
	for (int x = 0; x < n; x++)
		if (!c->part[parts[x]] && !c->broken[parts[x]]) {
			b->finished[parts[x]] = 0;
			b->todo[b->ntodo++] = parts[x];
		}
	b->c = c;
	b->optional = optional;
	b->rc = RT_OK;
	b->tty = isatty(STDERR_FILENO);
	b->t0 = rt_seconds();
	b->deadline = deadline;
	b->nthreads = b->nthreads < b->ntodo ? b->nthreads : b->ntodo;
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&b->progress, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&b->lock, NULL);
	int any = 0;
	for (int i = 0; i < b->nthreads; i++)
		any |= b->started[i] = pthread_create(&b->th[i], NULL, build_worker, b) == 0;
	if (!any)
		build_worker(b);        /* no thread: every part now, on this one */
	return b;
}

/* Ends b: with `stop`, no part is started any more; this thread builds
 * what is left beside the others (alone if none started), then waits for
 * them, reports how long the builds took, frees b and returns their
 * status. */
static int builds_end(cl_builds *b, int stop, char *err, size_t errlen)
{
	pthread_mutex_lock(&b->lock);
	b->stop |= stop;
	pthread_mutex_unlock(&b->lock);
	build_worker(b);
	for (int i = 0; i < b->nthreads; i++)
		if (b->started[i])
			pthread_join(b->th[i], NULL);
	if (b->compiled || b->broken)
		fprintf(stderr, "%sbuilt %d of %d OpenCL programs in %.1f s%s%s%s\n", b->tty ? "\r" : "",
		        b->compiled, b->ntodo, rt_seconds() - b->t0, b->broken ? ", the failed left out" : "",
		        b->compiled + b->broken < b->done ? " (the others from the cache)" : "",
		        b->done < b->ntodo ? " (the rest not started)" : "");
	int rc = b->rc;
	if (rc != RT_OK)
		snprintf(err, errlen, "%s", b->err);
	pthread_mutex_destroy(&b->lock);
	pthread_cond_destroy(&b->progress);
	builds_free(b);
	return rc;
}

int cl_build_choices(cl_dev *c, char *err, size_t errlen)
{
	const rt_program *p = c->base.p;
	char *need = calloc((size_t)c->nparts + 1, 1);
	int *parts = malloc(((size_t)c->nparts + 1) * sizeof *parts), n = 0;
	cl_builds *b = NULL;
	if (need && parts) {
		for (int e = 0; e < p->nentries; e++)
			for (int i = 0; i < p->entries[e].nk; i++)
				if (p->entries[e].k[i].cl.nv)
					need[p->entries[e].k[i].cl.v[c->ent[e].choice[i]].part] = 1;
		for (int i = 0; i < c->nparts; i++)
			if (need[i])
				parts[n++] = i;
		b = builds_start(c, parts, n, 0, HUGE_VAL, err, errlen);
	} else {
		cl_fail(err, errlen, CL_OUT_OF_HOST_MEMORY, "%s", "building the programs");
	}
	free(need);
	free(parts);
	return b ? builds_end(b, 0, err, errlen) : RT_ERR;
}

cl_builds *cl_build_start(cl_dev *c, const rt_entry *e, const int *order, int nk, double deadline,
                          char *err, size_t errlen)
{
	char *need = calloc((size_t)c->nparts + 1, 1);
	int *first = calloc((size_t)nk * RT_CL_MAX_VARIANTS + 1, sizeof *first), n = 0;
	cl_builds *b = NULL;
	if (need && first) {
		for (int x = 0; x < nk; x++)
			for (int j = 0; j < e->k[order[x]].cl.nv; j++) {
				int part = e->k[order[x]].cl.v[j].part;
				if (!need[part])
					first[n++] = part;
				need[part] = 1;
			}
		b = builds_start(c, first, n, 1, deadline, err, errlen);
	} else {
		cl_fail(err, errlen, CL_OUT_OF_HOST_MEMORY, "%s", "building the programs");
	}
	free(need);
	free(first);
	return b;
}

/* Waits on b->progress until `deadline` (rt_seconds()'s clock); 0 once it
 * has passed. Called with b->lock held. */
static int wait_progress(cl_builds *b, double deadline)
{
	double left = deadline - rt_seconds();
	if (left <= 0)
		return 0;
	if (left > 1e6) {
		pthread_cond_wait(&b->progress, &b->lock);
		return 1;
	}
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	double at = (double)ts.tv_nsec * 1e-9 + left;
	ts.tv_sec += (time_t)at;
	ts.tv_nsec = (long)((at - (double)(time_t)at) * 1e9);
	pthread_cond_timedwait(&b->progress, &b->lock, &ts);
	return 1;
}

int cl_build_ready(cl_builds *b, const rt_cl_launch *l, double deadline)
{
	pthread_mutex_lock(&b->lock);
	int ready = 0;
	for (;;) {
		ready = 1;
		for (int j = 0; j < l->nv; j++)
			ready &= b->finished[l->v[j].part];
		if (ready || !wait_progress(b, deadline))
			break;
	}
	pthread_mutex_unlock(&b->lock);
	return ready;
}

void cl_build_end(cl_builds *b)
{
	char err[8];
	builds_end(b, 1, err, sizeof err);
}

cl_kernel cl_make_kernel(cl_dev *c, const rt_entry *e, int i, int j, char *err, size_t errlen)
{
	char what[256];
	const rt_cl_launch *l = &e->k[i].cl;
	cl_uint nargs = 0;
	size_t wg = 0;
	cl_int rc;
	snprintf(what, sizeof what, "%s kernel %d (%s)", e->name, i, e->k[i].name);
	if (!l->nv) {
		snprintf(err, errlen, "OpenCL: %s has no OpenCL launch in the program", what);
		return NULL;
	}
	const rt_cl_variant *v = &l->v[j];
	if (!c->part[v->part]) {
		snprintf(err, errlen, "OpenCL: %s: '%s' is in program part %d, which was not built", what,
		         v->name, v->part);
		return NULL;
	}
	cl_kernel k = clCreateKernel(c->part[v->part], v->name, &rc);
	if (rc != CL_SUCCESS) {
		cl_fail(err, errlen, rc, "%s: no kernel of its name in the OpenCL source", what);
		return NULL;
	}
	clGetKernelInfo(k, CL_KERNEL_NUM_ARGS, sizeof nargs, &nargs, NULL);
	clGetKernelWorkGroupInfo(k, c->dev, CL_KERNEL_WORK_GROUP_SIZE, sizeof wg, &wg, NULL);
	int given = l->nargs + 1 + (v->scratch > 0);
	if (nargs != (cl_uint)given)
		snprintf(err, errlen, "OpenCL: %s: '%s' takes %u arguments, the launch gives %d", what,
		         v->name, nargs, given);
	else if (wg && (size_t)v->local > wg)
		snprintf(err, errlen, "OpenCL: %s: work-groups of %lld, %s allows at most %zu", what,
		         (long long)v->local, c->base.name, wg);
	else
		return k;
	clReleaseKernel(k);
	return NULL;
}

/* One cl_kernel per kernel, its chosen variant's. */
static int make_kernels(cl_dev *c, const rt_entry *e, cl_entry *ce, char *err, size_t errlen)
{
	if (!(ce->k = calloc((size_t)e->nk + 1, sizeof *ce->k)))
		return cl_fail(err, errlen, CL_OUT_OF_HOST_MEMORY, "%s", e->name);
	for (int i = 0; i < e->nk; i++)
		if (!(ce->k[i] = cl_make_kernel(c, e, i, ce->choice[i], err, errlen)))
			return RT_ERR;
	return RT_OK;
}

/* --- buffers ----------------------------------------------------------------- */

static cl_mem new_buffer(cl_dev *c, cl_mem_flags flags, size_t bytes, cl_int *rc)
{
	return clCreateBuffer(c->ctx, flags, bytes > MIN_BYTES ? bytes : MIN_BYTES, NULL, rc);
}

/* The entry's arena and its input and output buffers (first run). */
static int prepare(cl_dev *c, const rt_entry *e, cl_entry *ce, char *err, size_t errlen)
{
	cl_int rc = CL_SUCCESS;
	ce->mem = calloc((size_t)e->nbuf + 1, sizeof *ce->mem);
	ce->bound = calloc((size_t)e->nbuf + 1, sizeof *ce->bound);
	ce->copy = malloc(((size_t)e->nbuf + 1) * sizeof *ce->copy);
	ce->stage = calloc((size_t)e->nbuf + 1, sizeof *ce->stage);
	ce->wrote = calloc(2 * (size_t)e->nbuf + 1, sizeof *ce->wrote);
	if (!ce->mem || !ce->bound || !ce->copy || !ce->stage || !ce->wrote)
		return cl_fail(err, errlen, CL_OUT_OF_HOST_MEMORY, "%s", e->name);
	ce->arena = new_buffer(c, CL_MEM_READ_WRITE, (size_t)e->arena_bytes, &rc);
	for (int i = 0; i < e->nbuf && rc == CL_SUCCESS; i++) {
		const rt_buffer *b = &e->buf[i];
		ce->copy[i] = -1;
		if (b->kind == RT_BUF_INPUT || b->kind == RT_BUF_OUTPUT)
			ce->mem[i] = new_buffer(c, CL_MEM_READ_WRITE, (size_t)b->bytes, &rc);
		if (b->kind == RT_BUF_INPUT && !(ce->stage[i] = malloc(2 * (size_t)b->bytes + 1)))
			rc = CL_OUT_OF_HOST_MEMORY;
	}
	if (rc != CL_SUCCESS)
		return cl_fail(err, errlen, rc, "%s: cannot allocate its buffers", e->name);
	ce->ready = 1;
	return RT_OK;
}

/* The copy of host[0..bytes) (two consts may start at one address). */
static cl_copy *find_copy(cl_dev *c, const void *host, size_t bytes, int *slot)
{
	if (*slot >= 0 && *slot < c->ncopies && c->copies[*slot].host == host &&
	    c->copies[*slot].bytes == bytes)
		return &c->copies[*slot];
	for (int i = 0; i < c->ncopies; i++)
		if (c->copies[i].host == host && c->copies[i].bytes == bytes) {
			*slot = i;
			return &c->copies[i];
		}
	return NULL;
}

/* The device copy of host[0..bytes), made (not yet valid) when new. */
static cl_copy *get_copy(cl_dev *c, const void *host, size_t bytes, int *slot, cl_int *rc)
{
	cl_copy *s = find_copy(c, host, bytes, slot);
	if (!s) {
		if (c->ncopies == c->capcopies) {
			int cap = c->capcopies ? 2 * c->capcopies : 64;
			cl_copy *n = realloc(c->copies, (size_t)cap * sizeof *n);
			if (!n) {
				*rc = CL_OUT_OF_HOST_MEMORY;
				return NULL;
			}
			c->copies = n, c->capcopies = cap;
		}
		*slot = c->ncopies++;
		s = &c->copies[*slot];
		*s = (cl_copy){ .host = host, .bytes = bytes };
	}
	if (!s->mem && !(s->mem = new_buffer(c, CL_MEM_READ_WRITE, bytes, rc)))
		return NULL;
	if (!s->valid && bytes &&
	    (*rc = clEnqueueWriteBuffer(c->q, s->mem, CL_FALSE, 0, bytes, host, 0, NULL, NULL)))
		return NULL;
	s->valid = 1;
	return s;
}

/* Input i's bytes into this turn's staging copy (the host may change its
 * tensor once the run is queued), written from there; the copy's last
 * write is waited for first. */
static cl_int upload_input(cl_dev *c, cl_entry *ce, int i, const void *host, size_t bytes)
{
	cl_event *ev = &ce->wrote[2 * i + ce->turn];
	unsigned char *copy = ce->stage[i] + (size_t)ce->turn * bytes;
	if (*ev) {
		cl_int rc = clWaitForEvents(1, ev);
		clReleaseEvent(*ev);
		*ev = NULL;
		if (rc != CL_SUCCESS)
			return rc;
	}
	memcpy(copy, host, bytes);
	return clEnqueueWriteBuffer(c->q, ce->mem[i], CL_FALSE, 0, bytes, copy, 0, NULL, ev);
}

/* ce->bound for this run: copies for params and consts (uploaded when
 * not valid), inputs written, temps in the arena. */
static int bind(cl_dev *c, const rt_entry *e, cl_entry *ce, void *const *host, char *err,
                size_t errlen)
{
	cl_int rc = CL_SUCCESS;
	for (int i = 0; i < e->nbuf; i++) {
		const rt_buffer *b = &e->buf[i];
		size_t bytes = (size_t)b->bytes;
		cl_copy *s;
		switch (b->kind) {
		case RT_BUF_PARAM:
		case RT_BUF_CONST:
			if (!(s = get_copy(c, host[i], bytes, &ce->copy[i], &rc)))
				return cl_fail(err, errlen, rc, "%s: cannot upload its state or constants",
				               e->name);
			s->newer |= b->kind == RT_BUF_PARAM;
			ce->bound[i] = s->mem;
			break;
		case RT_BUF_INPUT:
			if (bytes && (rc = upload_input(c, ce, i, host[i], bytes)))
				return cl_fail(err, errlen, rc, "cannot upload input %s", b->name);
			ce->bound[i] = ce->mem[i];
			break;
		case RT_BUF_OUTPUT: ce->bound[i] = ce->mem[i]; break;
		case RT_BUF_TEMP: ce->bound[i] = NULL; break;
		}
	}
	return RT_OK;
}

cl_int cl_enqueue(cl_dev *c, const rt_entry *e, cl_entry *ce, int i, int j, cl_kernel k, cl_event *ev)
{
	const rt_cl_launch *l = &e->k[i].cl;
	size_t global = (size_t)l->v[j].global, local = (size_t)l->v[j].local;
	cl_int rc = clSetKernelArg(k, 0, sizeof(cl_mem), &ce->arena);
	for (int a = 0; a < l->nargs && rc == CL_SUCCESS; a++) {
		const rt_buffer *b = &e->buf[l->args[a]];
		cl_long offset = b->offset;
		rc = b->kind == RT_BUF_TEMP ? clSetKernelArg(k, (cl_uint)a + 1, sizeof offset, &offset)
		                            : clSetKernelArg(k, (cl_uint)a + 1, sizeof(cl_mem), &ce->bound[l->args[a]]);
	}
	if (rc == CL_SUCCESS && l->v[j].scratch > 0)
		rc = clSetKernelArg(k, (cl_uint)l->nargs + 1, sizeof(cl_mem), &c->scratch);
	return rc != CL_SUCCESS ? rc : clEnqueueNDRangeKernel(c->q, k, 1, NULL, &global, &local, 0, NULL, ev);
}

static int launch(cl_dev *c, const rt_entry *e, cl_entry *ce, char *err, size_t errlen)
{
	if (rt_exec_profiling(e) && !ce->ev && !(ce->ev = calloc((size_t)e->nk + 1, sizeof *ce->ev)))
		return cl_fail(err, errlen, CL_OUT_OF_HOST_MEMORY, "%s", e->name);
	for (int i = 0; i < e->nk; i++) {
		cl_int rc = cl_enqueue(c, e, ce, i, ce->choice[i], ce->k[i],
		                       rt_exec_profiling(e) ? &ce->ev[i] : NULL);
		if (rc != CL_SUCCESS)
			return cl_fail(err, errlen, rc, "cannot launch kernel %s", e->k[i].name);
	}
	return RT_OK;
}

double cl_event_seconds(cl_event ev)
{
	cl_ulong t0 = 0, t1 = 0;
	if (clGetEventProfilingInfo(ev, CL_PROFILING_COMMAND_START, sizeof t0, &t0, NULL) != CL_SUCCESS ||
	    clGetEventProfilingInfo(ev, CL_PROFILING_COMMAND_END, sizeof t1, &t1, NULL) != CL_SUCCESS)
		return -1;
	return (double)(t1 - t0) * 1e-9;
}

/* The device time of each profiled launch, once the queue is done. */
static void collect_times(const rt_entry *e, cl_entry *ce)
{
	for (int i = 0; ce->ev && i < e->nk; i++) {
		if (!ce->ev[i])
			continue;
		double s = cl_event_seconds(ce->ev[i]);
		if (s >= 0)
			rt_exec_add_seconds(e, i, s);
		clReleaseEvent(ce->ev[i]);
		ce->ev[i] = NULL;
	}
}

static int read_outputs(cl_dev *c, const rt_entry *e, cl_entry *ce, void *const *host,
                        char *err, size_t errlen)
{
	for (int i = 0; i < e->nbuf; i++) {
		const rt_buffer *b = &e->buf[i];
		cl_int rc;
		if (b->kind == RT_BUF_OUTPUT && b->bytes &&
		    (rc = clEnqueueReadBuffer(c->q, ce->mem[i], CL_FALSE, 0, (size_t)b->bytes, host[i],
		                              0, NULL, NULL)))
			return cl_fail(err, errlen, rc, "cannot read output %s", b->name);
	}
	return RT_OK;
}

static int cl_submit(rt_device *d, const rt_entry *e, rt_tensorset *state,
                     const rt_tensorset *inputs, rt_tensorset *outputs, char *err, size_t errlen)
{
	cl_dev *c = (cl_dev *)d;
	const rt_program *p = d->p;
	if (e < p->entries || e >= p->entries + p->nentries) {
		snprintf(err, errlen, "%s: not an entry of this device's program", e->name);
		return RT_ERR;
	}
	cl_entry *ce = &c->ent[e - p->entries];
	void *const *host = rt_entry_bind(p, e, state, inputs, outputs, err, errlen);
	if (!host || (!ce->ready && prepare(c, e, ce, err, errlen)))
		return RT_ERR;
	int rc = bind(c, e, ce, host, err, errlen) || launch(c, e, ce, err, errlen) ||
	         read_outputs(c, e, ce, host, err, errlen);
	ce->turn ^= 1;
	if (!rc && !rt_exec_profiling(e))
		return RT_OK;
	cl_int frc = clFinish(c->q);    /* also after a failure: nothing left in flight */
	collect_times(e, ce);
	if (!rc && frc != CL_SUCCESS)
		return cl_fail(err, errlen, frc, "%s: the run failed", e->name);
	return rc ? RT_ERR : RT_OK;
}

static int cl_wait(rt_device *d, char *err, size_t errlen)
{
	cl_int rc = clFinish(((cl_dev *)d)->q);
	return rc == CL_SUCCESS ? RT_OK : cl_fail(err, errlen, rc, "a queued run failed on %s", d->name);
}

static int cl_sync(rt_device *d, rt_tensorset *state, char *err, size_t errlen)
{
	cl_dev *c = (cl_dev *)d;
	cl_int rc = CL_SUCCESS;
	for (int i = 0; i < state->n && rc == CL_SUCCESS; i++) {
		rt_tensor *t = &state->t[i];
		int slot = -1;
		size_t bytes = (size_t)rt_numel(t->rank, t->shape) * rt_dtype_size(t->dtype);
		cl_copy *s = find_copy(c, t->data, bytes, &slot);
		if (!s || !s->valid || !s->newer || !bytes)
			continue;
		rc = clEnqueueReadBuffer(c->q, s->mem, CL_FALSE, 0, bytes, t->data, 0, NULL, NULL);
		s->newer = 0;
	}
	cl_int frc = clFinish(c->q);
	if (rc == CL_SUCCESS)
		rc = frc;
	if (rc != CL_SUCCESS)
		return cl_fail(err, errlen, rc, "cannot read the state back from %s", d->name);
	return RT_OK;
}

static void cl_invalidate(rt_device *d, rt_tensorset *state)
{
	cl_dev *c = (cl_dev *)d;
	for (int i = 0; i < state->n; i++) {
		const rt_tensor *t = &state->t[i];
		int slot = -1;
		cl_copy *s = find_copy(c, t->data,
		                       (size_t)rt_numel(t->rank, t->shape) * rt_dtype_size(t->dtype), &slot);
		if (s)
			s->valid = s->newer = 0;
	}
}

static void cl_free(rt_device *d)
{
	cl_dev *c = (cl_dev *)d;
	if (c->q)
		clFinish(c->q);
	for (int i = 0; c->ent && i < d->p->nentries; i++) {
		cl_entry *ce = &c->ent[i];
		for (int k = 0; ce->k && k < d->p->entries[i].nk; k++)
			if (ce->k[k])
				clReleaseKernel(ce->k[k]);
		for (int b = 0; ce->mem && b < d->p->entries[i].nbuf; b++)
			if (ce->mem[b])
				clReleaseMemObject(ce->mem[b]);
		if (ce->arena)
			clReleaseMemObject(ce->arena);
		free(ce->k);
		free(ce->choice);
		free(ce->ev);
		free(ce->mem);
		free(ce->bound);
		free(ce->copy);
		for (int b = 0; ce->wrote && b < 2 * d->p->entries[i].nbuf; b++)
			if (ce->wrote[b])
				clReleaseEvent(ce->wrote[b]);
		for (int b = 0; ce->stage && b < d->p->entries[i].nbuf; b++)
			free(ce->stage[b]);
		free(ce->wrote);
		free(ce->stage);
	}
	if (c->scratch)
		clReleaseMemObject(c->scratch);
	for (int i = 0; c->part && i < c->nparts; i++)
		if (c->part[i])
			clReleaseProgram(c->part[i]);
	free(c->part);
	free(c->broken);
	rt_sb_free(&c->tuned);
	for (int i = 0; i < c->ncopies; i++)
		if (c->copies[i].mem)
			clReleaseMemObject(c->copies[i].mem);
	if (c->q)
		clReleaseCommandQueue(c->q);
	if (c->ctx)
		clReleaseContext(c->ctx);
	free(c->copies);
	free(c->ent);
	free(c);
}

static const rt_device_ops cl_ops = { cl_submit, cl_wait, cl_sync, cl_invalidate, cl_tune, cl_free };

static int cl_setup(cl_dev *c, int plat, int dev, char *err, size_t errlen)
{
	cl_int rc;
	char dname[200], pname[120];
	if (choose(&plat, &dev, &c->pl, &c->dev, err, errlen))
		return RT_ERR;
	dev_str(c->dev, CL_DEVICE_NAME, dname, sizeof dname);
	plat_str(c->pl, CL_PLATFORM_NAME, pname, sizeof pname);
	snprintf(c->base.name, sizeof c->base.name, "OpenCL %d.%d: %s (%s)", plat, dev, dname, pname);
	c->ctx = clCreateContext(NULL, 1, &c->dev, NULL, NULL, &rc);
	if (rc != CL_SUCCESS)
		return cl_fail(err, errlen, rc, "cannot open %s", c->base.name);
	c->q = clCreateCommandQueue(c->ctx, c->dev, CL_QUEUE_PROFILING_ENABLE, &rc);
	if (rc != CL_SUCCESS)
		return cl_fail(err, errlen, rc, "cannot make a queue on %s", c->base.name);
	const rt_program *p = c->base.p;
	int64_t scratch;
	scan_variants(p, &c->nparts, &scratch);
	source_key(c, &c->source_key);
	int ok = (c->ent = calloc((size_t)p->nentries + 1, sizeof *c->ent)) &&
	         (c->part = calloc((size_t)c->nparts + 1, sizeof *c->part)) &&
	         (c->broken = calloc((size_t)c->nparts + 1, 1));
	for (int i = 0; ok && i < p->nentries; i++)
		ok = (c->ent[i].choice = calloc((size_t)p->entries[i].nk + 1, sizeof(int))) != NULL;
	if (!ok)
		return cl_fail(err, errlen, CL_OUT_OF_HOST_MEMORY, "%s", "opening the device");
	if (make_scratch(c, scratch, err, errlen))
		return RT_ERR;
	cl_tuning_load(c);
	if (cl_build_choices(c, err, errlen))
		return RT_ERR;
	for (int i = 0; i < p->nentries; i++)
		if (make_kernels(c, &p->entries[i], &c->ent[i], err, errlen))
			return RT_ERR;
	return RT_OK;
}

rt_device *rt_cl_open(const rt_program *p, int plat, int dev, char *err, size_t errlen)
{
	if (!p->cl_source || p->cl_source_len <= 0 || !p->cl_source[0]) {
		snprintf(err, errlen, "this executable was compiled for the CPU only: recompile with "
		         "ddpmc compile --target all");
		return NULL;
	}
	cl_dev *c = calloc(1, sizeof *c);
	if (!c) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->base.ops = &cl_ops;
	c->base.p = p;
	if (cl_setup(c, plat, dev, err, errlen)) {
		cl_free(&c->base);
		return NULL;
	}
	return &c->base;
}
