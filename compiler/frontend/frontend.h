/* frontend: runs a model script in a sandboxed, embedded Lua 5.4 and
 * returns the graph it built.
 *
 * The script sees the `ddpm` library (lua/ddpm/, found at DDPMC_LUA_DIR or
 * the directory compiled in) and modules beside it through require; it does
 * not see io, os.execute, package.loadlib, binary chunks or the debug library.
 * Options given on the command line (`--set batch=4`) reach the script
 * through ddpm.option(name, default).
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

/* Returns the graph, or NULL with the message in err. */
ir_graph *fe_load(const char *script, const fe_option *opts, int nopts,
                  char *err, size_t errlen);

/* Where the Lua library lives: $DDPMC_LUA_DIR or the compiled-in path. */
const char *fe_lua_dir(void);

#endif
