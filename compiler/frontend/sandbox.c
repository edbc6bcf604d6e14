/* sandbox: the restricted Lua state model scripts run in, and fe_load.
 *
 * Opened: base (without dofile/loadfile; load accepts text only), package
 * (require searches preload, then lua/ and the script's folder, loading
 * text chunks only; no C modules, no loadlib, no searchpath; the folders
 * are fixed when the state is made, so setting package.path changes
 * nothing), table, string, math, utf8, coroutine, and an `os` with clock,
 * time, date. Not opened: io, debug, the rest of os. Touching a missing
 * member of os, io or package says so instead of failing later with
 * "attempt to call a nil value".
 *
 * Limits (fe_limits): the allocator refuses to grow the state past the
 * memory cap, and a count hook stops the script once it has run its
 * instruction budget. Either records where the script was ("file:line",
 * its innermost frame outside the library) and the message fe_load
 * reports, whatever the script does with the error it gets. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "lua_core.h"

#ifndef DDPMC_LUA_DIR
#define DDPMC_LUA_DIR "lua"
#endif

const char *fe_lua_dir(void)
{
	const char *dir = getenv("DDPMC_LUA_DIR");
	return dir && *dir ? dir : DDPMC_LUA_DIR;
}

/* load(chunk, name, mode, env) with mode forced to text. */
static int text_only_load(lua_State *L)
{
	int has_env = lua_gettop(L) >= 4;
	lua_settop(L, 4);
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_pushvalue(L, 1);
	lua_pushvalue(L, 2);
	lua_pushliteral(L, "t");
	if (has_env)
		lua_pushvalue(L, 4);
	lua_call(L, has_env ? 4 : 3, LUA_MULTRET);
	return lua_gettop(L) - 4;
}

/* package.searchers[2], text chunks only, on the path fixed when the
 * state was made (upvalue 2) with the original package.searchpath
 * (upvalue 1): scripts cannot point it elsewhere. */
static int search_text_module(lua_State *L)
{
	const char *name = luaL_checkstring(L, 1);
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_pushstring(L, name);
	lua_pushvalue(L, lua_upvalueindex(2));
	lua_call(L, 2, 2);
	if (lua_isnil(L, -2))
		return 1;                       /* the error message */
	const char *path = lua_tostring(L, -2);
	if (luaL_loadfilex(L, path, "t") != LUA_OK)
		return luaL_error(L, "error loading module '%s' from '%s':\n\t%s",
		                  name, path, lua_tostring(L, -1));
	lua_pushstring(L, path);
	return 2;
}

/* Lua run after the libraries open: prunes what scripts must not reach. */
static const char PRELUDE[] =
	"local function closed(lib)\n"
	"  return setmetatable(lib, { __index = function(_, k)\n"
	"    error(k .. ' is not available in model scripts', 2) end })\n"
	"end\n"
	"local os_ = os\n"
	"os = closed({ clock = os_.clock, time = os_.time, date = os_.date })\n"
	"io = closed({})\n"
	"package.loaded.os, package.loaded.io = os, io\n"
	"package.loadlib, package.searchpath = nil, nil\n"
	"package.cpath = ''\n"
	"closed(package)\n"
	"dofile, loadfile = nil, nil\n";

static void open_safe_libs(lua_State *L)
{
	static const luaL_Reg libs[] = {
		{ LUA_GNAME, luaopen_base }, { LUA_LOADLIBNAME, luaopen_package },
		{ LUA_TABLIBNAME, luaopen_table }, { LUA_STRLIBNAME, luaopen_string },
		{ LUA_MATHLIBNAME, luaopen_math }, { LUA_UTF8LIBNAME, luaopen_utf8 },
		{ LUA_COLIBNAME, luaopen_coroutine }, { LUA_OSLIBNAME, luaopen_os },
		{ NULL, NULL } };
	for (const luaL_Reg *lib = libs; lib->func; lib++) {
		luaL_requiref(L, lib->name, lib->func, 1);
		lua_pop(L, 1);
	}
}

