/* test_graph: the graph IR's own invariants and tools. ir_verify accepts
 * what the builders and the frontend make and catches hand-corrupted
 * nodes and entries; ir_entry_live marks exactly the nodes an entry
 * reaches; ir_dump prints the documented one-line-per-node format; names
 * of inputs, params and entries are unique; updates must match their param;
 * the op table is consistent with itself. */
#include "testutil.h"

/* The graph every test here starts from:
 *   %0 x (2, 3)   %1 p (3)   %2 s i32 () state
 *   %3 = x + p    %4 = sum(%3, axis 1)    %5 = exp(x)
 *   %6 = fill 1 i32 ()      %7 = s + %6
 *   entry fwd: y = %3, z = %4;  entry step: e = %5, s <- %7 */
static ir_graph *sample(void)
{
	ir_graph *g = ir_new();
	ir_shape x = SH(2, 3), p = SH(3), s = SH0;
	tu_ok(g, ir_input(g, "x", RT_F32, &x, "t.lua:1"));
	tu_ok(g, ir_param(g, "p", RT_F32, &p, (ir_init){ .kind = INIT_ONES }, 1, "t.lua:2"));
	tu_ok(g, ir_param(g, "s", RT_I32, &s, (ir_init){ .kind = INIT_ZEROS }, 0, "t.lua:3"));
	int xp[2] = { 0, 1 };
	tu_ok(g, ir_add(g, OP_add, xp, 2, NULL, NULL, RT_F32, "t.lua:4"));
	ir_attrs ax = { .reduce = { 0x2 } };
	int three = 3, zero = 0;
	tu_ok(g, ir_add(g, OP_reduce_sum, &three, 1, &ax, NULL, RT_F32, "t.lua:5"));
	tu_ok(g, ir_add(g, OP_exp, &zero, 1, NULL, NULL, RT_F32, "t.lua:6"));
	tu_ok(g, ir_fill(g, 1, RT_I32, &s, "t.lua:7"));
	int s1[2] = { 2, 6 };
	tu_ok(g, ir_add(g, OP_add, s1, 2, NULL, NULL, RT_I32, "t.lua:8"));
	ir_binding fwd[2] = { { "z", 4 }, { "y", 3 } };      /* sorted when stored */
	ir_binding e = { "e", 5 }, upd = { "s", 7 };
	tu_ok(g, ir_entry_add(g, "fwd", fwd, 2, NULL, 0, "test.lua:1"));
	tu_ok(g, ir_entry_add(g, "step", &e, 1, &upd, 1, "test.lua:1"));
	return g;
}

static void expect_verify_fails(ir_graph *g, const char *start, const char *sub)
{
	g->err[0] = 0;
	if (ir_verify(g) == 0)
		fail_msg("ir_verify accepted a corrupted graph (expected \"%s...%s\")", start, sub);
	if (!tu_starts(g->err, start) || !strstr(g->err, sub))
		fail_msg("expected \"%s...%s...\", got \"%s\"", start, sub, g->err);
}

static void test_verify_accepts(void **state)
{
	(void)state;
	ir_graph *g = sample();
	if (ir_verify(g) != 0)
		fail_msg("%s", g->err);
	ir_free(g);

	/* a graph from a model script using the library's composites */
	char path[1024], err[1024];
	g = fe_load(tu_script("graph_small.lua", path, sizeof path), NULL, 0, err, sizeof err);
	if (!g)
		fail_msg("%s", err);
	if (ir_verify(g) != 0)
		fail_msg("%s", g->err);
	assert_non_null(ir_entry_find(g, "forward"));
	assert_true(g->nparams >= 4);
	ir_free(g);
}

static void test_verify_catches_shape_and_dtype(void **state)
{
	(void)state;
	ir_graph *g = sample();
	g->nodes[3].shape.d[1] = 4;
	expect_verify_fails(g, "t.lua:4: add: ", "node 3 is F32 (2, 4) but its rule gives F32 (2, 3)");
	g->nodes[3].shape.d[1] = 3;
	assert_int_equal(ir_verify(g), 0);
	g->nodes[4].shape.rank = 1;
	expect_verify_fails(g, "t.lua:5: reduce_sum: ", "node 4 is F32 (2) but its rule gives");
	g->nodes[4].shape.rank = 2;
	g->nodes[5].dtype = RT_F16;
	expect_verify_fails(g, "t.lua:6: exp: ", "node 5 is F16 (2, 3) but its rule gives F32 (2, 3)");
	g->nodes[5].dtype = RT_F32;
	g->nodes[4].a.reduce.axes = 0x1;
	expect_verify_fails(g, "t.lua:5: reduce_sum: ", "its rule gives F32 (1, 3)");
	ir_free(g);
}

