/* test_sandbox: what a model script can and cannot reach.
 *
 * Scripts are written to a fresh temporary directory per test, run with
 * fe_load, and must either build a graph or fail with one clear message
 * "script.lua:LINE: ...". Refused: commands (os.execute, io.popen), files
 * (io.open, dofile, loadfile), native code (package.loadlib, C modules),
 * binary chunks (load, require), the debug library, and the unrestricted
 * os reached through require. Allowed: require of ddpm and of modules
 * beside the script, load of text, ddpm.option. Limited: instructions and
 * memory (fe_limits). Required: an entry, and a reader for every option. */
#include "testutil.h"

#include <sys/stat.h>

#include <lauxlib.h>
#include <lua.h>

typedef struct {
	char dir[256];
	char err[2048];
	ir_graph *g;
} fixture;

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof *f);
	assert_non_null(f);
	tu_tmpdir(f->dir, sizeof f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	tu_rmtree(f->dir);
	ir_free(f->g);
	free(f);
	return 0;
}

/* Writes `src` as dir/name and runs it; returns the graph or NULL (with
 * the message in f->err). */
static ir_graph *load(fixture *f, const char *name, const char *src, const fe_option *opts,
                      int nopts)
{
	char path[512];
	tu_write(f->dir, name, src, -1, path, sizeof path);
	ir_free(f->g);
	f->err[0] = 0;
	f->g = fe_load(path, opts, nopts, f->err, sizeof f->err);
	return f->g;
}

/* The script must fail, with a message that starts with "dir/name:LINE: "
 * (unless line is 0) and contains `sub`. */
static void refused(fixture *f, const char *name, const char *src, int line, const char *sub)
{
	char want[600];
	if (load(f, name, src, NULL, 0))
		fail_msg("%s ran, but should fail with \"%s\"", name, sub);
	snprintf(want, sizeof want, "%s/%s:%d: ", f->dir, name, line);
	if (line > 0 && !tu_starts(f->err, want))
		fail_msg("expected a message starting \"%s\", got \"%s\"", want, f->err);
	CONTAINS(f->err, sub);
}

/* The script `src`, followed by lines defining an entry (a script must
 * define one), must run. */
static void succeeds(fixture *f, const char *name, const char *src)
{
	char full[2048];
	snprintf(full, sizeof full, "%s\nlocal ddpm_ = require 'ddpm'\n"
	         "ddpm_.entry('appended', { y = ddpm_.input('appended.x', { 1 }) })\n", src);
	if (!load(f, name, full, NULL, 0))
		fail_msg("%s failed: %s", name, f->err);
}

static void test_no_commands(void **state)
{
	fixture *f = *state;
	refused(f, "exec.lua", "local ddpm = require 'ddpm'\nos.execute('true')\n", 2,
	        "execute is not available in model scripts");
	refused(f, "popen.lua", "\n\nlocal p = io.popen('ls')\n", 3, "popen is not available");
	refused(f, "exit.lua", "os.exit(3)\n", 1, "exit is not available");
	refused(f, "getenv.lua", "local h = os.getenv('HOME')\n", 1, "getenv is not available");
	/* what os keeps */
	succeeds(f, "clock.lua", "assert(os.clock() >= 0 and os.time() > 0 and os.date('%Y'))\n");
}

/* require "os" must not hand back the library that the global os hides. */
static void test_no_os_through_require(void **state)
{
	fixture *f = *state;
	refused(f, "req_os.lua", "local o = require 'os'\no.execute('true')\n", 2,
	        "execute is not available");
	refused(f, "loaded_os.lua", "local o = package.loaded.os\nlocal r = o.remove\n", 2,
	        "remove is not available");
	succeeds(f, "no_io.lua", "assert(package.loaded.io == nil or package.loaded.io == io)\n"
	                         "assert(not pcall(require, 'io') or require('io') == io)\n");
}

