/* compile: MODEL.lua -> one standalone executable.
 *
 * The pipeline: run the script (frontend), verify, choose which
 * convolutions run by Winograd's algorithm, lower every entry to kernels
 * (fusion + memory plan), fix the CPU kernels' register tiles (both
 * choices from the tuning file, measured first with --tune, else the cost
 * model: llvm_tune.c), verify the kernel IR, render the kernels
 * for the targets asked for — native code through the LLVM backend (cpu),
 * OpenCL C source (opencl), both (all, the default) — and put them with the
 * program descriptor into objects through the LLVM backend, then link
 * those with the runtime's main and library. The system C compiler driver
 * ($CC, default cc) is used only as the linker.
 * --cpu and the output's folder are checked first (--cpu help lists LLVM's
 * CPU names); the executable embeds ddpmc's and LLVM's versions
 * (ddpmc_build, which its --version prints).
 * --report prints the target the kernels were scheduled for (kir_target),
 * then every kernel with its ops, FLOPs, bytes, register tile and the memory plan's
 * peak; DDPMC_DUMP=kir dumps the kernel IR, DDPMC_DUMP=opencl the
 * OpenCL C. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cl_render.h"
#include "cmdline.h"
#include "driver.h"
#include "kir.h"
#include "llvm_backend.h"

#ifndef DDPMC_MAIN_LIB
#define DDPMC_MAIN_LIB "libddpmc_main.a"
#endif
#ifndef DDPMC_LINK_FLAGS
#define DDPMC_LINK_FLAGS ""
#endif
#ifndef DDPMC_STB_LIB
#define DDPMC_STB_LIB "-lstb"
#endif
#ifndef DDPMC_RUNTIME_LIB
#define DDPMC_RUNTIME_LIB "libddpmc_runtime.a"
#endif
#ifndef DDPMC_MPI_LIBS
#define DDPMC_MPI_LIBS ""               /* space-separated: the main library's MPI */
#endif

/* Lowers every entry for target t; NULL on failure (message printed). */
static kir_program **lower_all(ir_graph *g, const kir_target *t)
{
	char err[512];
	kir_program **progs = calloc((size_t)g->nentries + 1, sizeof *progs);
	for (int i = 0; progs && i < g->nentries; i++) {
		progs[i] = kir_lower(g, &g->entries[i], t);
		if (!progs[i] || kir_verify(progs[i], err, sizeof err) < 0) {
			fprintf(stderr, "ddpmc: internal error lowering '%s': %s\n", g->entries[i].name,
			        progs[i] ? err : g->err);
			for (int k = 0; k <= i; k++)
				kir_program_free(progs[k]);
			free(progs);
			return NULL;
		}
	}
	return progs;
}

static const char *env_or(const char *name, const char *fallback)
{
	const char *v = getenv(name);
	return v && *v ? v : fallback;
}