static void test_verify_catches_order(void **state)
{
	(void)state;
	ir_graph *g = sample();
	g->nodes[3].in[1] = 3;                  /* itself */
	expect_verify_fails(g, "t.lua:4: add: ", "input 1 (node 3) does not come before node 3");
	g->nodes[3].in[1] = 5;                  /* a later node */
	expect_verify_fails(g, "t.lua:4: add: ", "input 1 (node 5) does not come before node 3");
	g->nodes[3].in[1] = 1;
	assert_int_equal(ir_verify(g), 0);
	g->nodes[5].in[0] = -1;
	expect_verify_fails(g, "t.lua:6: exp: ", "input 0 is not a node");
	ir_free(g);
}

static void test_verify_catches_leaves(void **state)
{
	(void)state;
	ir_graph *g = sample();
	g->nodes[1].name = NULL;
	expect_verify_fails(g, "t.lua:2: param: ", "node 1 has no name");
	g->nodes[1].name = "p";
	g->params[0] = 2, g->params[1] = 1;     /* the list no longer matches the indices */
	expect_verify_fails(g, "t.lua:2: param: ", "node 1 is not in the param list");
	g->params[0] = 1, g->params[1] = 2;
	g->nodes[0].nin = 1;
	g->nodes[0].in = g->nodes[3].in;
	expect_verify_fails(g, "t.lua:1: input: ", "leaf node 0 has inputs");
	g->nodes[0].nin = 0;
	assert_int_equal(ir_verify(g), 0);
	double v[3] = { 1, 2, 3 };
	ir_shape s = SH(3);
	int c = tu_ok(g, ir_constant(g, v, RT_F32, &s, "t.lua:9"));
	g->nodes[c].data = NULL;
	expect_verify_fails(g, "t.lua:9: constant: ", "has no data");
	ir_free(g);
}

static void test_verify_catches_entries(void **state)
{
	(void)state;
	ir_graph *g = sample();
	g->entries[0].outputs[0].node = g->n;
	expect_verify_fails(g, "fwd: entry: ", "output 'y' is not a node");
	g->entries[0].outputs[0].node = 3;
	g->entries[1].updates[0].name = "q";
	expect_verify_fails(g, "step: entry: ", "update 'q' is not a param");
	g->entries[1].updates[0].name = "s";
	assert_int_equal(ir_verify(g), 0);
	ir_free(g);
}

/* The update side of an entry is held to what ir_entry_add checks: the new
 * value is a node, of the param's shape and dtype. */
static void test_verify_catches_bad_updates(void **state)
{
	(void)state;
	ir_graph *g = sample();
	g->entries[1].updates[0].node = g->n + 5;
	if (ir_verify(g) == 0)
		fail_msg("ir_verify accepted an update whose value is node %d of %d", g->n + 5, g->n);
	g->entries[1].updates[0].node = 3;      /* f32 (2, 3) for i32 () */
	if (ir_verify(g) == 0)
		fail_msg("ir_verify accepted an update of i32 () 's' with an f32 (2, 3) value");
	ir_free(g);
}

static void test_entry_live(void **state)
{
	(void)state;
	ir_graph *g = sample();
	static const char fwd[8] = { 1, 1, 0, 1, 1, 0, 0, 0 };
	static const char step[8] = { 1, 0, 1, 0, 0, 1, 1, 1 };
	char *live = ir_entry_live(g, ir_entry_find(g, "fwd"));
	for (int i = 0; i < 8; i++)
		if (live[i] != fwd[i])
			fail_msg("fwd: node %d is %s, expected %s", i, live[i] ? "live" : "dead",
			         fwd[i] ? "live" : "dead");
	free(live);
	live = ir_entry_live(g, ir_entry_find(g, "step"));
	for (int i = 0; i < 8; i++)
		if (live[i] != step[i])
			fail_msg("step: node %d is %s, expected %s", i, live[i] ? "live" : "dead",
			         step[i] ? "live" : "dead");
	free(live);
	ir_free(g);
}

