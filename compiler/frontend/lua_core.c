/* lua_core: the `ddpm.core` module, the only door from Lua into the graph.
 *
 * Nodes cross the boundary as integer ids; lua/ddpm/tensor.lua wraps them in
 * tensor objects with operators. Dims are 0-based here (as in torch and in
 * the IR); the Lua library normalises negative dims before calling.
 *
 *   core.input(name, shape, dtype)                       -> id
 *   core.param(name, shape, dtype, init, a, b, trainable) -> id   init: "zeros"|"ones"|"uniform"|"normal",
 *                                                               or "copy" with a = the source param's id
 *   core.fill(value, shape, dtype)                       -> id
 *   core.constant(values, shape, dtype)                  -> id
 *   core.op(name, {ids}, attrs)                          -> id   attrs: see read_attrs,
 *                                                               plus axis, scale, stream
 *   core.shape(id) -> {dims};  core.dtype(id) -> "f32"...; core.where(id) -> "file:line"
 *   core.entry(name, {name = id}, {param = id})
 *   core.grad(y, {wrt ids}, seed or nil) -> {grad ids}   reverse-mode autodiff
 *   core.option(name) -> string or nil
 *   core.meta(key, json)              program metadata for the compiled program
 *   core.fail(op, message)            raises "file:line: op: message" at the user's line
 *   core.load(file) -> {name = id}    a safetensors file's tensors as f32 constants
 *                                     (weights fixed at compile time), found beside
 *                                     the script, else in the library folder
 *
 * Every node records the file:line of the innermost caller that is not in
 * the ddpm library itself, so a shape error names the model script's line. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>

#include "autodiff.h"
#include "lua_core.h"
#include "safetensors.h"

static const char *const KEY_GRAPH = "ddpmc.graph";
static const char *const KEY_LIBDIR = "ddpmc.libdir";
static const char *const KEY_OPTIONS = "ddpmc.options";
static const char *const KEY_SCRIPTDIR = "ddpmc.scriptdir";
static const char *const KEY_READ = "ddpmc.options_read";

static ir_graph *graph_of(lua_State *L)
{
	lua_getfield(L, LUA_REGISTRYINDEX, KEY_GRAPH);
	ir_graph *g = lua_touserdata(L, -1);
	lua_pop(L, 1);
	return g;
}

/* Whether chunk source `src` (without its '@') lies in folder lib. */
static int in_folder(const char *src, const char *lib)
{
	size_t n = strlen(lib);
	return n && strncmp(src, lib, n) == 0 && (src[n] == '/' || lib[n - 1] == '/');
}

const char *fe_where(lua_State *L, const char *libdir, char *buf, size_t len)
{
	lua_Debug ar;
	int found = 0;
	snprintf(buf, len, "?");
	for (int level = 0; lua_getstack(L, level, &ar); level++) {
		lua_getinfo(L, "Sl", &ar);
		if (ar.currentline <= 0 || ar.source[0] != '@')
			continue;
		int lib = libdir && in_folder(ar.source + 1, libdir);
		if (!found || !lib)
			snprintf(buf, len, "%s:%d", ar.source + 1, ar.currentline);
		found = 1;
		if (!lib)
			break;
	}
	return buf;
}

/* The innermost Lua frame outside the library directory, as "file:line". */
static const char *user_where(lua_State *L, char *buf, size_t len)
{
	lua_getfield(L, LUA_REGISTRYINDEX, KEY_LIBDIR);
	fe_where(L, lua_tostring(L, -1), buf, len);
	lua_pop(L, 1);
	return buf;
}

/* Raises the graph's error message as is (it already carries file:line). */
static int raise_graph_error(lua_State *L, ir_graph *g)
{
	lua_pushstring(L, g->err);
	return lua_error(L);
}

static int push_id(lua_State *L, ir_graph *g, int id)
{
	if (id < 0)
		return raise_graph_error(L, g);
	lua_pushinteger(L, id);
	return 1;
}

