/* opencl: the OpenCL renderer (compiler/codegen/opencl) on the OpenCL
 * device this machine has (PoCL's CPU device in CI), through the path a
 * compiled executable takes: the descriptor with its "cl" launches, parsed
 * by runtime/program.c, run by runtime/device.c.
 *
 *   - every case of kernel_cases.h against the interpreter, at its
 *     tolerances (the same as the LLVM backend's);
 *   - tests/models/cl_tiny.lua compiled with --target all: 3 train steps
 *     on --device opencl against --device cpu from the same seed. Every
 *     state tensor within 2e-4 absolute: the two backends sum in other
 *     orders (f32 rounding, ~1e-6 relative in a gradient), and Adam's
 *     first steps move a weight by about lr = 1e-3 times the sign of
 *     m / sqrt(v), so a gradient near zero may step differently; such
 *     flips are rare and the warmup keeps lr at 3e-4 or below in 3 steps.
 *     The losses of the steps agree to 1e-4 relative.
 *   - sampling (DDIM, 5 steps) from the CPU's checkpoint on both devices
 *     with the same seed: the same noise (Philox on both) and pixels that
 *     differ by at most 1 of 255 (rounding at quantisation).
 * PoCL compiles each kernel at its first launch (about 0.1-0.2 s each), so
 * the whole-program cases dominate this test's time. */
#include "kernel_cases.h"

#include "cl_render.h"
#include "data.h"
#include "device.h"
#include "program.h"

/* --- the kernel cases, through the runtime's OpenCL device ---------------- */

static void put_launch(rt_strbuf *b, int e, int k, void *ctx)
{
	cl_launch **l = ctx;
	cl_launch_json(b, &l[e][k]);
}

static void backend_run(ir_graph *g, kir_program *p, rt_tensorset *state, const rt_tensorset *inputs,
                        rt_tensorset *outputs)
{
	char err[2048];
	rt_strbuf src = { 0 }, json = { 0 }, data = { 0 };
	cl_launch **l = cl_render(&p, 1, &src);
	assert_non_null(l);
	kir_describe_opts opts = { 1, put_launch, l };
	kir_describe(g, "case.lua", &p, 1, &opts, &json, &data);
	rt_program prog;
	if (rt_program_parse(json.p, json.len, (const unsigned char *)data.p, (int64_t)data.len, NULL, 0,
	                     &prog, err, sizeof err) != RT_OK)
		fail_msg("%s", err);
	prog.cl_source = src.p;
	prog.cl_source_len = (int64_t)src.len;
	rt_device *d = rt_device_open(&prog, "opencl", 0, err, sizeof err);
	if (!d)
		fail_msg("%s", err);
	if (rt_device_run(d, &prog.entries[0], state, inputs, outputs, err, sizeof err) != RT_OK ||
	    rt_device_sync(d, state, err, sizeof err) != RT_OK)
		fail_msg("%s", err);
	rt_device_free(d);
	rt_program_free(&prog);
	cl_launches_free(l, &p, 1);
	rt_sb_free(&src);
	rt_sb_free(&json);
	rt_sb_free(&data);
}

/* --- a compiled executable on both devices --------------------------------- */

enum { NIMG = 24, SIDE = 16, NSAMPLE = 4 };

static char dir[64], exe[128], data[128];

static int run_exe(char *err, size_t errlen, const char *fmt, ...)
{
	char args[2048], cmd[2300];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(args, sizeof args, fmt, ap);
	va_end(ap);
	snprintf(cmd, sizeof cmd, "'%s' %s", exe, args);
	return tu_stderr_of(cmd, err, errlen);
}

static int compile_tiny(void **unused)
{
	/* PoCL compiles each of the program's hundreds of kernels at its first
	 * launch; unoptimised, in about half the time (the kernel cases above
	 * ran optimised) */
	setenv("DDPMC_CL_OPTIONS", "-cl-opt-disable", 1);
	return tu_tiny_program("tests/models/cl_tiny.lua", "--target all", dir, exe, data, NIMG, SIDE);
}

static int remove_tiny(void **unused)
{
	tu_rmtree(dir);
	return 0;
}

static void train(const char *device, const char *out)
{
	char err[4096];
	if (run_exe(err, sizeof err, "train --data '%s' --steps 3 --log-every 1 --seed 5 --out '%s/%s' "
	            "--device %s", data, dir, out, device))
		fail_msg("train --device %s: %s", device, err);
}