static char *dump_of(const ir_graph *g, const char *live, int dot)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	assert_non_null(f);
	(dot ? ir_dump_dot : ir_dump)(g, live, f);
	fclose(f);
	return buf;
}

static void test_dump(void **state)
{
	(void)state;
	ir_graph *g = sample();
	char *text = dump_of(g, NULL, 0);
	assert_string_equal(text,
		"%0 = input() F32 (2, 3) \"x\"   # t.lua:1\n"
		"%1 = param() F32 (3) \"p\"   # t.lua:2\n"
		"%2 = param() I32 () \"s\" state   # t.lua:3\n"
		"%3 = add(%0, %1) F32 (2, 3)   # t.lua:4\n"
		"%4 = reduce_sum(%3) F32 (2, 1) axes=0x2   # t.lua:5\n"
		"%5 = exp(%0) F32 (2, 3)   # t.lua:6\n"
		"%6 = fill() I32 () value=1   # t.lua:7\n"
		"%7 = add(%2, %6) I32 ()   # t.lua:8\n"
		"entry fwd: y=%3 z=%4\n"
		"entry step: e=%5 s<-%7\n");
	free(text);
	char *live = ir_entry_live(g, ir_entry_find(g, "fwd"));
	text = dump_of(g, live, 0);
	assert_string_equal(text,
		"%0 = input() F32 (2, 3) \"x\"   # t.lua:1\n"
		"%1 = param() F32 (3) \"p\"   # t.lua:2\n"
		"%3 = add(%0, %1) F32 (2, 3)   # t.lua:4\n"
		"%4 = reduce_sum(%3) F32 (2, 1) axes=0x2   # t.lua:5\n"
		"entry fwd: y=%3 z=%4\n"
		"entry step: e=%5 s<-%7\n");
	free(text);
	text = dump_of(g, live, 1);
	CONTAINS(text, "digraph ddpmc {", "n0 -> n3;", "n1 -> n3;", "n3 -> n4;");
	assert_null(strstr(text, "n5"));
	free(text);
	free(live);
	ir_free(g);
}

/* The attributes of movement and contraction ops, as dump prints them. */
static void test_dump_attrs(void **state)
{
	(void)state;
	ir_graph *g = ir_new();
	ir_shape xs = SH(1, 2, 5, 6), ws = SH(3, 2, 3, 3);
	int x = tu_ok(g, ir_input(g, "x", RT_F32, &xs, "a.lua:1"));
	int w = tu_ok(g, ir_param(g, "w", RT_F32, &ws, (ir_init){ .kind = INIT_ZEROS }, 1, "a.lua:2"));
	int xw[2] = { x, w };
	ir_attrs cv = { .conv = { { 2, 2 }, { 1, 0, 0, 1 } } };
	ir_attrs pm = { .permute = { { 0, 2, 3, 1 } } };
	ir_attrs sl = { .slice = { { 0, 1, 0, 2 }, { 1, 1, 2, 3 } } };
	ir_attrs pd = { .pad = { { 0, 0, 1, 0 }, { 0, 0, 0, 2 }, -1.5 } };
	ir_attrs up = { .upsample = { 3 } }, ct = { .concat = { 1 } };
	ir_shape sc = SH(1, 1, 3, 2);
	tu_ok(g, ir_add(g, OP_conv2d, xw, 2, &cv, NULL, RT_F32, "a.lua:3"));
	tu_ok(g, ir_add(g, OP_permute, &x, 1, &pm, NULL, RT_F32, "a.lua:4"));
	tu_ok(g, ir_add(g, OP_slice, &x, 1, &sl, &sc, RT_F32, "a.lua:5"));
	tu_ok(g, ir_add(g, OP_pad, &x, 1, &pd, NULL, RT_F32, "a.lua:6"));
	tu_ok(g, ir_add(g, OP_upsample2d, &x, 1, &up, NULL, RT_F32, "a.lua:7"));
	int xx[2] = { x, x };
	tu_ok(g, ir_add(g, OP_concat, xx, 2, &ct, NULL, RT_F32, "a.lua:8"));
	tu_ok(g, ir_add(g, OP_cast, &x, 1, NULL, NULL, RT_BF16, "a.lua:9"));
	char *text = dump_of(g, NULL, 0);
	assert_string_equal(text,
		"%0 = input() F32 (1, 2, 5, 6) \"x\"   # a.lua:1\n"
		"%1 = param() F32 (3, 2, 3, 3) \"w\"   # a.lua:2\n"
		"%2 = conv2d(%0, %1) F32 (1, 3, 2, 3) stride=2,2 pad=1,0,0,1   # a.lua:3\n"
		"%3 = permute(%0) F32 (1, 5, 6, 2) perm=0,2,3,1   # a.lua:4\n"
		"%4 = slice(%0) F32 (1, 1, 3, 2) start,step=0:1,1:1,0:2,2:3   # a.lua:5\n"
		"%5 = pad(%0) F32 (1, 2, 6, 8) lo,hi=0:0,0:0,1:0,0:2 value=-1.5   # a.lua:6\n"
		"%6 = upsample2d(%0) F32 (1, 2, 15, 18) scale=3   # a.lua:7\n"
		"%7 = concat(%0, %0) F32 (1, 4, 5, 6) axis=1   # a.lua:8\n"
		"%8 = cast(%0) BF16 (1, 2, 5, 6)   # a.lua:9\n");
	free(text);
	assert_int_equal(ir_verify(g), 0);
	ir_free(g);
}

