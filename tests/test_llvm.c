/* llvm: the LLVM backend (compiler/codegen/llvm) against the reference
 * interpreter (the cases of kernel_cases.h), plus object files. (The
 * throughput of convolutions is bench/conv_bench's, not a test's.)
 *
 * The backend runs each kernel over its rows split into three ranges run
 * out of order (kernels must be pure functions of their row range). */
#include "kernel_cases.h"

#include "llvm_backend.h"

/* Inputs converted and buffers bound as `ddpmc run` does (host.c). */
static void convert_inputs(const ir_graph *g, const rt_tensorset *in, rt_tensorset *out)
{
	char err[512];
	if (kir_convert_inputs(g, in, out, err, sizeof err) < 0)
		fail_msg("%s", err);
}

static void **bind(const kir_program *p, rt_tensorset *state, const rt_tensorset *in, rt_tensorset *outs,
                   char **arena)
{
	char err[512];
	void **bufs = kir_bind_host(p, state, in, outs, arena, err, sizeof err);
	if (!bufs)
		fail_msg("%s", err);
	return bufs;
}

/* Runs every kernel: rows split in three, the last third first. */
static void run_split(const kir_program *p, llvm_kernel_fn *fns, void **bufs)
{
	for (int n = 0; n < p->nk; n++) {
		int64_t rows = kir_rows(&p->k[n]), a = rows / 3, b = 2 * rows / 3;
		llvm_call(&p->k[n], fns[n], bufs, b, rows);
		llvm_call(&p->k[n], fns[n], bufs, 0, a);
		llvm_call(&p->k[n], fns[n], bufs, a, b);
	}
}

static void backend_run(ir_graph *g, kir_program *p, rt_tensorset *state, const rt_tensorset *inputs,
                        rt_tensorset *outputs)
{
	char err[1024], *arena;
	rt_tensorset in = { 0 };
	llvm_kernel_fn *fns = calloc((size_t)p->nk + 1, sizeof *fns);
	llvm_jit *j = llvm_jit_compile(p, NULL, fns, err, sizeof err);
	if (!j)
		fail_msg("%s: %s", p->entry, err);
	convert_inputs(g, inputs, &in);
	void **bufs = bind(p, state, &in, outputs, &arena);
	run_split(p, fns, bufs);
	free(bufs);
	free(arena);
	free(fns);
	llvm_jit_free(j);
	rt_set_free(&in);
}

/* --- object files and speed --------------------------------------------------------------------- */

static void object_file_for_x86_64_v3_is_written(void **state)
{
	char dir[256], path[512], err[1024];
	ir_graph *g = load_script(conv_lua, (fe_option[]){ { "n0", "2" }, { "n1", "3" }, { "n2", "5" } }, 3);
	kir_program *p = kir_lower(g, ir_entry_find(g, "main"));
	llvm_blob blobs[2] = { { "ddpmc_meta", "{\"x\": 1}", 8 }, { "ddpmc_empty", NULL, 0 } };
	tu_tmpdir(dir, sizeof dir);
	snprintf(path, sizeof path, "%s/k.o", dir);
	kir_program *progs[2] = { p, p };
	kir_share(progs, 2);
	if (llvm_emit_object(progs, 2, blobs, 2, "x86-64-v3", path, err, sizeof err) < 0)
		fail_msg("%s", err);
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	long size = ftell(f);
	char head[4] = { 0 };
	fseek(f, 0, SEEK_SET);
	assert_int_equal(fread(head, 1, 4, f), 4);
	fclose(f);
	print_message("    %d kernels x 2 programs: %ld bytes\n", p->nk, size);
	assert_true(size > 1000);
	assert_memory_equal(head, "\x7f" "ELF", 4);
	tu_rmtree(dir);
	kir_program_free(p);
	ir_free(g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		KERNEL_CASES,
		cmocka_unit_test(object_file_for_x86_64_v3_is_written),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
