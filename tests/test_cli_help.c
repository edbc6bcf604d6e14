/* cli_help: the help, version and early refusals of both command lines,
 * and docs/cli.md against the help texts.
 *
 * tests/models/cli_tiny.lua (28x28x1) is compiled once (--target cpu) with
 * the built driver into a temporary folder. Checked:
 *   - `ddpmc [COMMAND] --help` and `./tiny [COMMAND] --help` list every
 *     flag with its meaning and, when it takes a value, its default, and
 *     an example; `./tiny train --help` says how the batch is set;
 *   - `ddpmc --version` names ddpmc's and LLVM's versions, and the
 *     executable's --version repeats them with the model and its hash
 *     (another for the same model compiled --target all, whose OpenCL
 *     program the hash covers too);
 *   - a flag of another ddpmc command is refused, naming its command;
 *   - `ddpmc compile -o` into a missing folder is refused before the
 *     script runs, and `./tiny sample --out` into one before sampling;
 *     `./tiny tune` is refused on the CPU and without OpenCL code;
 *   - `./tiny sample --n 16` writes a 346 x 346 grid (28 px magnified 3
 *     times, docs/cli.md's rule) and `--scale 1` a 122 x 122 one;
 *   - docs/cli.md: the flags in the tables of each command's section are
 *     exactly those its --help lists (ddpmc's shared flags in the table
 *     before the first command), so the two cannot drift apart. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static char dir[64], exe[128];
static char out[1 << 16];

enum { MAXFLAGS = 96 };

typedef struct {
	char name[MAXFLAGS][32];
	int n;
} flag_set;

static void add_flag(flag_set *s, const char *name, size_t len)
{
	for (int i = 0; i < s->n; i++)
		if (strlen(s->name[i]) == len && !strncmp(s->name[i], name, len))
			return;
	assert_true(s->n < MAXFLAGS && len < sizeof s->name[0]);
	snprintf(s->name[s->n++], sizeof s->name[0], "%.*s", (int)len, name);
}

static int has_flag(const flag_set *s, const char *name)
{
	for (int i = 0; i < s->n; i++)
		if (!strcmp(s->name[i], name))
			return 1;
	return 0;
}

/* Runs a shell command into out (stdout alone); its exit status. */
static int run(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	return tu_shell_output(cmd, "2>/dev/null", out, sizeof out);
}

/* The flags of a help text (lines "  -NAME ..."), each checked for a
 * meaning and, when it takes a value, a default. */
static void help_flags(const char *help, flag_set *s)
{
	for (const char *l = strstr(help, "\n  -"); l; l = strstr(l + 1, "\n  -")) {
		char line[512];
		snprintf(line, sizeof line, "%.*s", (int)strcspn(l + 1, "\n"), l + 1);
		size_t name = strcspn(line + 2, " [");
		int valued = line[2 + name] == ' ' && line[3 + name] != ' ';
		if (strlen(line) < 34)
			fail_msg("a help line without a meaning: '%s'", line);
		if (valued && !strstr(line, "(default: ") && !strstr(line, "(required)"))
			fail_msg("a flag without its default: '%s'", line);
		add_flag(s, line + 2, name);
	}
}

/* The help of `prog cmd --help` (prog called `name`): its flags; it ends
 * with an example. */
static void command_help(const char *prog, const char *name, const char *cmd, flag_set *s)
{
	char example[160];
	assert_int_equal(run("'%s' %s --help", prog, cmd), 0);
	snprintf(example, sizeof example, "  example: %s %s", name, cmd);
	if (!strstr(out, example))
		fail_msg("%s %s --help has no example:\n%s", prog, cmd, out);
	memset(s, 0, sizeof *s);
	help_flags(out, s);
}

/* The flags named in the first cell of the table rows of docs/cli.md
 * between the heading `heading` (a line) and the next heading of its
 * level or above; heading NULL: the text between the title and the
 * first "## ". */
static void doc_flags(const char *doc, const char *heading, flag_set *s)
{
	const char *at = strchr(doc, '\n') + 1;        /* after the title */
	int level = 2;
	if (heading) {
		char find[96];
		snprintf(find, sizeof find, "\n%s\n", heading);
		at = strstr(doc, find);
		if (!at)
			fail_msg("docs/cli.md has no section '%s'", heading);
		at++;
		level = (int)strspn(at, "#");
		at = strchr(at, '\n') + 1;
	}
	memset(s, 0, sizeof *s);
	for (const char *l = at; *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : l + strlen(l)) {
		int hashes = (int)strspn(l, "#");
		if (hashes && hashes <= level && l[hashes] == ' ')
			break;
		if (l[0] != '|')
			continue;
		const char *cell = l + 1, *end = cell;
		while (*end && *end != '\n' && !(*end == '|' && end[-1] != '\\'))
			end++;
		for (const char *f = strstr(cell, "`-"); f && f < end; f = strstr(f + 1, "`-"))
			add_flag(s, f + 1, strspn(f + 1, "-abcdefghijklmnopqrstuvwxyz"));
	}
}

