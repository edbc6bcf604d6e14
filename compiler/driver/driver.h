/* driver: the ddpmc commands. args.c parses the flags every command shares;
 * each command lives in its own file and returns 0 or -1 (having printed
 * its one-line error). */
#ifndef DDPMC_DRIVER_H
#define DDPMC_DRIVER_H

#include "frontend.h"

#define DRV_MAXSET 32

typedef struct {
	const char *model;              /* MODEL.lua */
	const char *entry, *weights, *inputs, *output, *target, *cpu;
	int json, dot, interp, kernels, report;
	int force;                      /* import: replace -o's file */
	unsigned long long seed;
	fe_limits limits;               /* --lua-steps, --lua-memory */
	fe_option set[DRV_MAXSET];
	char set_keys[DRV_MAXSET][64];  /* set[i].key points here; values into argv */
	int nset;
} drv_args;

int drv_parse_args(int argc, char **argv, drv_args *a);

/* Runs the model script; prints the error and returns NULL on failure. */
ir_graph *drv_load(const drv_args *a);

int drv_inspect(const drv_args *a);
int drv_graph(const drv_args *a);
int drv_run(const drv_args *a);
int drv_compile(const drv_args *a);
int drv_import(const drv_args *a);


#endif
