/* frontend: runs a model script in a sandboxed, embedded Lua 5.4 and
 * returns the graph it built.
 *
 * The script sees the `ddpm` library (lua/ddpm/, found at DDPMC_LUA_DIR or
 * the directory compiled in) and modules beside it through require; it does
 * not see io, os.execute, package.loadlib, binary chunks or the debug library.
 * Options given on the command line (`--set batch=4`) reach the script
 * through ddpm.option(name, default). Scripts read files only in their
 * own folder and the library's, and run under an instruction budget and a
 * memory cap (fe_limits).
 *
 * Errors, from Lua or from a builder's shape rule, come back as one line
 * "file:line: message". */
#ifndef DDPMC_FRONTEND_H
#define DDPMC_FRONTEND_H

#include <stddef.h>

#include "ir.h"

typedef struct {
	const char *key, *value;
} fe_option;

/* What a script may spend: millions of Lua VM instructions, megabytes of
 * Lua memory; 0 takes the default (FE_DEFAULT_*). A script that runs past
 * either stops with "file:line: ..." naming the limit and its flag. */
typedef struct {
	long long msteps, memory_mb;
} fe_limits;

#define FE_DEFAULT_MSTEPS 1000
#define FE_DEFAULT_MEMORY_MB 1024

/* Returns the graph, or NULL with the message in err. A script must
 * define at least one entry, and read every option given (a name it
 * never reads is a typo). lim may be NULL: the defaults. */
ir_graph *fe_load_limited(const char *script, const fe_option *opts, int nopts,
                          const fe_limits *lim, char *err, size_t errlen);

/* fe_load_limited with the default limits. */
ir_graph *fe_load(const char *script, const fe_option *opts, int nopts,
                  char *err, size_t errlen);

/* Where the Lua library lives: $DDPMC_LUA_DIR or the compiled-in path. */
const char *fe_lua_dir(void);

#endif
