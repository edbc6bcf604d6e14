/* device.c: the device spec (device.h), dispatch to a device's functions,
 * and the CPU device: the generated C kernels run by rt_entry_run on the
 * thread pool, with the host tensors as the state (nothing to sync). */
#include <stdlib.h>
#include <string.h>

#include "device_impl.h"
#include "exec.h"

static int cpu_submit(rt_device *d, const rt_entry *e, rt_tensorset *state,
                   const rt_tensorset *inputs, rt_tensorset *outputs, char *err, size_t errlen)
{
	return rt_entry_run(d->p, e, state, inputs, outputs, d->pool, err, errlen);
}

static int cpu_sync(rt_device *d, rt_tensorset *state, char *err, size_t errlen)
{
	return RT_OK;
}

static void cpu_invalidate(rt_device *d, rt_tensorset *state)
{
}

static void cpu_free(rt_device *d)
{
	rt_pool_free(d->pool);
	free(d);
}

static const rt_device_ops cpu_ops = { cpu_submit, NULL, cpu_sync, cpu_invalidate, NULL, cpu_free };

/* Every kernel needs its C function (fn -1: compiled for OpenCL only). */
static rt_device *cpu_open(const rt_program *p, int threads, char *err, size_t errlen)
{
	for (int i = 0; i < p->nentries; i++)
		for (int k = 0; k < p->entries[i].nk; k++)
			if (!p->entries[i].k[k].fn) {
				snprintf(err, errlen, "this executable was compiled for OpenCL only: use "
				         "--device opencl, or recompile with ddpmc compile --target all");
				return NULL;
			}
	rt_device *d = calloc(1, sizeof *d);
	if (!d) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	d->ops = &cpu_ops;
	d->p = p;
	if (!(d->pool = rt_pool_new(threads, err, errlen))) {
		free(d);
		return NULL;
	}
	snprintf(d->name, sizeof d->name, "cpu (%d thread%s)", rt_pool_threads(d->pool),
	         rt_pool_threads(d->pool) == 1 ? "" : "s");
	return d;
}

/* A number 0..9999 of digits only at s, ending at `stop`; -1 if none. */
static long parse_number(const char *s, char stop, const char **next)
{
	char *end;
	long v = strtol(s, &end, 10);
	if (end == s || *end != stop || v < 0 || v > 9999 || s[0] == '-' || s[0] == '+')
		return -1;
	*next = end;
	return v;
}

/* "P.D" -> P, D; -1 when not of that form. */
static int parse_pd(const char *s, int *plat, int *dev)
{
	long p = parse_number(s, '.', &s), d = p < 0 ? -1 : parse_number(s + 1, 0, &s);
	if (d < 0)
		return -1;
	*plat = (int)p;
	*dev = (int)d;
	return 0;
}

/* "N" -> N; -1 when not of that form. */
static int parse_index(const char *s, int *n)
{
	long v = parse_number(s, 0, &s);
	if (v < 0)
		return -1;
	*n = (int)v;
	return 0;
}

/* An OpenCL device runs p's program lowered for a GPU where the
 * executable has one (p->opencl), else p. */
static rt_device *open_spec(const rt_program *p, const char *spec, int threads, char *err, size_t errlen)
{
	int plat = -1, dev = 0;
	if (strcmp(spec, "cpu") == 0 || strcmp(spec, "cpu:0") == 0)
		return cpu_open(p, threads, err, errlen);
	if (strcmp(spec, "opencl") == 0 ||
	    (strncmp(spec, "opencl:", 7) == 0 && (parse_pd(spec + 7, &plat, &dev) == 0 ||
	                                          parse_index(spec + 7, &dev) == 0)))
		return rt_cl_open(p->opencl ? p->opencl : p, plat, dev, err, errlen);
	snprintf(err, errlen, "unknown device '%s' (expected cpu, opencl, opencl:N, opencl:P.D, or "
	         "list to see them)", spec);
	return NULL;
}

rt_device *rt_device_open(const rt_program *p, const char *spec, int threads, char *err,
                          size_t errlen)
{
	rt_device *d = open_spec(p, spec, threads, err, errlen);
	if (d)
		d->opened = p;
	return d;
}

void rt_device_free(rt_device *d)
{
	if (d)
		d->ops->free(d);
}

/* An entry of the program d was opened for maps to the one in its place;
 * d's own (tune's) stays. */
const rt_entry *rt_device_entry(const rt_device *d, const rt_entry *e)
{
	uintptr_t at = (uintptr_t)e, first = (uintptr_t)d->opened->entries;
	size_t i = (at - first) / sizeof *e;
	if (d->p == d->opened || at < first || i >= (size_t)d->opened->nentries)
		return e;
	return &d->p->entries[i];
}

int rt_device_submit(rt_device *d, const rt_entry *e, rt_tensorset *state,
                     const rt_tensorset *inputs, rt_tensorset *outputs, char *err, size_t errlen)
{
	return d->ops->submit(d, rt_device_entry(d, e), state, inputs, outputs, err, errlen);
}

int rt_device_wait(rt_device *d, char *err, size_t errlen)
{
	return d->ops->wait ? d->ops->wait(d, err, errlen) : RT_OK;
}

int rt_device_queues(const rt_device *d)
{
	return d->ops->wait != NULL;
}

int rt_device_run(rt_device *d, const rt_entry *e, rt_tensorset *state, const rt_tensorset *inputs,
                  rt_tensorset *outputs, char *err, size_t errlen)
{
	int rc = rt_device_submit(d, e, state, inputs, outputs, err, errlen);
	return rc != RT_OK ? rc : rt_device_wait(d, err, errlen);
}

int rt_device_sync(rt_device *d, rt_tensorset *state, char *err, size_t errlen)
{
	return d->ops->sync(d, state, err, errlen);
}

void rt_device_invalidate(rt_device *d, rt_tensorset *state)
{
	d->ops->invalidate(d, state);
}

int rt_device_tune(rt_device *d, rt_tensorset *state, double seconds, FILE *log, char *err, size_t errlen)
{
	if (d->ops->tune)
		return d->ops->tune(d, state, seconds, log, err, errlen);
	snprintf(err, errlen, "tune times the OpenCL kernels' variants: give --device opencl (the CPU's "
	         "kernels are tuned when compiling: ddpmc compile --tune)");
	return RT_ERR;
}

const char *rt_device_name(const rt_device *d)
{
	return d->name;
}

rt_pool *rt_device_pool(rt_device *d)
{
	return d->pool;
}

int rt_device_list(FILE *f)
{
	rt_cl_list(f);
	fprintf(f, "cpu       the CPU, %d cores (--threads N)\n", rt_cpu_count());
	return RT_OK;
}