static rt_dtype check_dtype(lua_State *L, int arg)
{
	static const char *const names[] = { "f32", "f16", "bf16", "i32", NULL };
	static const rt_dtype types[] = { RT_F32, RT_F16, RT_BF16, RT_I32 };
	return types[luaL_checkoption(L, arg, "f32", names)];
}

static const char *dtype_lua_name(rt_dtype dt)
{
	switch (dt) {
	case RT_F32: return "f32";
	case RT_F16: return "f16";
	case RT_BF16: return "bf16";
	case RT_I32: return "i32";
	default: return rt_dtype_name(dt);
	}
}

/* Reads a Lua list of integers into out[], at most max of them. */
static int read_ints(lua_State *L, int idx, int64_t *out, int max, const char *what)
{
	luaL_checktype(L, idx, LUA_TTABLE);
	int n = (int)luaL_len(L, idx);
	if (n > max)
		luaL_error(L, "%s has %d entries, at most %d allowed", what, n, max);
	for (int i = 0; i < n; i++) {
		lua_geti(L, idx, i + 1);
		int ok;
		out[i] = lua_tointegerx(L, -1, &ok);
		if (!ok)
			luaL_error(L, "%s[%d] is not an integer", what, i + 1);
		lua_pop(L, 1);
	}
	return n;
}

static ir_shape check_shape(lua_State *L, int idx)
{
	ir_shape s;
	s.rank = read_ints(L, idx, s.d, IR_MAXDIM, "shape");
	return s;
}

static int core_input(lua_State *L)
{
	char where[256];
	const char *name = luaL_checkstring(L, 1);
	ir_shape s = check_shape(L, 2);
	ir_graph *g = graph_of(L);
	return push_id(L, g, ir_input(g, name, check_dtype(L, 3), &s, user_where(L, where, sizeof where)));
}

static int core_param(lua_State *L)
{
	static const char *const inits[] = { "zeros", "ones", "uniform", "normal", "copy", NULL };
	char where[256];
	const char *name = luaL_checkstring(L, 1);
	ir_shape s = check_shape(L, 2);
	rt_dtype dt = check_dtype(L, 3);
	ir_init init = { (ir_initkind)luaL_checkoption(L, 4, "zeros", inits), 0, 0, -1 };
	if (init.kind == INIT_COPY)
		init.from = (int)luaL_checkinteger(L, 5);
	else
		init.a = luaL_optnumber(L, 5, 0), init.b = luaL_optnumber(L, 6, 0);
	int trainable = lua_isnoneornil(L, 7) ? 1 : lua_toboolean(L, 7);
	ir_graph *g = graph_of(L);
	return push_id(L, g, ir_param(g, name, dt, &s, init, trainable,
	                              user_where(L, where, sizeof where)));
}

static int core_fill(lua_State *L)
{
	char where[256];
	double v = luaL_checknumber(L, 1);
	ir_shape s = check_shape(L, 2);
	ir_graph *g = graph_of(L);
	return push_id(L, g, ir_fill(g, v, check_dtype(L, 3), &s, user_where(L, where, sizeof where)));
}

static int core_constant(lua_State *L)
{
	char where[256];
	luaL_checktype(L, 1, LUA_TTABLE);
	ir_shape s = check_shape(L, 2);
	rt_dtype dt = check_dtype(L, 3);
	int64_t n = ir_numel(&s);
	if (luaL_len(L, 1) != n)
		return luaL_error(L, "constant: %d values for %d elements", (int)luaL_len(L, 1), (int)n);
	double *v = lua_newuserdatauv(L, (size_t)(n ? n : 1) * sizeof *v, 0);
	for (int64_t i = 0; i < n; i++) {
		lua_geti(L, 1, i + 1);
		v[i] = luaL_checknumber(L, -1);
		lua_pop(L, 1);
	}
	ir_graph *g = graph_of(L);
	return push_id(L, g, ir_constant(g, v, dt, &s, user_where(L, where, sizeof where)));
}