static void restrict_loading(lua_State *L, const char *libdir, const char *scriptdir)
{
	lua_getglobal(L, "load");
	lua_pushcclosure(L, text_only_load, 1);
	lua_setglobal(L, "load");
	lua_getglobal(L, "package");
	lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;%s/?.lua", libdir, libdir, scriptdir);
	lua_setfield(L, -2, "path");
	lua_createtable(L, 2, 0);                 /* searchers: preload, text files */
	lua_getfield(L, -2, "searchers");
	lua_geti(L, -1, 1);
	lua_seti(L, -3, 1);
	lua_pop(L, 1);
	lua_getfield(L, -2, "searchpath");
	lua_getfield(L, -3, "path");
	lua_pushcclosure(L, search_text_module, 2);
	lua_seti(L, -2, 2);
	lua_setfield(L, -2, "searchers");
	lua_pop(L, 1);
}

/* The state's limits and what the script has spent (the allocator's ud). */
typedef struct {
	lua_State *L;
	const char *libdir;
	size_t used, cap;               /* bytes the state holds; the memory cap */
	long long steps, msteps;        /* instructions left; the budget in millions */
	char stopped[512];              /* why a limit stopped the script ("" if none) */
} sandbox;

/* Instructions between two calls of the count hook. */
enum { HOOK_EVERY = 10000 };

/* Records, once, that a limit stopped the script where it was. */
static void stop(sandbox *sb, const char *fmt, long long amount, const char *flag)
{
	char where[300], what[128];
	if (sb->stopped[0])
		return;
	fe_where(sb->L, sb->libdir, where, sizeof where);
	snprintf(what, sizeof what, fmt, amount);
	snprintf(sb->stopped, sizeof sb->stopped, "%s: %s; %s raises it", where, what, flag);
}

/* lua_Alloc that keeps the state under sb->cap bytes: past it, an
 * allocation fails and Lua raises a memory error. */
static void *capped_alloc(void *ud, void *p, size_t osize, size_t nsize)
{
	sandbox *sb = ud;
	size_t old = p ? osize : 0;
	if (nsize == 0) {
		free(p);
		sb->used -= old;
		return NULL;
	}
	if (nsize > old && sb->used - old + nsize > sb->cap) {
		if (sb->L)
			stop(sb, "the script needs more than %lld MB of Lua memory",
			     (long long)(sb->cap >> 20), "--lua-memory MB");
		return NULL;
	}
	void *q = realloc(p, nsize);
	if (q)
		sb->used = sb->used - old + nsize;
	return q;
}

/* Count hook: charges HOOK_EVERY instructions; past the budget it raises
 * at every instruction, so that a pcall in the script cannot go on. */
static void count_hook(lua_State *L, lua_Debug *ar)
{
	(void)ar;
	void *ud;
	lua_getallocf(L, &ud);
	sandbox *sb = ud;
	if ((sb->steps -= HOOK_EVERY) > 0)
		return;
	stop(sb, "the script ran past its budget of %lld million Lua instructions (an endless loop?)",
	     sb->msteps, "--lua-steps M");
	lua_sethook(L, count_hook, LUA_MASKCOUNT, 1);
	lua_pushstring(L, sb->stopped);
	lua_error(L);
}

static int panic(lua_State *L)
{
	fprintf(stderr, "ddpmc: Lua panic: %s\n", lua_tostring(L, -1));
	return 0;
}

/* A Lua state under lim (defaults for its zero members). */
static lua_State *new_state(sandbox *sb, const fe_limits *lim, const char *libdir)
{
	long long mb = lim && lim->memory_mb > 0 ? lim->memory_mb : FE_DEFAULT_MEMORY_MB;
	*sb = (sandbox){ .libdir = libdir, .cap = (size_t)mb << 20 };
	sb->msteps = lim && lim->msteps > 0 ? lim->msteps : FE_DEFAULT_MSTEPS;
	sb->steps = sb->msteps * 1000000;
	lua_State *L = lua_newstate(capped_alloc, sb);
	if (!L)
		return NULL;
	sb->L = L;
	lua_atpanic(L, panic);
	lua_sethook(L, count_hook, LUA_MASKCOUNT, HOOK_EVERY);
	return L;
}

/* Lua shortens long chunk names in messages to "...TAIL". When msg starts
 * with such a location and TAIL ends `full`, pushes msg with `full` in its
 * place and returns 1; else 0. */
static int unshorten(lua_State *L, const char *msg, const char *full)
{
	size_t n = strlen(full);
	if (strncmp(msg, "...", 3) != 0)
		return 0;
	for (size_t at = 0; at < n; at++)
		if (strncmp(msg + 3, full + at, n - at) == 0 && msg[3 + n - at] == ':') {
			lua_pushfstring(L, "%s%s", full, msg + 3 + n - at);
			return 1;
		}
	return 0;
}

