/* driver: the ddpmc commands. args.c parses the flags (one table says
 * which commands take each); each command lives in its own file and
 * returns 0 or -1 (having printed its one-line error); main.c dispatches
 * and prints the help and the version. */
#ifndef DDPMC_DRIVER_H
#define DDPMC_DRIVER_H

#include "frontend.h"

#define DRV_MAXSET 32

typedef struct {
	const char *model;              /* MODEL.lua */
	const char *entry, *weights, *inputs, *output, *target, *cpu;
	const char *tuning;             /* compile: the tuning file (NULL: the default) */
	long long tune_seconds;         /* compile --tune: the budget; 0: no tuning; -1: the default */
	int json, dot, interp, kernels, report;
	const char *winograd;           /* compile: tuned|none|2x2|4x4: 3x3 convolutions by Winograd */
	int force;                      /* import: replace -o's file */
	unsigned long long seed;
	fe_limits limits;               /* --lua-steps, --lua-memory */
	fe_option set[DRV_MAXSET];
	char set_keys[DRV_MAXSET][64];  /* set[i].key points here; values into argv */
	int nset;
} drv_args;

#define DRV_TUNE_SECONDS 300     /* --tune's budget when it is given alone */

/* The commands, as bits of the flag table. */
enum { DRV_COMPILE = 1, DRV_INSPECT = 2, DRV_GRAPH = 4, DRV_RUN = 8, DRV_ALL = 15, DRV_IMPORT = 16 };

/* argv[0..argc) (after the command's name) into *a, with the defaults of
 * command cmd's flags; 0, or -1 after a one-line error. */
int drv_parse_args(int argc, char **argv, unsigned cmd, const char *cmdname, drv_args *a);
/* A help line per flag of cmd: name, value, meaning, default. */
void drv_help_flags(unsigned cmd);
/* "compile and run": the names of the commands cmds (main.c). */
const char *drv_command_names(unsigned cmds);
/* "ddpmc 0.1.0, LLVM 19.1.7" into buf (main.c). */
const char *drv_version(char *buf, size_t len);
/* Whether path can be written before any work: its folder exists and is
 * writable, and path is not a folder; 0, or -1 after "ddpmc WHAT PATH: why". */
int drv_check_output(const char *what, const char *path);

/* Runs the model script; prints the error and returns NULL on failure. */
ir_graph *drv_load(const drv_args *a);

int drv_inspect(const drv_args *a);
int drv_graph(const drv_args *a);
int drv_run(const drv_args *a);
int drv_compile(const drv_args *a);
int drv_import(const drv_args *a);


#endif
