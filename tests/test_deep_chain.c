/* deep_chain: a script that chains 20,000 elementwise ops (a generated
 * model, say) compiles for both targets instead of overflowing the C stack
 * in lowering or code generation, and the kernels it lowers to (the chain
 * split where it is too deep to inline) compute what the interpreter does. */
#include "testutil.h"

#include "kir.h"

enum { CHAIN = 20000 };

/* dir/chain.lua: y = x, then CHAIN times y = y * 0.9999 + 0.001 (half
 * multiplies, half adds), on a tensor of 3 elements. */
static const char *write_chain(const char *dir, char *path, size_t len)
{
	static const char text[] =
		"local ddpm = require \"ddpm\"\n"
		"local y = ddpm.input(\"x\", { 3 })\n"
		"for i = 1, %d do y = i %% 2 == 0 and y + 0.001 or y * 0.9999 end\n"
		"ddpm.entry(\"forward\", { y = y })\n";
	char script[sizeof text + 16];
	snprintf(script, sizeof script, text, CHAIN);
	return tu_write(dir, "chain.lua", script, -1, path, len);
}

static void compile_for(const char *script, const char *dir, const char *flags)
{
	char cmd[1024], err[4096];
	snprintf(cmd, sizeof cmd, "'%s' compile '%s' %s -o '%s/chain'", DDPMC_BIN, script, flags, dir);
	int rc = tu_stderr_of(cmd, err, sizeof err);
	if (rc != 0)
		fail_msg("%s: exit %d: %s", cmd, rc, err);
}

static void chain_of_20000_ops_compiles_for_cpu_and_opencl(void **state)
{
	char dir[64], path[128];
	(void)state;
	tu_tmpdir(dir, sizeof dir);
	write_chain(dir, path, sizeof path);
	compile_for(path, dir, "");
	compile_for(path, dir, "--target opencl");
	tu_rmtree(dir);
}

static void chain_of_20000_ops_lowers_to_what_the_interpreter_computes(void **state)
{
	char dir[64], path[128], err[1024];
	(void)state;
	tu_tmpdir(dir, sizeof dir);
	ir_graph *g = fe_load(write_chain(dir, path, sizeof path), NULL, 0, err, sizeof err);
	tu_rmtree(dir);
	if (!g)
		fail_msg("%s", err);
	const ir_entry *e = ir_entry_find(g, "forward");
	kir_program *p = kir_lower(g, e, tu_cpu_target(NULL));
	if (!p)
		fail_msg("kir_lower: %s", g->err);
	assert_true(p->nk > 1);         /* too deep for one kernel */
	rt_tensorset in = { 0 }, want = { 0 }, got = { 0 };
	rt_tensor *x = rt_set_add(&in, "x", RT_F32, 1, (int64_t[]){ 3 });
	for (int i = 0; i < 3; i++)
		rt_store(RT_F32, x->data, i, i - 1.5);
	if (interp_run(g, e, NULL, &in, &want, err, sizeof err) < 0)
		fail_msg("interp_run: %s", err);
	char *arena;
	void **bufs = kir_bind_host(p, NULL, &in, &got, &arena, err, sizeof err);
	if (!bufs)
		fail_msg("kir_bind_host: %s", err);
	kir_eval(p, bufs);
	const rt_tensor *w = rt_set_find(&want, "y"), *o = rt_set_find(&got, "y");
	for (int i = 0; i < 3; i++) {
		double a = rt_load(RT_F32, w->data, i), b = rt_load(RT_F32, o->data, i);
		if (fabs(a - b) > 1e-4 * fmax(1, fabs(a)))
			fail_msg("y[%d]: interpreter %.9g, kernels %.9g", i, a, b);
	}
	free(bufs);
	free(arena);
	rt_set_free(&in);
	rt_set_free(&want);
	rt_set_free(&got);
	kir_program_free(p);
	ir_free(g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(chain_of_20000_ops_compiles_for_cpu_and_opencl),
		cmocka_unit_test(chain_of_20000_ops_lowers_to_what_the_interpreter_computes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