/* The message handler: a string error gets its location in full; any other
 * value becomes "file:line: error object is a T value" at the script's
 * innermost frame. */
static int message_handler(lua_State *L)
{
	lua_Debug ar;
	if (!lua_isstring(L, 1)) {
		char where[400];
		void *ud;
		lua_getallocf(L, &ud);
		fe_where(L, ((sandbox *)ud)->libdir, where, sizeof where);
		lua_pushfstring(L, "%s: error object is a %s value", where, luaL_typename(L, 1));
		return 1;
	}
	const char *msg = lua_tostring(L, 1);
	for (int level = 1; lua_getstack(L, level, &ar); level++) {
		lua_getinfo(L, "S", &ar);
		if (ar.source[0] == '@' && unshorten(L, msg, ar.source + 1))
			return 1;
	}
	return 1;
}

/* The folder of `script`, for require of modules beside it. */
static void dir_of(const char *script, char *dir, size_t len)
{
	const char *slash = strrchr(script, '/');
	if (!slash)
		snprintf(dir, len, ".");
	else
		snprintf(dir, len, "%.*s", (int)(slash - script), script);
}

/* Copies msg with newlines and tabs folded to "; ": errors are one line. */
static void one_line(char *err, size_t len, const char *msg)
{
	size_t at = 0;
	for (const char *c = msg; *c && at + 3 < len; c++) {
		if (*c == '\n' || *c == '\t') {
			if (at >= 2 && !(err[at - 2] == ';' && err[at - 1] == ' '))
				err[at++] = ';', err[at++] = ' ';
		} else
			err[at++] = *c;
	}
	err[at] = 0;
}

/* Runs the script; 0, or -1 with the one-line message in err. */
static int run_script(lua_State *L, sandbox *sb, const char *script, char *err, size_t errlen)
{
	lua_pushcfunction(L, message_handler);
	int rc = luaL_loadfilex(L, script, "t");
	if (rc == LUA_OK)
		rc = lua_pcall(L, 0, 0, -2);
	else if (unshorten(L, lua_tostring(L, -1), script))
		lua_replace(L, -2);
	if (rc != LUA_OK)
		one_line(err, errlen, sb->stopped[0] ? sb->stopped : lua_tostring(L, -1));
	return rc == LUA_OK ? 0 : -1;
}

/* What fe_load asks of a script that ran: an entry, metadata that agrees
 * with the graph, and no unread option. */
static int check_result(lua_State *L, ir_graph *g, const char *script, const fe_option *opts,
                        int nopts, char *err, size_t errlen)
{
	if (g->nentries == 0) {
		snprintf(err, errlen, "%s: the script defines no entry (ddpm.entry, or a builder such "
		         "as ddpm.program.diffusion)", script);
		return -1;
	}
	if (ir_meta_verify(g) < 0) {
		snprintf(err, errlen, "%s", g->err);
		return -1;
	}
	return fe_core_unread_option(L, script, opts, nopts, err, errlen);
}

ir_graph *fe_load_limited(const char *script, const fe_option *opts, int nopts,
                          const fe_limits *lim, char *err, size_t errlen)
{
	char scriptdir[1024];
	sandbox sb;
	lua_State *L = new_state(&sb, lim, fe_lua_dir());
	if (!L) {
		snprintf(err, errlen, "%s: cannot create a Lua state", script);
		return NULL;
	}
	ir_graph *g = ir_new();
	dir_of(script, scriptdir, sizeof scriptdir);
	open_safe_libs(L);
	restrict_loading(L, fe_lua_dir(), scriptdir);
	fe_core_install(L, g, fe_lua_dir(), scriptdir, opts, nopts);
	int rc = luaL_dostring(L, PRELUDE) == LUA_OK ? 0 : -1;
	if (rc < 0)
		snprintf(err, errlen, "sandbox prelude: %s", lua_tostring(L, -1));
	else
		rc = run_script(L, &sb, script, err, errlen);
	if (rc == 0)
		rc = check_result(L, g, script, opts, nopts, err, errlen);
	lua_close(L);
	if (rc < 0) {
		ir_free(g);
		return NULL;
	}
	return g;
}

ir_graph *fe_load(const char *script, const fe_option *opts, int nopts,
                  char *err, size_t errlen)
{
	return fe_load_limited(script, opts, nopts, NULL, err, errlen);
}