/* Reads optional integer list field `key` of the attrs table at idx. */
static int opt_ints(lua_State *L, int idx, const char *key, int64_t *out, int max)
{
	int n = -1;
	if (lua_getfield(L, idx, key) != LUA_TNIL)
		n = read_ints(L, lua_gettop(L), out, max, key);
	lua_pop(L, 1);
	return n;
}

static int64_t opt_int(lua_State *L, int idx, const char *key, int64_t dflt)
{
	lua_getfield(L, idx, key);
	int64_t v = lua_isnil(L, -1) ? dflt : luaL_checkinteger(L, -1);
	lua_pop(L, 1);
	return v;
}

static double opt_num(lua_State *L, int idx, const char *key, double dflt)
{
	lua_getfield(L, idx, key);
	double v = lua_isnil(L, -1) ? dflt : luaL_checknumber(L, -1);
	lua_pop(L, 1);
	return v;
}

/* attrs: perm, shape, start, step, axis, lo, hi, value, scale,
 * stride {sy, sx}, pad {top, bottom, left, right}, dtype. */
static void read_attrs(lua_State *L, int idx, ir_attrs *a, ir_shape *shape, int *has_shape)
{
	int64_t v[IR_MAXDIM];
	int n = opt_ints(L, idx, "perm", v, IR_MAXDIM);
	for (int i = 0; i < n; i++)
		a->permute.perm[i] = (int)v[i];
	shape->rank = opt_ints(L, idx, "shape", shape->d, IR_MAXDIM);
	*has_shape = shape->rank >= 0;
	if (opt_ints(L, idx, "start", a->slice.start, IR_MAXDIM) >= 0)
		opt_ints(L, idx, "step", a->slice.step, IR_MAXDIM);
	if (opt_ints(L, idx, "lo", a->pad.lo, IR_MAXDIM) >= 0) {
		opt_ints(L, idx, "hi", a->pad.hi, IR_MAXDIM);
		a->pad.value = opt_num(L, idx, "value", 0);
	}
	if (opt_ints(L, idx, "stride", v, 2) == 2)
		a->conv.stride[0] = (int)v[0], a->conv.stride[1] = (int)v[1];
	if (opt_ints(L, idx, "pad", v, 4) == 4)
		for (int i = 0; i < 4; i++)
			a->conv.pad[i] = (int)v[i];
}

/* The reduce axes (attrs.axes) as a mask; -1 with g->err set for an
 * axis that is no dimension (the mask has a bit per dim, 0..IR_MAXDIM-1). */
static int read_axes(lua_State *L, int idx, ir_graph *g, const char *where, const char *op,
                     unsigned *mask)
{
	int64_t v[IR_MAXDIM];
	int n = opt_ints(L, idx, "axes", v, IR_MAXDIM);
	for (int i = 0; i < n; i++) {
		if (v[i] < 0 || v[i] >= IR_MAXDIM)
			return ir_fail(g, where, op, "axis %lld is not a dimension (0..%d)", (long long)v[i],
			               IR_MAXDIM - 1);
		*mask |= 1u << v[i];
	}
	return 0;
}

