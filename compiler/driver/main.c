/* main: the ddpmc command line. Each command is one function; main only
 * dispatches, prints the help (from args.c's flag table) and the version,
 * and turns a non-zero status into the exit code. Errors are printed as
 * one line on stderr by the command that found them.
 *
 *   ddpmc COMMAND MODEL.lua [FLAGS]     compile, inspect, graph, run
 *   ddpmc import DIR -o MODEL.lua       a diffusers folder's model script
 *   ddpmc [COMMAND] --help              every flag: meaning, default; an example
 *   ddpmc --version                     ddpmc's version and LLVM's */
#include <stdio.h>
#include <string.h>

#include "driver.h"
#include "llvm_backend.h"

#ifndef DDPMC_VERSION
#define DDPMC_VERSION "unknown"
#endif

static const struct {
	const char *name;
	unsigned bit;
	int (*run)(const drv_args *a);
	const char *operand, *summary, *example;
} commands[] = {
	{ "compile", DRV_COMPILE, drv_compile, "MODEL.lua", "a standalone train/sample executable",
	  "ddpmc compile models/unet.lua --set batch=64 -o unet" },
	{ "inspect", DRV_INSPECT, drv_inspect, "MODEL.lua", "parameters, FLOPs and ops per entry",
	  "ddpmc inspect models/ddpm_cifar10.lua --json" },
	{ "graph", DRV_GRAPH, drv_graph, "MODEL.lua", "the graph IR as text or Graphviz",
	  "ddpmc graph models/unet.lua --entry forward --dot" },
	{ "run", DRV_RUN, drv_run, "MODEL.lua", "runs one entry on named tensors",
	  "ddpmc run models/unet.lua --entry forward --inputs in.safetensors -o out.safetensors" },
	{ "import", DRV_IMPORT, drv_import, "DIR",
	  "the model script of a diffusers UNet2DModel folder, its scheduler's program too",
	  "ddpmc import exported/ -o models/mine.lua" },
};
#define NCOMMANDS (sizeof commands / sizeof *commands)

const char *drv_command_names(unsigned cmds)
{
	static char buf[64];
	size_t at = 0;
	int left = __builtin_popcount(cmds);
	buf[0] = 0;
	for (size_t c = 0; c < NCOMMANDS; c++)
		if (cmds & commands[c].bit)
			at += (size_t)snprintf(buf + at, sizeof buf - at, "%s%s", commands[c].name,
			                       --left > 1 ? ", " : left == 1 ? " and " : "");
	return buf;
}

const char *drv_version(char *buf, size_t len)
{
	char llvm[32];
	snprintf(buf, len, "ddpmc %s, LLVM %s", DDPMC_VERSION, llvm_version(llvm, sizeof llvm));
	return buf;
}

/* One command's help, or every command's (cmd -1). */
static void help(int cmd)
{
	if (cmd < 0)
		printf("usage: ddpmc COMMAND MODEL.lua [FLAGS]   (ddpmc COMMAND --help: that command "
		       "alone)\n       ddpmc --version                  ddpmc's version and LLVM's\n");
	for (size_t c = 0; c < NCOMMANDS; c++) {
		if (cmd >= 0 && (size_t)cmd != c)
			continue;
		printf("%sddpmc %s %s: %s\n", cmd < 0 ? "\n" : "", commands[c].name, commands[c].operand,
		       commands[c].summary);
		drv_help_flags(commands[c].bit);
		printf("  example: %s\n", commands[c].example);
	}
}

static int is_help(const char *arg)
{
	return !strcmp(arg, "-h") || !strcmp(arg, "--help");
}

static int find_command(const char *name)
{
	for (size_t c = 0; c < NCOMMANDS; c++)
		if (!strcmp(name, commands[c].name))
			return (int)c;
	return -1;
}

int main(int argc, char **argv)
{
	char version[96];
	if (argc < 2 || is_help(argv[1]) || !strcmp(argv[1], "help")) {
		help(argc > 2 ? find_command(argv[2]) : -1);
		return argc < 2 ? 2 : 0;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("%s\n", drv_version(version, sizeof version));
		return 0;
	}
	int c = find_command(argv[1]);
	if (c < 0) {
		fprintf(stderr, "ddpmc: unknown command '%s' (try ddpmc --help)\n", argv[1]);
		return 2;
	}
	for (int i = 2; i < argc; i++)
		if (is_help(argv[i])) {
			help(c);
			return 0;
		}
	drv_args a;
	if (drv_parse_args(argc - 2, argv + 2, commands[c].bit, commands[c].name, &a) < 0)
		return 2;
	return commands[c].run(&a) == 0 ? 0 : 1;
}
