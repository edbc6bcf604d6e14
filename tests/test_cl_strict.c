/* cl_strict: the OpenCL C that executables embed builds with a compiler
 * other than PoCL's, on devices other than PoCL's.
 *
 * PoCL, which runs every other OpenCL test, has cl_khr_fp64 and no
 * cl_khr_fp16, so the source's other branches (native `half` storage;
 * Box-Muller in float) never build there. Here each program of
 * models/unet.lua at batch 128 for --target opencl, as bench/gpu_pack.sh
 * packs it (fp32; fp16; bf16 with Winograd F(4x4, 3x3)), is dumped
 * (DDPMC_DUMP=opencl: the source the executable embeds), and every
 * program part (-D DDPMC_PART_<p>: the compiler's choices and every
 * variant `tune` builds) is compiled by clang 19's OpenCL C 1.2 front end
 * for NVIDIA's PTX target (nvptx64-nvidia-nvcl, what NVIDIA's driver
 * compiles for) with -Werror at clang's default warnings, twice: for a
 * device with cl_khr_fp64 alone, and for one with cl_khr_fp16 alone.
 * Without clang-19 (CMake found none: DDPMC_CLANG undefined) the test
 * exits 77, which ctest reports as skipped. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#ifdef DDPMC_CLANG

static char dir[64];

/* The extensions of each device the source is compiled for. */
static const char *const devices[] = { "-all,+cl_khr_fp64", "-all,+cl_khr_fp16" };

/* DDPMC_DUMP=opencl's source of models/unet.lua compiled with `flags`,
 * into dir/NAME.cl; its path. */
static const char *dump_source(const char *name, const char *flags)
{
	static char path[128];
	char cmd[1024], err[4096];
	snprintf(path, sizeof path, "%s/%s.cl", dir, name);
	snprintf(cmd, sizeof cmd,
	         "DDPMC_DUMP=opencl '%s' compile '%s/models/unet.lua' --target opencl --set batch=128 %s "
	         "-o '%s/%s' 2> '%s'",
	         DDPMC_BIN, DDPMC_SOURCE_DIR, flags, dir, name, path);
	if (tu_shell_output(cmd, "", err, sizeof err) != 0) {
		snprintf(cmd, sizeof cmd, "tail -c 2000 '%s'", path);
		tu_output_of(cmd, err, sizeof err);
		fail_msg("ddpmc compile %s failed:\n%s", flags, err);
	}
	return path;
}

/* The number of program parts in the source at path (its last
 * `#ifdef DDPMC_PART_<p>` plus one). */
static int count_parts(const char *path)
{
	char cmd[512], out[64];
	snprintf(cmd, sizeof cmd, "grep -o '^#ifdef DDPMC_PART_[0-9]*' '%s' | sed 's/.*_//' | sort -n | tail -n 1",
	         path);
	if (tu_output_of(cmd, out, sizeof out) != 0 || !out[0])
		fail_msg("no program part in %s", path);
	return atoi(out) + 1;
}

/* Every part of the source at path builds for each device; fails with
 * clang's first diagnostics. */
static void every_part_builds(const char *path)
{
	int parts = count_parts(path);
	for (int d = 0; d < TU_LEN(devices); d++)
		for (int p = 0; p < parts; p++) {
			char cmd[1024], out[4096];
			snprintf(cmd, sizeof cmd,
			         "'%s' -target nvptx64-nvidia-nvcl -cl-std=CL1.2 -Xclang -finclude-default-header "
			         "-Xclang -cl-ext=%s -fsyntax-only -Werror -D DDPMC_PART_%d -x cl '%s'",
			         DDPMC_CLANG, devices[d], p, path);
			if (tu_shell_output(cmd, "2>&1", out, sizeof out) != 0 || out[0])
				fail_msg("part %d of %d, extensions %s:\n%s", p, parts, devices[d], out);
		}
	print_message("    %d parts, %d devices\n", parts, TU_LEN(devices));
}

static void fp32_builds(void **unused)
{
	every_part_builds(dump_source("fp32", ""));
}

static void fp16_builds(void **unused)
{
	every_part_builds(dump_source("fp16", "--set precision=fp16"));
}

static void bf16_winograd_builds(void **unused)
{
	every_part_builds(dump_source("bf16_w4", "--set precision=bf16 --winograd 4x4"));
}

static int make_dir(void **unused)
{
	tu_tmpdir(dir, sizeof dir);
	return 0;
}

static int remove_dir(void **unused)
{
	tu_rmtree(dir);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(fp32_builds),
		cmocka_unit_test(fp16_builds),
		cmocka_unit_test(bf16_winograd_builds),
	};
	return cmocka_run_group_tests(tests, make_dir, remove_dir);
}

#else

int main(void)
{
	puts("cl_strict: no clang-19 found by CMake; skipped");
	return 77;
}

#endif