static void test_unique_names(void **state)
{
	(void)state;
	ir_graph *g = sample();
	int n = g->n;
	ir_shape s = SH(3);
	assert_int_equal(ir_input(g, "x", RT_F32, &s, "t.lua:20"), -1);
	assert_string_equal(g->err, "t.lua:20: input: an input named 'x' exists already");
	assert_int_equal(ir_param(g, "p", RT_F32, &s, (ir_init){ .kind = INIT_ZEROS }, 1, "t.lua:21"), -1);
	assert_string_equal(g->err, "t.lua:21: param: a parameter named 'p' exists already");
	assert_int_equal(g->n, n);
	assert_int_equal(g->nparams, 2);
	ir_binding b = { "y", 3 };
	assert_int_equal(ir_entry_add(g, "fwd", &b, 1, NULL, 0, "test.lua:1"), -1);
	CONTAINS(g->err, "entry", "'fwd' exists already");
	assert_int_equal(g->nentries, 2);
	/* a param may copy only a param of its own dtype and shape */
	ir_shape s2 = SH(2, 3);
	assert_int_equal(ir_param(g, "q", RT_F32, &s2, (ir_init){ .kind = INIT_COPY, .from = 1 }, 0,
	                          "t.lua:22"), -1);
	CONTAINS(g->err, "t.lua:22: param: ", "'q' must copy");
	assert_int_equal(ir_param(g, "q", RT_F32, &s, (ir_init){ .kind = INIT_COPY, .from = 0 }, 0,
	                          "t.lua:23"), -1);
	tu_ok(g, ir_param(g, "q", RT_F32, &s, (ir_init){ .kind = INIT_COPY, .from = 1 }, 0, "t.lua:24"));
	assert_int_equal(ir_verify(g), 0);
	ir_free(g);
}

static void test_entry_updates_checked(void **state)
{
	(void)state;
	ir_graph *g = sample();
	ir_binding out = { "y", 3 };
	ir_binding wrong_shape = { "p", 3 };    /* (2, 3) for a (3) param */
	assert_int_equal(ir_entry_add(g, "a", &out, 1, &wrong_shape, 1, "test.lua:1"), -1);
	assert_string_equal(g->err, "test.lua:1: entry: update of 'p' F32 (3) with a F32 (2, 3) value");
	ir_binding wrong_dtype = { "s", 4 };    /* reduce_sum: f32 (2, 1) */
	assert_int_equal(ir_entry_add(g, "b", &out, 1, &wrong_dtype, 1, "test.lua:1"), -1);
	CONTAINS(g->err, "update of 's' I32 () with a F32 (2, 1) value");
	ir_binding not_param = { "x", 3 };
	assert_int_equal(ir_entry_add(g, "c", &out, 1, &not_param, 1, "test.lua:1"), -1);
	CONTAINS(g->err, "entry: update of 'x', which is not a parameter");
	ir_binding no_node = { "y", 99 };
	assert_int_equal(ir_entry_add(g, "d", &no_node, 1, NULL, 0, "test.lua:1"), -1);
	CONTAINS(g->err, "entry: output 0 of 'd' is not a node");
	assert_int_equal(g->nentries, 2);
	assert_null(ir_entry_find(g, "a"));
	ir_free(g);
}