static int core_op(lua_State *L)
{
	char where[256];
	ir_opcode op;
	const char *name = luaL_checkstring(L, 1);
	if (ir_opcode_parse(name, &op) < 0)
		return luaL_error(L, "core.op: unknown op '%s'", name);
	luaL_checktype(L, 2, LUA_TTABLE);
	int nin = (int)luaL_len(L, 2);          /* a concat may join many: every gradient */
	int64_t *ids = lua_newuserdatauv(L, (size_t)(nin + 1) * sizeof *ids, 0);
	int *in = lua_newuserdatauv(L, (size_t)(nin + 1) * sizeof *in, 0);
	read_ints(L, 2, ids, nin, "inputs");
	for (int i = 0; i < nin; i++)
		in[i] = (int)ids[i];
	ir_attrs a = { 0 };
	ir_shape shape = { 0 };
	int has_shape = 0;
	rt_dtype dt = RT_F32;
	ir_graph *g = graph_of(L);
	user_where(L, where, sizeof where);
	if (lua_istable(L, 3)) {
		if (read_axes(L, 3, g, where, name, &a.reduce.axes) < 0)
			return raise_graph_error(L, g);
		read_attrs(L, 3, &a, &shape, &has_shape);
		if (op == OP_concat)
			a.concat.axis = (int)opt_int(L, 3, "axis", 0);
		if (op == OP_upsample2d)
			a.upsample.scale = (int)opt_int(L, 3, "scale", 2);
		if (ir_ops[op].flags & RANDOM)
			a.rng.stream = (int)opt_int(L, 3, "stream", 0);
		if (lua_getfield(L, 3, "dtype") != LUA_TNIL)
			dt = check_dtype(L, lua_gettop(L));
		lua_pop(L, 1);
	}
	return push_id(L, g, ir_add(g, op, in, nin, &a, has_shape ? &shape : NULL, dt, where));
}

static const ir_node *check_node(lua_State *L, int arg)
{
	ir_graph *g = graph_of(L);
	lua_Integer id = luaL_checkinteger(L, arg);
	luaL_argcheck(L, id >= 0 && id < g->n, arg, "not a node id");
	return &g->nodes[id];
}

static int core_shape(lua_State *L)
{
	const ir_node *n = check_node(L, 1);
	lua_createtable(L, n->shape.rank, 0);
	for (int i = 0; i < n->shape.rank; i++) {
		lua_pushinteger(L, n->shape.d[i]);
		lua_seti(L, -2, i + 1);
	}
	return 1;
}

static int core_dtype(lua_State *L)
{
	lua_pushstring(L, dtype_lua_name(check_node(L, 1)->dtype));
	return 1;
}

static int core_where(lua_State *L)
{
	lua_pushstring(L, check_node(L, 1)->where);
	return 1;
}

/* Reads {name = id, ...} into bindings (names stay on the Lua stack's table). */
static int read_bindings(lua_State *L, int idx, ir_binding *b, int max)
{
	int n = 0;
	if (lua_isnoneornil(L, idx))
		return 0;
	luaL_checktype(L, idx, LUA_TTABLE);
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		if (n == max)
			luaL_error(L, "entry: more than %d bindings", max);
		b[n].name = luaL_checkstring(L, -2);
		b[n].node = (int)luaL_checkinteger(L, -1);
		n++;
		lua_pop(L, 1);
	}
	return n;
}

static int core_entry(lua_State *L)
{
	enum { MAXB = 4096 };
	const char *name = luaL_checkstring(L, 1);
	ir_binding *outs = lua_newuserdatauv(L, 2 * MAXB * sizeof *outs, 0);
	int nout = read_bindings(L, 2, outs, MAXB);
	int nupd = read_bindings(L, 3, outs + MAXB, MAXB);
	ir_graph *g = graph_of(L);
	char where[256];
	if (ir_entry_add(g, name, outs, nout, outs + MAXB, nupd, user_where(L, where, sizeof where)) < 0)
		return raise_graph_error(L, g);
	return 0;
}

static int core_grad(lua_State *L)
{
	ir_graph *g = graph_of(L);
	int y = (int)(check_node(L, 1) - g->nodes);
	luaL_checktype(L, 2, LUA_TTABLE);
	int n = (int)luaL_len(L, 2);
	int *ids = lua_newuserdatauv(L, 2 * (size_t)(n ? n : 1) * sizeof *ids, 0);
	for (int i = 0; i < n; i++) {
		lua_geti(L, 2, i + 1);
		ids[i] = (int)(check_node(L, -1) - g->nodes);
		lua_pop(L, 1);
	}
	int seed = lua_isnoneornil(L, 3) ? -1 : (int)(check_node(L, 3) - g->nodes);
	if (ad_grad(g, y, seed, ids, n, ids + n) < 0)
		return raise_graph_error(L, g);
	lua_createtable(L, n, 0);
	for (int i = 0; i < n; i++) {
		lua_pushinteger(L, ids[n + i]);
		lua_seti(L, -2, i + 1);
	}
	return 1;
}

