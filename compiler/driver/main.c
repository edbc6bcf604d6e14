/* main: the ddpmc command line. Each command is one function; main only
 * dispatches and turns a non-zero status into the exit code. Errors are
 * printed as one line on stderr by the command that found them.
 *
 *   ddpmc compile MODEL.lua [-o OUT] [--target cpu|opencl|all] [--cpu NAME|help] [--report]
 *   ddpmc inspect MODEL.lua [--json] [--set K=V]...
 *   ddpmc graph   MODEL.lua [--entry NAME] [--dot] [--set K=V]...
 *   ddpmc run     MODEL.lua --entry NAME [--weights W] [--inputs I] -o OUT
 *                 [--interp] [--seed S] [--set K=V]...
 *   ddpmc import  DIR -o MODEL.lua [--force] */
#include <stdio.h>
#include <string.h>

#include "driver.h"

static void usage(FILE *f)
{
	fputs("usage: ddpmc COMMAND MODEL.lua [options]\n"
	      "  compile MODEL.lua [-o OUT] [--target cpu|opencl|all] [--cpu NAME|help] [--report]\n"
	      "                                      a standalone train/sample executable\n"
	      "  inspect MODEL.lua [--json]          parameters, FLOPs, ops\n"
	      "  graph   MODEL.lua [--entry E] [--dot]  the graph IR as text or Graphviz\n"
	      "  run     MODEL.lua --entry E [--weights W] [--inputs I.safetensors]\n"
	      "          -o O.safetensors --interp [--seed S]\n"
	      "  import  DIR -o MODEL.lua [--force]  the model script of a diffusers UNet2DModel\n"
	      "                                      folder (its scheduler's program too)\n"
	      "common: --set NAME=VALUE passes an option to the script (ddpm.option)\n", f);
	fprintf(f, "        --lua-steps M, --lua-memory MB: the script's budget (million Lua\n"
	        "        instructions, default %d) and memory cap (default %d MB)\n",
	        FE_DEFAULT_MSTEPS, FE_DEFAULT_MEMORY_MB);
}

static const struct {
	const char *name;
	int (*run)(const drv_args *a);
} commands[] = {
	{ "compile", drv_compile },
	{ "inspect", drv_inspect },
	{ "graph", drv_graph },
	{ "run", drv_run },
	{ "import", drv_import },
};

int main(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
		if (strcmp(argv[1], commands[i].name) != 0)
			continue;
		drv_args a;
		if (drv_parse_args(argc - 2, argv + 2, &a) < 0)
			return 2;
		return commands[i].run(&a) == 0 ? 0 : 1;
	}
	fprintf(stderr, "ddpmc: unknown command '%s' (try ddpmc --help)\n", argv[1]);
	return 2;
}
