/* device_impl: what the devices of device.h implement (internal to the
 * runtime). A device is a small table of functions (ggml's backend
 * interface) over a common header; device.c holds the CPU device and the
 * spec parser, cl.c the OpenCL device, cl_cache.c its program-binary cache. */
#ifndef DDPMC_RUNTIME_DEVICE_IMPL_H
#define DDPMC_RUNTIME_DEVICE_IMPL_H

#include <stdint.h>

#include "device.h"

typedef struct {
	int (*submit)(rt_device *d, const rt_entry *e, rt_tensorset *state,
	              const rt_tensorset *inputs, rt_tensorset *outputs, char *err, size_t errlen);
	int (*wait)(rt_device *d, char *err, size_t errlen);    /* NULL: submit completes runs */
	int (*sync)(rt_device *d, rt_tensorset *state, char *err, size_t errlen);
	void (*invalidate)(rt_device *d, rt_tensorset *state);
	int (*tune)(rt_device *d, rt_tensorset *state, double seconds, FILE *log, char *err, size_t errlen);    /* NULL: none */
	void (*free)(rt_device *d);
} rt_device_ops;

struct rt_device {
	const rt_device_ops *ops;
	const rt_program *p;            /* the program it runs */
	const rt_program *opened;       /* the one it was opened for: p, or p's CPU program
	                                   (whose entries it maps to p's: rt_device_submit) */
	char name[512];
	rt_pool *pool;          /* the CPU device's; NULL on OpenCL */
};

/* cl.c: device `dev` of platform `plat`, or with plat -1 the dev-th of
 * the devices "opencl" chooses from (device.h); NULL with a one-line
 * message in err. */
rt_device *rt_cl_open(const rt_program *p, int plat, int dev, char *err, size_t errlen);
int rt_cl_list(FILE *f);

/* cl_cache.c: the on-disk cache of program binaries, one file per key in
 * $DDPMC_CL_CACHE, else $XDG_CACHE_HOME/ddpmc, else ~/.cache/ddpmc.
 * The key is a hash of everything the binary depends on (the source, the
 * build options, the device's name, its driver and platform versions).
 * rt_cl_cache_path: the file for `key` with extension ext (".bin" for a
 * binary; 0 when there is no cache folder);
 * rt_cl_cache_load: the binary (malloc'd, *len bytes) or NULL when absent
 * or malformed; rt_cl_cache_store writes it atomically (temporary file and
 * rename) and quietly does nothing when it cannot. */
typedef struct {
	uint64_t h[2];
} rt_cl_key;

void rt_cl_key_init(rt_cl_key *k);
/* Adds len and the bytes, so that fields cannot run into each other. */
void rt_cl_key_add(rt_cl_key *k, const void *bytes, size_t len);
int rt_cl_cache_path(const rt_cl_key *k, const char *ext, char *path, size_t len);
unsigned char *rt_cl_cache_load(const rt_cl_key *k, size_t *len);
void rt_cl_cache_store(const rt_cl_key *k, const unsigned char *bin, size_t len);
/* text[0..len) as the cache's file for k with extension ext, atomically;
 * its path into path. 0, or -1 (no cache folder, or it cannot be written). */
int rt_cl_cache_put(const rt_cl_key *k, const char *ext, const char *text, size_t len, char *path,
                    size_t pathlen);

#endif