static void read_checkpoint(const char *run, rt_tensorset *st)
{
	char path[256], err[1024];
	snprintf(path, sizeof path, "%s/%s/checkpoint.safetensors", dir, run);
	memset(st, 0, sizeof *st);
	if (rt_st_read(path, st, err, sizeof err) != RT_OK)
		fail_msg("%s", err);
}

/* The "loss" of every line of run/metrics.jsonl. */
static int read_losses(const char *run, double *loss, int max)
{
	char path[256], line[1024];
	snprintf(path, sizeof path, "%s/%s/metrics.jsonl", dir, run);
	FILE *f = fopen(path, "r");
	int n = 0;
	if (!f)
		fail_msg("%s is missing", path);
	while (n < max && fgets(line, sizeof line, f)) {
		const char *at = strstr(line, "\"loss\": ");
		if (at)
			loss[n++] = strtod(at + 8, NULL);
	}
	fclose(f);
	return n;
}

static void train_step_matches_cpu(void **unused)
{
	train("cpu", "cpu");
	train("opencl", "opencl");
	rt_tensorset a, b;
	read_checkpoint("cpu", &a);
	read_checkpoint("opencl", &b);
	assert_int_equal(a.n, b.n);
	double worst = 0;
	const char *where = "";
	for (int i = 0; i < a.n; i++) {
		const rt_tensor *x = &a.t[i], *y = rt_set_find(&b, x->name);
		assert_non_null(y);
		for (int64_t j = 0; j < rt_numel(x->rank, x->shape); j++) {
			double d = fabs(rt_load(x->dtype, x->data, j) - rt_load(y->dtype, y->data, j));
			if (!(d <= worst))
				worst = d, where = x->name;
		}
	}
	print_message("    %d state tensors after 3 steps: max |opencl - cpu| = %.3g (%s)\n", a.n, worst, where);
	if (!(worst <= 2e-4))
		fail_msg("state differs by %g in %s (limit 2e-4)", worst, where);
	double la[8], lb[8];
	int n = read_losses("cpu", la, 8);
	assert_int_equal(n, read_losses("opencl", lb, 8));
	assert_true(n >= 3);
	for (int i = 0; i < n; i++)
		if (!(fabs(la[i] - lb[i]) <= 1e-4 * fabs(la[i])))
			fail_msg("loss %d: cpu %.9g, opencl %.9g", i, la[i], lb[i]);
	rt_set_free(&a);
	rt_set_free(&b);
}

static void sample(const char *device, const char *out)
{
	char err[4096];
	if (run_exe(err, sizeof err, "sample --ckpt '%s/cpu/checkpoint.safetensors' --n %d --sampler ddim "
	            "--steps 5 --seed 9 --out-dir '%s/%s' --device %s", dir, NSAMPLE, dir, out, device))
		fail_msg("sample --device %s: %s", device, err);
}

static void sampling_matches_cpu(void **unused)
{
	char p1[256], p2[256], err[1024];
	sample("cpu", "scpu");
	sample("opencl", "scl");
	int worst = 0, differ = 0;
	for (int i = 0; i < NSAMPLE; i++) {
		uint8_t a[SIDE * SIDE], b[SIDE * SIDE];
		snprintf(p1, sizeof p1, "%s/scpu/image_%04d.png", dir, i);
		snprintf(p2, sizeof p2, "%s/scl/image_%04d.png", dir, i);
		if (rt_png_read(p1, 1, SIDE, SIDE, a, err, sizeof err) != RT_OK ||
		    rt_png_read(p2, 1, SIDE, SIDE, b, err, sizeof err) != RT_OK)
			fail_msg("%s", err);
		for (int j = 0; j < SIDE * SIDE; j++) {
			int d = abs((int)a[j] - (int)b[j]);
			worst = d > worst ? d : worst;
			differ += d != 0;
		}
	}
	print_message("    %d images: %d of %d pixels differ, by at most %d/255\n", NSAMPLE, differ,
	              NSAMPLE * SIDE * SIDE, worst);
	assert_true(worst <= 1);
}

int main(void)
{
	char cache[64];
	tu_tmpdir(cache, sizeof cache);         /* the program cache writes nowhere else */
	setenv("DDPMC_CL_CACHE", cache, 1);
	const struct CMUnitTest tests[] = {
		KERNEL_CASES,
		cmocka_unit_test_setup_teardown(train_step_matches_cpu, compile_tiny, NULL),
		cmocka_unit_test_teardown(sampling_matches_cpu, remove_tiny),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	tu_rmtree(cache);
	return rc;
}