static void test_no_files(void **state)
{
	fixture *f = *state;
	char target[512], src[1024];
	snprintf(target, sizeof target, "%s/written.txt", f->dir);
	snprintf(src, sizeof src, "local ddpm = require 'ddpm'\nlocal h = io.open('%s', 'w')\n"
	         "h:write('x')\n", target);
	refused(f, "open.lua", src, 2, "open is not available");
	assert_int_equal(access(target, F_OK), -1);
	refused(f, "write.lua", "io.write('x')\n", 1, "write is not available");
	refused(f, "remove.lua", "\nos.remove('x')\n", 2, "remove is not available");
	refused(f, "dofile.lua", "dofile('other.lua')\n", 1, "dofile");
	refused(f, "loadfile.lua", "local chunk = loadfile('other.lua')\n", 1, "loadfile");
}

static void test_no_native_code(void **state)
{
	fixture *f = *state;
	char path[512];
	refused(f, "loadlib.lua", "local open = package.loadlib('libc.so.6', 'system')\n", 1,
	        "loadlib is not available");
	/* a C module beside the script is never looked for */
	tu_write(f->dir, "cmod.so", "not really a shared object", -1, path, sizeof path);
	refused(f, "req_cmod.lua", "local ddpm = require 'ddpm'\nlocal m = require 'cmod'\n", 2,
	        "module 'cmod' not found");
	refused(f, "cpath.lua", "package.cpath = './?.so'\nlocal m = require 'cmod'\n", 2,
	        "module 'cmod' not found");
	refused(f, "req_debug.lua", "local d = require 'debug'\n", 1, "module 'debug' not found");
	succeeds(f, "no_debug.lua", "assert(debug == nil and package.loaded.debug == nil)\n");
}

static int write_chunk(lua_State *L, const void *p, size_t n, void *ud)
{
	(void)L;
	return fwrite(p, 1, n, ud) == n ? 0 : 1;
}

static void test_no_binary_chunks(void **state)
{
	fixture *f = *state;
	refused(f, "dump.lua", "local s = string.dump(function() return 1 end)\n"
	                       "local fn = assert(load(s))\n", 2, "binary chunk");
	refused(f, "dump_b.lua", "local s = string.dump(function() return 1 end)\n"
	                         "local fn = assert(load(s, 'c', 'b'))\n", 2, "binary chunk");

	/* binmod.lua holds a precompiled chunk; require must refuse it */
	char path[512];
	snprintf(path, sizeof path, "%s/binmod.lua", f->dir);
	lua_State *L = luaL_newstate();
	assert_int_equal(luaL_loadstring(L, "return { answer = 42 }"), LUA_OK);
	FILE *out = fopen(path, "wb");
	assert_non_null(out);
	assert_int_equal(lua_dump(L, write_chunk, out, 1), 0);
	fclose(out);
	lua_close(L);
	/* (the searcher's message carries no script line: not checked here) */
	refused(f, "req_bin.lua", "local ddpm = require 'ddpm'\nlocal m = require 'binmod'\n", 0,
	        "binary chunk");
	CONTAINS(f->err, "binmod");
}

static void test_allowed(void **state)
{
	fixture *f = *state;
	char path[512];
	tu_write(f->dir, "helper.lua", "local M = {}\nfunction M.twice(x) return x * 2 end\nreturn M\n",
	         -1, path, sizeof path);
	ir_graph *g = load(f, "ok.lua",
	                   "local ddpm = require 'ddpm'\n"
	                   "local helper = require 'helper'\n"
	                   "local three = assert(load('return 1 + 2'))()\n"
	                   "local x = ddpm.input('x', { three, 5 })\n"
	                   "ddpm.entry('forward', { y = helper.twice(x) })\n", NULL, 0);
	if (!g)
		fail_msg("ok.lua failed: %s", f->err);
	const ir_entry *e = ir_entry_find(g, "forward");
	assert_non_null(e);
	assert_int_equal(e->noutputs, 1);
	const ir_node *y = &g->nodes[e->outputs[0].node];
	assert_int_equal(y->op, OP_mul);
	ir_shape want = SH(3, 5);
	assert_true(ir_shape_eq(&y->shape, &want));
	/* the node was built in helper.lua, line 2 */
	char where[600];
	snprintf(where, sizeof where, "%s/helper.lua:2", f->dir);
	assert_string_equal(y->where, where);
	assert_int_equal(ir_verify(g), 0);
}

