/* kir_eval: the kernel IR's reference evaluator held, as a backend, to the
 * cases of kernel_cases.h against the interpreter: lowering checked apart
 * from code generation, and ir_scalar's one meaning per op seen through
 * both evaluators. */
#include "kernel_cases.h"

static void backend_run(ir_graph *g, kir_program *p, rt_tensorset *state, const rt_tensorset *inputs,
                        rt_tensorset *outputs)
{
	char err[1024], *arena;
	rt_tensorset in = { 0 };
	if (kir_convert_inputs(g, inputs, &in, err, sizeof err) < 0)
		fail_msg("%s", err);
	void **bufs = kir_bind_host(p, state, &in, outputs, &arena, err, sizeof err);
	if (!bufs)
		fail_msg("%s", err);
	kir_eval(p, bufs);
	free(bufs);
	free(arena);
	rt_set_free(&in);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		KERNEL_CASES,
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