/* core.option(name): the --set value, or nil; the name is remembered as
 * read, for fe_core_unread_option. */
static int core_option(lua_State *L)
{
	const char *name = luaL_checkstring(L, 1);
	lua_getfield(L, LUA_REGISTRYINDEX, KEY_READ);
	lua_pushboolean(L, 1);
	lua_setfield(L, -2, name);
	lua_getfield(L, LUA_REGISTRYINDEX, KEY_OPTIONS);
	lua_getfield(L, -1, name);
	return 1;
}

static int core_meta(lua_State *L)
{
	char where[256];
	ir_graph *g = graph_of(L);
	if (ir_set_meta(g, luaL_checkstring(L, 1), luaL_checkstring(L, 2),
	                user_where(L, where, sizeof where)) < 0)
		return raise_graph_error(L, g);
	return 0;
}

static int core_fail(lua_State *L)
{
	char where[256];
	const char *op = luaL_checkstring(L, 1);
	const char *msg = luaL_checkstring(L, 2);
	lua_pushfstring(L, "%s: %s: %s", user_where(L, where, sizeof where), op, msg);
	return lua_error(L);
}

/* The path of `file` in the folder at registry key `key`, when it exists. */
static int find_in(lua_State *L, const char *key, const char *file, char *path, size_t len)
{
	lua_getfield(L, LUA_REGISTRYINDEX, key);
	const char *dir = lua_tostring(L, -1);
	int found = dir && snprintf(path, len, "%s/%s", dir, file) < (int)len &&
	            access(path, R_OK) == 0;
	lua_pop(L, 1);
	return found;
}

/* core.load(file): every tensor of a safetensors file as an f32 constant
 * node, by name. The file is a plain relative name (no "..", not
 * absolute) looked up beside the script, then in the library folder:
 * scripts reach no other files. */
static int core_load(lua_State *L)
{
	char where[256], path[4096], err[1024];
	const char *file = luaL_checkstring(L, 1);
	user_where(L, where, sizeof where);
	if (file[0] == '/' || strstr(file, ".."))
		return luaL_error(L, "%s: load: '%s': give a name relative to the script's folder "
		                  "or the library's, without '..'", where, file);
	if (!find_in(L, KEY_SCRIPTDIR, file, path, sizeof path) &&
	    !find_in(L, KEY_LIBDIR, file, path, sizeof path))
		return luaL_error(L, "%s: load: '%s' is neither beside the script nor in the library "
		                  "folder", where, file);
	rt_tensorset set = { 0 };
	if (rt_st_read(path, &set, err, sizeof err) != RT_OK)
		return luaL_error(L, "%s: load: %s", where, err);
	ir_graph *g = graph_of(L);
	lua_createtable(L, 0, set.n);
	for (int i = 0; i < set.n; i++) {
		const rt_tensor *t = &set.t[i];
		ir_shape s = { .rank = t->rank };
		int64_t n = rt_numel(t->rank, t->shape);
		double *v = malloc((size_t)(n ? n : 1) * sizeof *v);
		for (int k = 0; v && k < t->rank; k++)
			s.d[k] = t->shape[k];
		for (int64_t k = 0; v && k < n; k++)
			v[k] = rt_load(t->dtype, t->data, k);
		int id = v ? ir_constant(g, v, RT_F32, &s, where) : -1;
		free(v);
		if (id < 0) {
			rt_set_free(&set);
			return v ? raise_graph_error(L, g) : luaL_error(L, "%s: load: out of memory", where);
		}
		lua_pushinteger(L, id);
		lua_setfield(L, -2, t->name);
	}
	rt_set_free(&set);
	return 1;
}