/* help and docs name the same flags for command `what`. */
static void same_flags(const char *what, const flag_set *help, const flag_set *docs)
{
	for (int i = 0; i < help->n; i++)
		if (!has_flag(docs, help->name[i]))
			fail_msg("%s --help lists %s, but docs/cli.md's tables for it do not", what,
			         help->name[i]);
	for (int i = 0; i < docs->n; i++)
		if (!has_flag(help, docs->name[i]))
			fail_msg("docs/cli.md lists %s for %s, but its --help does not", docs->name[i], what);
}

static char *read_doc(void)
{
	char path[512];
	snprintf(path, sizeof path, "%s/docs/cli.md", DDPMC_SOURCE_DIR);
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	static char doc[1 << 18];
	size_t n = fread(doc, 1, sizeof doc - 1, f);
	doc[n] = 0;
	fclose(f);
	return doc;
}

static int setup(void **unused)
{
	(void)unused;
	tu_tmpdir(dir, sizeof dir);
	snprintf(exe, sizeof exe, "%s/tiny", dir);
	return tu_compile("tests/models/cli_tiny.lua", "--target cpu", exe);
}

static int teardown(void **unused)
{
	(void)unused;
	tu_rmtree(dir);
	return 0;
}

static void test_docs_match_help(void **unused)
{
	static const char *const ddpmc_cmds[] = { "compile", "inspect", "graph", "run" };
	static const char *const exe_cmds[] = { "train", "sample", "eval", "export", "tune", "info" };
	const char *doc = read_doc();
	flag_set help, docs, shared;
	char heading[96];
	doc_flags(doc, NULL, &shared);
	for (int c = 0; c < TU_LEN(ddpmc_cmds); c++) {
		command_help(DDPMC_BIN, "ddpmc", ddpmc_cmds[c], &help);
		snprintf(heading, sizeof heading, "## ddpmc %s", ddpmc_cmds[c]);
		const char *line = strstr(doc, heading);
		assert_non_null(line);
		snprintf(heading, sizeof heading, "%.*s", (int)strcspn(line, "\n"), line);
		doc_flags(doc, heading, &docs);
		for (int i = 0; i < shared.n; i++)
			add_flag(&docs, shared.name[i], strlen(shared.name[i]));
		same_flags(ddpmc_cmds[c], &help, &docs);
	}
	for (int c = 0; c < TU_LEN(exe_cmds); c++) {
		command_help(exe, "tiny", exe_cmds[c], &help);
		snprintf(heading, sizeof heading, "### %s", exe_cmds[c]);
		doc_flags(doc, heading, &docs);
		same_flags(exe_cmds[c], &help, &docs);
	}
}

static void test_help_lists_flags(void **unused)
{
	flag_set s;
	command_help(DDPMC_BIN, "ddpmc", "compile", &s);
	assert_true(has_flag(&s, "-o") && has_flag(&s, "--target") && has_flag(&s, "--set"));
	CONTAINS(out, "(default: all)", "(default: 1000)");
	command_help(exe, "tiny", "train", &s);
	assert_true(has_flag(&s, "--steps") && has_flag(&s, "--lr") && !has_flag(&s, "--batch"));
	CONTAINS(out, "--set batch=N", "(default: runs/latest)");
	assert_int_equal(run("'%s' --help", DDPMC_BIN), 0);
	CONTAINS(out, "ddpmc compile MODEL.lua: ", "ddpmc run MODEL.lua: ", "--version");
	assert_int_equal(run("'%s' --help", exe), 0);
	CONTAINS(out, "tiny train: ", "tiny export: ", "  --sampler ddpm|ddim ", "--version");
}

static void test_versions(void **unused)
{
	char ddpmc[256];
	assert_int_equal(run("'%s' --version", DDPMC_BIN), 0);
	snprintf(ddpmc, sizeof ddpmc, "%.200s", out);
	if (!tu_starts(ddpmc, "ddpmc ") || !strstr(ddpmc, ", LLVM ") || tu_lines(ddpmc) != 1)
		fail_msg("ddpmc --version: %s", ddpmc);
	assert_int_equal(run("'%s' --version", exe), 0);
	if (!tu_starts(out, ddpmc))
		fail_msg("tiny --version does not start with ddpmc's '%s': %s", ddpmc, out);
	const char *hash = strstr(out, "(descriptor fnv1a64 ");
	CONTAINS(out, "cli_tiny.lua");
	assert_non_null(hash);
	assert_int_equal(strspn(hash + 20, "0123456789abcdef"), 16);
	/* the same CPU program with an OpenCL program beside it: another hash */
	char cpu_only[32], both[128];
	snprintf(cpu_only, sizeof cpu_only, "%.16s", hash + 20);
	snprintf(both, sizeof both, "%s/tiny_all", dir);
	assert_int_equal(tu_compile("tests/models/cli_tiny.lua", "--target all", both), 0);
	assert_int_equal(run("'%s' --version", both), 0);
	assert_non_null(hash = strstr(out, "(descriptor fnv1a64 "));
	if (!strncmp(hash + 20, cpu_only, 16))
		fail_msg("--target all and --target cpu executables share the hash %s", cpu_only);
}