/* Runs argv, waits; 0 when it exited 0. */
static int run_tool(char *const *argv)
{
	pid_t pid = fork();
	if (pid == 0) {
		execvp(argv[0], argv);
		_exit(127);
	}
	int status = 0;
	if (pid < 0 || waitpid(pid, &status, 0) < 0)
		return -1;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

enum { OBJECT_PARTS = 17, MAXLIBS = 8 };

/* Appends the words of `list` (space-separated, at most MAXLIBS) to argv;
 * buf holds their copies. */
static int add_words(char **argv, int n, const char *list, char *buf, size_t len)
{
	snprintf(buf, len, "%s", list);
	int added = 0;
	for (char *w = strtok(buf, " "); w && added < MAXLIBS; w = strtok(NULL, " "))
		argv[n + added++] = w;
	return n + added;
}

static int link_executable(char *const *objs, int nobj, const char *out)
{
	char *argv[OBJECT_PARTS + MAXLIBS + 14], mpi[4096];
	int n = 0;
	argv[n++] = (char *)env_or("CC", "cc");
	if (*DDPMC_LINK_FLAGS)                  /* a sanitizer build's runtime needs them */
		argv[n++] = DDPMC_LINK_FLAGS;
	argv[n++] = "-o";
	argv[n++] = (char *)out;
	for (int i = 0; i < nobj; i++)
		argv[n++] = objs[i];
	argv[n++] = (char *)env_or("DDPMC_MAIN_LIB", DDPMC_MAIN_LIB);
	argv[n++] = (char *)env_or("DDPMC_RUNTIME_LIB", DDPMC_RUNTIME_LIB);
	argv[n++] = (char *)env_or("DDPMC_STB_LIB", DDPMC_STB_LIB);
	n = add_words(argv, n, DDPMC_MPI_LIBS, mpi, sizeof mpi);
	argv[n++] = "-lOpenCL";
	argv[n++] = "-lz";
	argv[n++] = "-lm";
	argv[n++] = "-lpthread";
	argv[n] = NULL;
	if (run_tool(argv) == 0)
		return 0;
	fprintf(stderr, "ddpmc: linking %s failed (%s %s ...)\n", out, argv[0], objs[0]);
	return -1;
}

/* Code generation is the slow part of compiling: the program goes into
 * OBJECT_PARTS objects (one when there are fewer kernels), the descriptor
 * and the OpenCL source in one, the kernels in the others, compiled by one
 * thread per core, each taking the next part left. More parts than cores
 * even out parts of unequal cost; a fixed number keeps the executable
 * the same on machines with other numbers of cores. */
static int object_parts(kir_program **progs, int n)
{
	int kernels = 0;
	for (int i = 0; i < n; i++)
		kernels += progs[i]->nk;
	return kernels < OBJECT_PARTS ? 1 : OBJECT_PARTS;
}

static int compile_threads(int parts)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	return cpus < 1 ? 1 : cpus > parts ? parts : (int)cpus;
}

/* models/unet.lua -> unet */
static void default_output(const char *model, char *out, size_t len)
{
	const char *base = strrchr(model, '/');
	base = base ? base + 1 : model;
	snprintf(out, len, "%s", base);
	char *dot = strrchr(out, '.');
	if (dot && dot != out)
		*dot = 0;
}

typedef struct {
	int cpu, opencl;
	cl_launch **launch;     /* opencl: per entry, per kernel */
} targets;

/* What the lowering schedules for: the CPU's description when CPU code is
 * made (OpenCL, rendered from the same kernels, then follows it), the
 * GPU's when OpenCL alone; which convolutions run by Winograd as
 * --winograd says (tuned: as measured, else the cost model's). */
static int schedule_target(const drv_args *a, const targets *t, kir_target *kt)
{
	char err[1200];
	if (!t->cpu)
		cl_kir_target(&cl_target_default, kt);
	else if (llvm_kir_target(a->cpu, kt, err, sizeof err) < 0) {
		fprintf(stderr, "ddpmc compile: %s\n", err);
		return -1;
	}
	static const char *const ways[] = { [KIR_WINOGRAD_CHOSEN] = "tuned", [KIR_WINOGRAD_NONE] = "none",
		                            [KIR_WINOGRAD_2X2] = "2x2", [KIR_WINOGRAD_4X4] = "4x4" };
	for (int w = 0; w < (int)(sizeof ways / sizeof *ways); w++)
		if (!strcmp(a->winograd ? a->winograd : "tuned", ways[w])) {
			kt->winograd = (kir_winograd)w;
			return 0;
		}
	fprintf(stderr, "ddpmc compile: --winograd %s: expected tuned, none, 2x2 or 4x4\n", a->winograd);
	return -1;
}

static int parse_targets(const char *name, targets *t)
{
	const char *n = name ? name : "all";
	t->cpu = !strcmp(n, "cpu") || !strcmp(n, "all");
	t->opencl = !strcmp(n, "opencl") || !strcmp(n, "all");
	if (t->cpu || t->opencl)
		return 0;
	fprintf(stderr, "ddpmc compile: --target %s: expected cpu, opencl or all\n", n);
	return -1;
}

