/* cl_impl: the OpenCL device's insides, shared by cl.c (the device) and
 * cl_tune.c (its tuning); internal to the runtime. */
#ifndef DDPMC_RUNTIME_CL_IMPL_H
#define DDPMC_RUNTIME_CL_IMPL_H

#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>

#include "device_impl.h"
#include "json.h"

typedef struct {                /* a param's or const's copy on the device */
	const void *host;
	size_t bytes;
	cl_mem mem;
	int valid;              /* holds the host's values, or newer ones */
	int newer;              /* a run may have changed it since the last sync */
} cl_copy;

typedef struct {
	int ready;              /* buffers made */
	cl_mem arena;
	cl_mem *mem;            /* (nbuf) inputs and outputs; NULL otherwise */
	cl_mem *bound;          /* (nbuf) what each buffer is this run (temps: NULL) */
	int *copy;              /* (nbuf) params, consts: their copy last time, or -1 */
	cl_kernel *k;           /* (nk) */
	int *choice;            /* (nk) the variant each kernel launches (program.h "alts") */
	cl_event *ev;           /* (nk) this run's launches, when profiled */
	unsigned char **stage;  /* (nbuf) inputs: two host copies of the bytes, used in turn */
	cl_event *wrote;        /* (2 nbuf) the write from each copy, until waited for */
	int turn;               /* the staging copy this run uses */
} cl_entry;

typedef struct {
	rt_device base;         /* first: a cl_dev is an rt_device */
	cl_device_id dev;
	cl_context ctx;
	cl_command_queue q;
	cl_platform_id pl;
	cl_entry *ent;          /* (p->nentries) */
	cl_program *part;       /* (nparts) the programs of the source's parts; NULL: not built */
	char *broken;           /* (nparts) parts tune found not to build: not tried again */
	int nparts;             /* every part a variant names */
	rt_cl_key source_key;   /* the cache key of every part, before its options */
	cl_copy *copies;
	int ncopies, capcopies;
	cl_mem scratch;         /* the launches' "scratch" (program.h), zeroed at open; NULL: none */
	rt_strbuf tuned;        /* the tuning file's kernel lines, when it parsed (cl_tune.c) */
} cl_dev;

/* "OpenCL: <fmt with what>: CL_ERROR_NAME (code)" into err; RT_ERR. */
int cl_fail(char *err, size_t errlen, cl_int rc, const char *fmt, const char *what);
/* Builds the parts of every kernel's chosen variant not built yet (each
 * must build), on as many threads as the host has cores. */
int cl_build_choices(cl_dev *c, char *err, size_t errlen);
/* Tune's builds (cl.c): the parts not built yet of every variant of
 * entry e's kernels order[0..nk) (kernel indices), on background threads,
 * in that order, none started after `deadline` (rt_seconds()); a part
 * that does not build is reported and left out (its variants do not
 * launch). */
typedef struct cl_builds cl_builds;
cl_builds *cl_build_start(cl_dev *c, const rt_entry *e, const int *order, int nk, double deadline,
                          char *err, size_t errlen);
/* Whether every part of l's variants is built or left out, waiting for
 * them until `deadline` (rt_seconds()); 0 when the deadline came first. */
int cl_build_ready(cl_builds *b, const rt_cl_launch *l, double deadline);
/* Starts no more parts, waits for those in progress, reports, frees b. */
void cl_build_end(cl_builds *b);
/* Kernel i of entry e as variant j: its cl_kernel, checked against the
 * launch (argument count, work-group size); NULL with a message. */
cl_kernel cl_make_kernel(cl_dev *c, const rt_entry *e, int i, int j, char *err, size_t errlen);
/* Enqueues kernel i of e as variant j through k (its arguments set from
 * this run's buffers); ev: NULL or its event. */
cl_int cl_enqueue(cl_dev *c, const rt_entry *e, cl_entry *ce, int i, int j, cl_kernel k, cl_event *ev);
/* Device seconds between an event's start and end (-1 when unknown). */
double cl_event_seconds(cl_event ev);

/* cl_tune.c: each kernel's variant from the tuning file of this source and
 * device, when there is one, into every entry's choice and its lines into
 * c->tuned (without one, a note on a terminal suggests `tune`; one that
 * does not parse is reported on stderr and every choice stays 0). */
void cl_tuning_load(cl_dev *c);
/* The device op rt_device_tune. */
int cl_tune(rt_device *d, rt_tensorset *state, double seconds, FILE *log, char *err, size_t errlen);

#endif