/* ddpm.option(name, default): --set values, converted to default's type. */
static void test_options(void **state)
{
	fixture *f = *state;
	static const char src[] =
		"local ddpm = require 'ddpm'\n"
		"local batch = ddpm.option('batch', 2)\n"
		"local scale = ddpm.option('scale', 1.0)\n"
		"local name = ddpm.option('name', 'x')\n"
		"local wide = ddpm.option('wide', false)\n"
		"local width = ddpm.option('width', 7)\n"
		"assert(math.type(batch) == 'integer')\n"
		"local x = ddpm.input(name, { batch, wide and width * 2 or width })\n"
		"ddpm.entry('forward', { y = x * scale })\n";
	const fe_option opts[] = { { "batch", "4" }, { "scale", "0.5" }, { "name", "img" },
	                           { "wide", "true" } };
	ir_graph *g = load(f, "opts.lua", src, opts, TU_LEN(opts));
	if (!g)
		fail_msg("opts.lua failed: %s", f->err);
	const ir_node *x = &g->nodes[0];
	assert_int_equal(x->op, OP_input);
	assert_string_equal(x->name, "img");
	ir_shape want = SH(4, 14);
	assert_true(ir_shape_eq(&x->shape, &want));
	int saw_half = 0;
	for (int i = 0; i < g->n; i++)
		saw_half |= g->nodes[i].op == OP_fill && g->nodes[i].a.fill.value == 0.5;
	assert_true(saw_half);

	/* defaults when not given */
	g = load(f, "opts.lua", src, NULL, 0);
	if (!g)
		fail_msg("opts.lua failed: %s", f->err);
	assert_string_equal(g->nodes[0].name, "x");
	ir_shape dflt = SH(2, 7);
	assert_true(ir_shape_eq(&g->nodes[0].shape, &dflt));

	const fe_option bad[] = { { "batch", "four" } };
	char want_at[600];
	assert_null(load(f, "opts.lua", src, bad, 1));
	snprintf(want_at, sizeof want_at, "%s/opts.lua:2: option: ", f->dir);
	if (!tu_starts(f->err, want_at))
		fail_msg("expected \"%s...\", got \"%s\"", want_at, f->err);
	CONTAINS(f->err, "batch must be a number", "'four'");
}

static void test_lua_errors(void **state)
{
	fixture *f = *state;
	refused(f, "boom.lua", "local ddpm = require 'ddpm'\nerror('boom')\n", 2, "boom");
	refused(f, "index.lua", "local ddpm = require 'ddpm'\n\nlocal t = nil\nlocal y = t.x\n", 4,
	        "attempt to index a nil value");
	refused(f, "arith.lua", "local ddpm = require 'ddpm'\nlocal x = ddpm.input('x', { 2 })\n"
	                        "local y = x + {}\n", 3, "expected a tensor or a number");
	refused(f, "syntax.lua", "local ddpm = require 'ddpm'\nlocal x = = 1\n", 2, "near '='");
	/* an error raised in a module names the module's line */
	char path[512], want[600];
	tu_write(f->dir, "bad_mod.lua", "local M = {}\nfunction M.f()\n  error('inside')\nend\nreturn M\n",
	         -1, path, sizeof path);
	assert_null(load(f, "calls_mod.lua", "local m = require 'bad_mod'\nm.f()\n", NULL, 0));
	snprintf(want, sizeof want, "%s:3: inside", path);
	assert_string_equal(f->err, want);
	/* a non-string error value is still reported */
	assert_null(load(f, "table_err.lua", "error({ code = 1 })\n", NULL, 0));
	CONTAINS(f->err, "table");
	/* a missing script */
	char missing[512];
	snprintf(missing, sizeof missing, "%s/none.lua", f->dir);
	assert_null(fe_load(missing, NULL, 0, f->err, sizeof f->err));
	CONTAINS(f->err, "none.lua");
}

/* Every error is one line, including those of require (whose Lua message
 * lists every file it tried on lines of its own). */