static void put_cl_launch(rt_strbuf *b, int e, int k, void *ctx)
{
	const targets *t = ctx;
	cl_launch_json(b, &t->launch[e][k]);
}

static int emit_and_link(const drv_args *a, ir_graph *g, kir_program **progs, targets *t,
                         const char *out)
{
	char err[1024], names[OBJECT_PARTS][4096], *objs[OBJECT_PARTS];
	rt_strbuf json = { 0 }, data = { 0 }, cl = { 0 };
	if (t->opencl && !(t->launch = cl_render(progs, g->nentries, NULL, &cl))) {
		fprintf(stderr, "ddpmc: out of memory rendering OpenCL\n");
		return -1;
	}
	kir_share(progs, g->nentries);
	kir_describe_opts opts = { !t->cpu, t->opencl ? put_cl_launch : NULL, t };
	kir_describe(g, a->model, progs, g->nentries, &opts, &json, &data);
	rt_sb_put(&data, "", 1);                 /* never empty */
	char build[96];
	drv_version(build, sizeof build);
	llvm_blob blobs[] = { { "ddpmc_program_json", json.p, json.len },
	                      { "ddpmc_program_data", data.p, data.len },
	                      { "ddpmc_opencl_source", cl.p, cl.len },
	                      { "ddpmc_build", build, strlen(build) + 1 } };
	int ncpu = t->cpu ? g->nentries : 0;
	int parts = object_parts(progs, ncpu);
	for (int i = 0; i < parts; i++) {
		snprintf(names[i], sizeof names[i], "%s.%d.o", out, i);
		objs[i] = names[i];
	}
	int rc = json.oom || data.oom || cl.oom ? -1 : 0;
	if (rc == 0 && llvm_emit_objects(progs, ncpu, blobs, 4, a->cpu, parts, compile_threads(parts), objs,
	                                 err, sizeof err) < 0) {
		fprintf(stderr, "ddpmc: code generation failed: %s\n", err);
		rc = -1;
	}
	if (rc == 0)
		rc = link_executable(objs, parts, out);
	for (int i = 0; i < parts && !getenv("DDPMC_KEEP_OBJECT"); i++)
		unlink(objs[i]);
	if (getenv("DDPMC_DUMP") && !strcmp(getenv("DDPMC_DUMP"), "opencl") && cl.p)
		fputs(cl.p, stderr);
	cl_launches_free(t->launch, progs, g->nentries);
	rt_sb_free(&json);
	rt_sb_free(&data);
	rt_sb_free(&cl);
	return rc;
}

/* --cpu: "help" lists LLVM's CPU names (*listed = 1); any other name must
 * be one LLVM can generate code for. Before any thread starts (it forks). */
static int check_cpu(const char *cpu, int *listed)
{
	char err[1200];
	*listed = cpu && !strcmp(cpu, "help");
	if (*listed)
		return llvm_list_cpus(stdout);
	if (llvm_check_cpu(cpu, err, sizeof err) == 0)
		return 0;
	fprintf(stderr, "ddpmc compile: --cpu %s: %s; `ddpmc compile MODEL.lua --cpu help` lists the "
	        "CPU names\n", cpu, err);
	return -1;
}

/* The tuning file: --tuning, else "tuning" in ddpmc's cache folder. */
static int tuning_path(const drv_args *a, char *path, size_t len)
{
	char dir[4000];
	if (a->tuning)
		return snprintf(path, len, "%s", a->tuning) < (int)len;
	return rt_cache_dir(NULL, dir, sizeof dir) && snprintf(path, len, "%s/tuning", dir) < (int)len;
}

/* The tuning file's results for this machine, or an empty set when it has
 * none; *trusted = 0 when the file is damaged or not one (reported: it is
 * left out, and --tune does not overwrite it). */
