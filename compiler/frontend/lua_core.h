/* lua_core: private to the frontend. Installs the `ddpm.core` module into a
 * Lua state, bound to graph g; library frames are those under libdir;
 * core.load finds files in scriptdir, then libdir. */
#ifndef DDPMC_LUA_CORE_H
#define DDPMC_LUA_CORE_H

#include <lua.h>

#include "frontend.h"

void fe_core_install(lua_State *L, ir_graph *g, const char *libdir, const char *scriptdir,
                     const fe_option *opts, int nopts);

#endif