static void test_errors_one_line(void **state)
{
	fixture *f = *state;
	assert_null(load(f, "req_missing.lua", "local m = require 'no_such_module'\n", NULL, 0));
	CONTAINS(f->err, "no_such_module");
	if (strchr(f->err, '\n'))
		fail_msg("the message has more than one line: %s", f->err);
}

/* Scripts read only their folder and the library's: package.path is
 * fixed, package.searchpath is gone. A file elsewhere must not be read
 * (its first token would appear in the syntax error). */
static void test_no_reading_elsewhere(void **state)
{
	fixture *f = *state;
	char path[512], src[1024];
	tu_write(f->dir, "secret", "TOPSECRET token\n", -1, path, sizeof path);
	assert_int_equal(mkdir(strcat(strcpy(path, f->dir), "/sub"), 0700), 0);
	snprintf(src, sizeof src, "package.path = '%s/?'\nlocal m = require 'secret'\n", f->dir);
	refused(f, "sub/path.lua", src, 2, "module 'secret' not found");
	if (strstr(f->err, "TOPSECRET"))
		fail_msg("the script read a file outside its folder: %s", f->err);
	snprintf(src, sizeof src, "local p = package.searchpath('secret', '%s/?')\n", f->dir);
	refused(f, "sub/probe.lua", src, 1, "searchpath is not available");
}

/* An endless loop stops at the instruction budget, a memory bomb at the
 * cap, each at the script's line and naming the flag that raises it; a
 * pcall around the loop does not get past the budget. */
static void test_limits(void **state)
{
	fixture *f = *state;
	char path[512];
	const fe_limits lim = { .msteps = 1, .memory_mb = 16 };
	static const struct { const char *name, *src, *want; int line; } cases[] = {
		{ "loop.lua", "local n = 0\nwhile true do n = n + 1 end\n",
		  "budget of 1 million Lua instructions", 2 },
		{ "pcall_loop.lua", "local function spin() while true do end end\n"
		                    "while true do pcall(spin) end\n", "--lua-steps", 0 },
		{ "tables.lua", "local t = {}\n\nfor i = 1, 1e9 do t[i] = { i, i } end\n",
		  "more than 16 MB of Lua memory", 3 },
		{ "rep.lua", "local s = ('x'):rep(1 << 30)\n", "more than 16 MB", 1 },
	};
	for (int i = 0; i < TU_LEN(cases); i++) {
		tu_write(f->dir, cases[i].name, cases[i].src, -1, path, sizeof path);
		if (fe_load_limited(path, NULL, 0, &lim, f->err, sizeof f->err))
			fail_msg("%s ran to the end", cases[i].name);
		char want[600];
		snprintf(want, sizeof want, "%s:%d: ", path, cases[i].line);
		if (cases[i].line && !tu_starts(f->err, want))
			fail_msg("expected a message starting \"%s\", got \"%s\"", want, f->err);
		CONTAINS(f->err, cases[i].want, i < 2 ? "--lua-steps M raises it" : "--lua-memory");
	}
}

/* Errors name the script's line: an entry output that is not a tensor, an
 * error value that is not a string, a script whose path is longer than
 * Lua's chunk names (60 bytes). A script must define an entry. */
static void test_error_locations(void **state)
{
	fixture *f = *state;
	refused(f, "not_tensor.lua", "local ddpm = require 'ddpm'\n\nddpm.entry('e', { y = 3 })\n", 3,
	        "entry: output 'y' is a number, not a tensor");
	refused(f, "error_table.lua", "local ddpm = require 'ddpm'\nerror({})\n", 2,
	        "error object is a table value");
	char dir[512];
	snprintf(dir, sizeof dir, "%s/a_folder_whose_name_is_long_enough_to_be_shortened_by_lua", f->dir);
	assert_int_equal(mkdir(dir, 0700), 0);
	refused(f, "a_folder_whose_name_is_long_enough_to_be_shortened_by_lua/long.lua",
	        "local ddpm = require 'ddpm'\nerror('boom')\n", 2, "boom");
	refused(f, "a_folder_whose_name_is_long_enough_to_be_shortened_by_lua/syntax.lua",
	        "local ddpm = require 'ddpm'\nlocal = 1\n", 2, "near '='");
	refused(f, "no_entry.lua", "local ddpm = require 'ddpm'\nlocal x = ddpm.input('x', { 1 })\n", 0,
	        "defines no entry");
	assert_null(fe_load("/dev/null", NULL, 0, f->err, sizeof f->err));
	CONTAINS(f->err, "/dev/null: the script defines no entry");
}

