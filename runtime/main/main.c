/* main: the entry point of an executable that `ddpmc compile` produces. It
 * links the generated object (kernels and the embedded program) with the
 * runtime and hands them to the command line (run.c). */
#include "cli.h"

extern void (*const ddpmc_kernels[])(void **bufs, int64_t row_begin, int64_t row_end);
extern const char ddpmc_program_json[];
extern const int64_t ddpmc_program_json_len;
extern const unsigned char ddpmc_program_data[];
extern const int64_t ddpmc_program_data_len;
extern const char ddpmc_opencl_json[];
extern const int64_t ddpmc_opencl_json_len;
extern const unsigned char ddpmc_opencl_data[];
extern const int64_t ddpmc_opencl_data_len;
extern const char ddpmc_opencl_source[];
extern const int64_t ddpmc_opencl_source_len;
/* Optional: the length of ddpmc_kernels, which lets the descriptor's
 * kernel indices be bounds-checked. */
extern const int64_t ddpmc_nkernels __attribute__((weak));
/* Optional: "ddpmc VERSION, LLVM VERSION", what compiled the object. */
extern const char ddpmc_build[] __attribute__((weak));

int main(int argc, char **argv)
{
	const rt_embedded emb = {
		ddpmc_kernels, &ddpmc_nkernels ? ddpmc_nkernels : -1,
		ddpmc_program_json, ddpmc_program_json_len,
		ddpmc_program_data, ddpmc_program_data_len,
		ddpmc_opencl_json, ddpmc_opencl_json_len,
		ddpmc_opencl_data, ddpmc_opencl_data_len,
		ddpmc_opencl_source, ddpmc_opencl_source_len,
		ddpmc_build,
	};
	return cli_run(argc, argv, &emb);
}