/* Names unique, LEAF exactly the arity-0 ops, every name parses back. */
static void test_op_table(void **state)
{
	(void)state;
	for (int op = 0; op < OP_COUNT; op++) {
		ir_opcode back;
		assert_int_equal(ir_opcode_parse(ir_ops[op].name, &back), 0);
		assert_int_equal(back, op);
		assert_int_equal(!!(ir_ops[op].flags & LEAF), ir_ops[op].arity == 0);
		assert_true(ir_ops[op].meaning && ir_ops[op].meaning[0]);
	}
	ir_opcode x;
	assert_int_equal(ir_opcode_parse("convolve", &x), -1);
}

static void test_flops(void **state)
{
	(void)state;
	ir_graph *g = ir_new();
	ir_shape as = SH(2, 2, 3), bs = SH(2, 3, 5), xs = SH(1, 2, 5, 6), ws = SH(3, 2, 3, 3);
	int a = tu_ok(g, ir_input(g, "a", RT_F32, &as, "f.lua:1"));
	int b = tu_ok(g, ir_input(g, "b", RT_F32, &bs, "f.lua:2"));
	int x = tu_ok(g, ir_input(g, "x", RT_F32, &xs, "f.lua:3"));
	int w = tu_ok(g, ir_input(g, "w", RT_F32, &ws, "f.lua:4"));
	int ab[2] = { a, b }, xw[2] = { x, w };
	ir_attrs cv = { .conv = { { 2, 2 }, { 1, 0, 0, 1 } } }, ax = { .reduce = { 0x6 } };
	int mm = tu_ok(g, ir_add(g, OP_matmul, ab, 2, NULL, NULL, RT_F32, "f.lua:5"));
	int cn = tu_ok(g, ir_add(g, OP_conv2d, xw, 2, &cv, NULL, RT_F32, "f.lua:6"));
	int ex = tu_ok(g, ir_add(g, OP_exp, &x, 1, NULL, NULL, RT_F32, "f.lua:7"));
	int rs = tu_ok(g, ir_add(g, OP_reduce_sum, &x, 1, &ax, NULL, RT_F32, "f.lua:8"));
	assert_true(ir_node_flops(g, &g->nodes[mm]) == 2.0 * 20 * 3);     /* out (2,2,5), K 3 */
	assert_true(ir_node_flops(g, &g->nodes[cn]) == 2.0 * 18 * 18);    /* out 1*3*2*3, 2*3*3 taps */
	assert_true(ir_node_flops(g, &g->nodes[ex]) == 60);
	assert_true(ir_node_flops(g, &g->nodes[rs]) == 60);
	assert_true(ir_node_flops(g, &g->nodes[a]) == 0);
	ir_free(g);
}

/* `ddpmc graph --entry` prints only that entry's nodes. */
static void test_driver_graph(void **state)
{
	char path[1024], cmd[2048], line[1024];
	(void)state;
	snprintf(cmd, sizeof cmd, "'%s' graph '%s' --entry forward 2>&1", DDPMC_BIN,
	         tu_script("graph_small.lua", path, sizeof path));
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	int nodes = 0, entry = 0, conv = 0;
	while (fgets(line, sizeof line, p)) {
		nodes += line[0] == '%';
		entry += tu_starts(line, "entry forward:");
		conv += tu_starts(line, "%") && strstr(line, "= conv2d(") && strstr(line, "graph_small.lua:");
		if (line[0] == '%' && !strstr(line, "   # "))
			fail_msg("node line without its origin: %s", line);
	}
	assert_int_equal(pclose(p), 0);
	assert_true(nodes > 10);
	assert_int_equal(entry, 1);
	assert_int_equal(conv, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_verify_accepts),
		cmocka_unit_test(test_verify_catches_shape_and_dtype),
		cmocka_unit_test(test_verify_catches_order),
		cmocka_unit_test(test_verify_catches_leaves),
		cmocka_unit_test(test_verify_catches_entries),
		cmocka_unit_test(test_verify_catches_bad_updates),
		cmocka_unit_test(test_entry_live),
		cmocka_unit_test(test_dump),
		cmocka_unit_test(test_dump_attrs),
		cmocka_unit_test(test_unique_names),
		cmocka_unit_test(test_entry_updates_checked),
		cmocka_unit_test(test_op_table),
		cmocka_unit_test(test_flops),
		cmocka_unit_test(test_driver_graph),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