static kir_tuning *load_tuning(const drv_args *a, const char *path, const char *key, int *trusted)
{
	char err[4400];
	kir_tuning *db = *path ? kir_tuning_load(path, key, err, sizeof err) : NULL;
	*trusted = db != NULL;
	if (*path && !db)
		fprintf(stderr, "ddpmc compile: warning: tuning file %s; ignored: the cost model picks "
		        "the tiles and algorithms%s\n", err,
		        a->tune_seconds ? " and --tune leaves the file as it is" : "");
	return db ? db : kir_tuning_new(key);
}

static int save_tuning(const kir_tuning *db, char *path)
{
	char err[4400];
	if (rt_make_parents(path) < 0) {
		fprintf(stderr, "ddpmc compile: --tune: cannot create the folder of %s: %s\n", path,
		        strerror(errno));
		return -1;
	}
	if (kir_tuning_save(db, path, err, sizeof err) < 0) {
		fprintf(stderr, "ddpmc compile: --tune: %s\n", err);
		return -1;
	}
	return 0;
}

/* The tuned CPU schedule around the lowering: the algorithm of each
 * convolution (llvm_choose_algorithms), then, once lowered, the register
 * tiles (llvm_fix_tiles), each from the tuning file's results for this
 * machine, else measured first with --tune and added to it, else the cost
 * model's. *progs: the lowered programs (NULL on failure). */
static int lower_tuned(const drv_args *a, ir_graph *g, kir_target *kt, kir_program ***progs)
{
	char key[256], path[4096] = "", err[4400] = "";
	*progs = NULL;
	if (llvm_machine_key(a->cpu, key, sizeof key) < 0)
		return -1;
	if (!tuning_path(a, path, sizeof path))
		path[0] = '\0';
	int trusted;
	kir_tuning *db = load_tuning(a, path, key, &trusted);
	double budget = a->tune_seconds < 0 ? DRV_TUNE_SECONDS : (double)a->tune_seconds;
	llvm_tune_opts o = { a->cpu, db, a->tune_seconds != 0, llvm_tune_deadline(budget), stderr };
	int rc = llvm_choose_algorithms(g, kt, &o, err, sizeof err);
	if (rc == 0 && !(*progs = lower_all(g, kt)))
		rc = -1;
	else if (rc == 0)
		rc = llvm_fix_tiles(*progs, g->nentries, &o, err, sizeof err);
	if (rc < 0 && *err)
		fprintf(stderr, "ddpmc compile: tuning: %s\n", err);
	if (rc == 0 && a->tune_seconds && trusted && *path)
		rc = save_tuning(db, path);
	kt->measured = NULL;
	kir_tuning_free(db);
	return rc;
}

int drv_compile(const drv_args *a)
{
	char out[1024];
	targets t = { 0 };
	int listed;
	default_output(a->model, out, sizeof out);
	const char *path = a->output ? a->output : out;
	if (parse_targets(a->target, &t) < 0 || check_cpu(a->cpu, &listed) < 0)
		return -1;
	if (listed)
		return 0;
	if (drv_check_output("compile: -o", path) < 0)
		return -1;
	kir_target kt;
	ir_graph *g = schedule_target(a, &t, &kt) == 0 ? drv_load(a) : NULL;
	if (!g)
		return -1;
	if (a->report)
		kir_target_report(&kt, stdout);
	kir_program **progs = NULL;
	int rc;
	if (t.cpu)
		rc = lower_tuned(a, g, &kt, &progs);
	else
		rc = (progs = lower_all(g, &kt)) ? 0 : -1;
	for (int i = 0; rc == 0 && i < g->nentries; i++) {
		if (a->report)
			kir_report(progs[i], stdout);
		if (getenv("DDPMC_DUMP") && !strcmp(getenv("DDPMC_DUMP"), "kir"))
			kir_dump(progs[i], stderr);
	}
	if (rc == 0)
		rc = emit_and_link(a, g, progs, &t, path);
	for (int i = 0; progs && i < g->nentries; i++)
		kir_program_free(progs[i]);
	free(progs);
	ir_free(g);
	return rc;
}