static const luaL_Reg core_funcs[] = {
	{ "input", core_input }, { "param", core_param }, { "fill", core_fill },
	{ "constant", core_constant }, { "op", core_op }, { "shape", core_shape },
	{ "dtype", core_dtype }, { "where", core_where }, { "entry", core_entry },
	{ "grad", core_grad }, { "option", core_option }, { "fail", core_fail }, { "meta", core_meta },
	{ "load", core_load }, { NULL, NULL }
};

static int open_core(lua_State *L)
{
	luaL_newlib(L, core_funcs);
	return 1;
}

void fe_core_install(lua_State *L, ir_graph *g, const char *libdir, const char *scriptdir,
                     const fe_option *opts, int nopts)
{
	lua_pushstring(L, scriptdir);
	lua_setfield(L, LUA_REGISTRYINDEX, KEY_SCRIPTDIR);
	lua_pushlightuserdata(L, g);
	lua_setfield(L, LUA_REGISTRYINDEX, KEY_GRAPH);
	lua_pushstring(L, libdir);
	lua_setfield(L, LUA_REGISTRYINDEX, KEY_LIBDIR);
	lua_createtable(L, 0, nopts);
	for (int i = 0; i < nopts; i++) {
		lua_pushstring(L, opts[i].value);
		lua_setfield(L, -2, opts[i].key);
	}
	lua_setfield(L, LUA_REGISTRYINDEX, KEY_OPTIONS);
	lua_newtable(L);
	lua_setfield(L, LUA_REGISTRYINDEX, KEY_READ);
	luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
	lua_pushcfunction(L, open_core);
	lua_setfield(L, -2, "ddpm.core");
	lua_pop(L, 1);
}

/* Levenshtein distance of a and b, capped at 9 (names are short). */
static int distance(const char *a, const char *b)
{
	int row[64], n = (int)strlen(b);
	if (n >= 64 || strlen(a) >= 64)
		return 9;
	for (int j = 0; j <= n; j++)
		row[j] = j;
	for (int i = 1; a[i - 1]; i++) {
		int diag = row[0];
		row[0] = i;
		for (int j = 1; j <= n; j++) {
			int sub = diag + (a[i - 1] != b[j - 1]), next = row[j];
			row[j] = sub < row[j] + 1 ? sub : row[j] + 1;
			row[j] = row[j] < row[j - 1] + 1 ? row[j] : row[j - 1] + 1;
			diag = next;
		}
	}
	return row[n] < 9 ? row[n] : 9;
}

/* Appends "; did you mean 'NAME'?" for the read option nearest to `name`,
 * when one is within a third of its length (rounded up) in edits. */
static void suggest(lua_State *L, const char *name, char *err, size_t errlen)
{
	const char *best = NULL;
	int bestd = ((int)strlen(name) + 2) / 3;
	lua_getfield(L, LUA_REGISTRYINDEX, KEY_READ);
	for (lua_pushnil(L); lua_next(L, -2); lua_pop(L, 1)) {
		int d = distance(name, lua_tostring(L, -2));
		if (d <= bestd)
			best = lua_tostring(L, -2), bestd = d;
	}
	size_t at = strlen(err);
	if (best)
		snprintf(err + at, errlen - at, "; did you mean '%s'?", best);
	lua_pop(L, 1);
}

int fe_core_unread_option(lua_State *L, const char *script, const fe_option *opts, int nopts,
                          char *err, size_t errlen)
{
	lua_getfield(L, LUA_REGISTRYINDEX, KEY_READ);
	for (int i = 0; i < nopts; i++) {
		int read = lua_getfield(L, -1, opts[i].key) != LUA_TNIL;
		lua_pop(L, 1);
		if (read)
			continue;
		lua_pop(L, 1);
		snprintf(err, errlen, "--set %s=%s: %s reads no option '%s' (ddpm.option)", opts[i].key,
		         opts[i].value, script, opts[i].key);
		suggest(L, opts[i].key, err, errlen);
		return -1;
	}
	lua_pop(L, 1);
	return 0;
}
