/* lua_core: private to the frontend. Installs the `ddpm.core` module into a
 * Lua state, bound to graph g; library frames are those under libdir;
 * core.load finds files in scriptdir, then libdir. */
#ifndef DDPMC_LUA_CORE_H
#define DDPMC_LUA_CORE_H

#include <lua.h>

#include "frontend.h"

void fe_core_install(lua_State *L, ir_graph *g, const char *libdir, const char *scriptdir,
                     const fe_option *opts, int nopts);

/* The innermost Lua frame of L outside libdir (else the innermost one in
 * it) as "file:line" in buf, "?" when there is none. Reads the call stack
 * only: it neither uses the Lua stack nor allocates, so that the
 * allocator and hooks may call it. */
const char *fe_where(lua_State *L, const char *libdir, char *buf, size_t len);

/* After the script ran: -1, with "--set NAME=V: SCRIPT reads no option
 * 'NAME'" (and the nearest name read) in err, when an option was given
 * that no core.option call read; else 0. */
int fe_core_unread_option(lua_State *L, const char *script, const fe_option *opts, int nopts,
                          char *err, size_t errlen);

#endif