static void test_refusals_come_first(void **unused)
{
	char cmd[1024];
	snprintf(cmd, sizeof cmd, "'%s' inspect '%s/models/unet.lua' --report", DDPMC_BIN,
	         DDPMC_SOURCE_DIR);
	assert_int_equal(tu_stderr_of(cmd, out, sizeof out), 2);
	CONTAINS(out, "ddpmc inspect: --report is a flag of compile, not of inspect");
	snprintf(cmd, sizeof cmd, "'%s' run '%s/models/unet.lua' --entry forward -o x --target cpu",
	         DDPMC_BIN, DDPMC_SOURCE_DIR);
	assert_int_equal(tu_stderr_of(cmd, out, sizeof out), 2);
	CONTAINS(out, "--target is a flag of compile, not of run");
	/* the output is refused before the script runs: this one would fail */
	char script[256];
	tu_write(dir, "fails.lua", "error('this script ran')\n", -1, script, sizeof script);
	snprintf(cmd, sizeof cmd, "'%s' compile '%s' -o /nonexistent/x", DDPMC_BIN, script);
	assert_int_equal(tu_stderr_of(cmd, out, sizeof out), 1);
	CONTAINS(out, "ddpmc compile: -o /nonexistent/x: cannot write in /nonexistent");
	if (strstr(out, "this script ran") || tu_lines(out) != 1)
		fail_msg("the script ran before its -o was refused: %s", out);
	snprintf(cmd, sizeof cmd, "'%s' sample --n 4 --out /nonexistent/g.png", exe);
	assert_int_equal(tu_output_of(cmd, out, sizeof out), 1);
	if (strstr(out, "sample:") || tu_lines(out) != 1)
		fail_msg("sample started before refusing its --out: %s", out);
	CONTAINS(out, "tiny: --out /nonexistent/g.png: cannot write in /nonexistent");
	/* tune times OpenCL kernels: none on the CPU, none in a CPU-only executable */
	snprintf(cmd, sizeof cmd, "'%s' tune --device cpu", exe);
	assert_int_equal(tu_stderr_of(cmd, out, sizeof out), 1);
	CONTAINS(out, "tune times the OpenCL kernels' variants: give --device opencl", "ddpmc compile --tune");
	snprintf(cmd, sizeof cmd, "'%s' tune", exe);
	assert_int_equal(tu_stderr_of(cmd, out, sizeof out), 1);
	CONTAINS(out, "--device opencl: this executable was compiled for the CPU only");
}

/* The PNG's width and height (IHDR: bytes 16..23, big-endian). */
static void png_size(const char *path, uint32_t *w, uint32_t *h)
{
	unsigned char head[24];
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	assert_int_equal(fread(head, 1, sizeof head, f), sizeof head);
	fclose(f);
	*w = (uint32_t)head[16] << 24 | (uint32_t)head[17] << 16 | (uint32_t)head[18] << 8 | head[19];
	*h = (uint32_t)head[20] << 24 | (uint32_t)head[21] << 16 | (uint32_t)head[22] << 8 | head[23];
}

static void test_grid_of_16(void **unused)
{
	uint32_t w, h;
	assert_int_equal(run("cd '%s' && '%s' sample --n 16 --sampler ddim --steps 1 --out g.png", dir,
	                     exe), 0);
	png_size(strcat(strcpy(out, dir), "/g.png"), &w, &h);
	assert_int_equal(w, 4 * (3 * 28 + 2) + 2);
	assert_int_equal(h, 346);
	assert_int_equal(run("cd '%s' && '%s' sample --n 16 --sampler ddim --steps 1 --out g.png "
	                     "--scale 1", dir, exe), 0);
	png_size(strcat(strcpy(out, dir), "/g.png"), &w, &h);
	assert_int_equal(w, 122);
	assert_int_equal(h, 122);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_help_lists_flags),
		cmocka_unit_test(test_versions),
		cmocka_unit_test(test_refusals_come_first),
		cmocka_unit_test(test_grid_of_16),
		cmocka_unit_test(test_docs_match_help),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