/* A --set name that the script never reads is refused, with the nearest
 * name it does read. */
static void test_unread_option(void **state)
{
	fixture *f = *state;
	static const char src[] = "local ddpm = require 'ddpm'\n"
	                          "local w = ddpm.option('width', 4)\n"
	                          "ddpm.entry('e', { y = ddpm.input('x', { w }) })\n";
	const fe_option typo[] = { { "width", "8" }, { "widht", "16" } };
	assert_null(load(f, "typo.lua", src, typo, TU_LEN(typo)));
	CONTAINS(f->err, "--set widht=16", "reads no option 'widht'", "did you mean 'width'?");
	const fe_option far[] = { { "channels", "3" } };
	assert_null(load(f, "typo.lua", src, far, TU_LEN(far)));
	CONTAINS(f->err, "reads no option 'channels'");
	if (strstr(f->err, "did you mean"))
		fail_msg("suggested a name far from 'channels': %s", f->err);
	assert_non_null(load(f, "typo.lua", src, typo, 1));
}

/* Program metadata reaches the compiled program's descriptor only as one
 * JSON value of a known key, of that key's type and range, and in
 * agreement with the graph's image inputs. */
static void test_meta_checked(void **state)
{
	fixture *f = *state;
	static const char entry[] = "local ddpm = require 'ddpm'\n"
	                            "ddpm.entry('e', { y = ddpm.input('x', { 4, 1, 2, 2 }) })\n";
	static const struct { const char *src, *want; } cases[] = {
		{ "require('ddpm.core').meta('batch', '4}, \"entries\": [{\"name\": \"e\"')\n",
		  "meta: 'batch' is not one JSON value" },
		{ "ddpm.meta('batch', -1)\n", "meta: 'batch' must be an integer from 1 to 1048576, got -1" },
		{ "ddpm.meta('batch', 2.5)\n", "'batch' must be an integer" },
		{ "ddpm.meta('image', { 1, 28 })\n", "meta: 'image' must be {C, H, W}" },
		{ "ddpm.meta('image', { 1, 0, 28 })\n", "'image' must be {C, H, W}" },
		{ "ddpm.meta('schedule', 'quadratic')\n", "'schedule' must be one of: linear cosine" },
		{ "ddpm.meta('clip_sample', 1)\n", "'clip_sample' must be true or false" },
		{ "ddpm.meta('optimizer', 3)\n", "'optimizer' must be a table" },
		{ "ddpm.meta('arena_bytes', 512)\n", "meta: unknown key 'arena_bytes'" },
		{ "ddpm.meta('image', { 1, 28, 28 })\n", "meta: image and batch say the images are "
		  "(-1, 1, 28, 28) (-1: not given), but input 'x'" },
		{ "ddpm.meta('batch', 8)\n", "input 'x'" },
	};
	char src[1024];
	for (int i = 0; i < TU_LEN(cases); i++) {
		snprintf(src, sizeof src, "%s%s", entry, cases[i].src);
		refused(f, "meta.lua", src, 3, cases[i].want);
	}
	snprintf(src, sizeof src, "%sddpm.meta('image', { 1, 2, 2 })\nddpm.meta('batch', 4)\n"
	         "ddpm.meta('schedule', 'cosine')\nddpm.meta('clip_sample_range', 0.5)\n", entry);
	succeeds(f, "meta_ok.lua", src);
	assert_string_equal(ir_get_meta(f->g, "image"), "[1, 2, 2]");
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_no_commands),
		T(test_no_os_through_require),
		T(test_no_files),
		T(test_no_native_code),
		T(test_no_binary_chunks),
		T(test_allowed),
		T(test_options),
		T(test_lua_errors),
		T(test_errors_one_line),
		T(test_no_reading_elsewhere),
		T(test_limits),
		T(test_error_locations),
		T(test_unread_option),
		T(test_meta_checked),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
