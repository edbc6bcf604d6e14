/* sandbox: the restricted Lua state model scripts run in, and fe_load.
 *
 * Opened: base (without dofile/loadfile; load accepts text only), package
 * (require searches preload, then lua/ and the script's folder, loading
 * text chunks only; no C modules, no loadlib), table, string, math, utf8,
 * coroutine, and an `os` with clock, time, date. Not opened: io, debug,
 * the rest of os. Touching a missing member of os, io or package says so
 * instead of failing later with "attempt to call a nil value". */
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

/* package.searchers[2], text chunks only. */
static int search_text_module(lua_State *L)
{
	const char *name = luaL_checkstring(L, 1);
	lua_getglobal(L, "package");
	lua_getfield(L, -1, "searchpath");
	lua_pushstring(L, name);
	lua_getfield(L, -3, "path");
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
	"package.loadlib = nil\n"
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
	lua_pushcfunction(L, search_text_module);
	lua_seti(L, -2, 2);
	lua_setfield(L, -2, "searchers");
	lua_pop(L, 1);
}

static int traceback_free_handler(lua_State *L)
{
	if (!lua_isstring(L, 1))
		lua_pushfstring(L, "script raised a %s value", luaL_typename(L, 1));
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

static int run_script(lua_State *L, const char *script, char *err, size_t errlen)
{
	lua_pushcfunction(L, traceback_free_handler);
	int rc = luaL_loadfilex(L, script, "t");
	if (rc == LUA_OK)
		rc = lua_pcall(L, 0, 0, -2);
	if (rc != LUA_OK)
		one_line(err, errlen, lua_tostring(L, -1));
	return rc == LUA_OK ? 0 : -1;
}

ir_graph *fe_load(const char *script, const fe_option *opts, int nopts,
                  char *err, size_t errlen)
{
	char scriptdir[1024];
	lua_State *L = luaL_newstate();
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
		rc = run_script(L, script, err, errlen);
	lua_close(L);
	if (rc < 0) {
		ir_free(g);
		return NULL;
	}
	return g;
}
