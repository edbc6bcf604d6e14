/* compile: MODEL.lua -> one standalone executable.
 *
 * The pipeline: run the script (frontend), verify, then for each target
 * asked for — native code through the LLVM backend (cpu), OpenCL C
 * source (opencl), both (all, the default) — lower every entry to
 * kernels scheduled for that target (fusion, layouts, memory plan). For
 * the CPU: choose which convolutions run by Winograd's algorithm and fix
 * the kernels' register tiles (both from the tuning file, measured first
 * with --tune, else the cost model: llvm_tune.c); the GPU's schedule is
 * the OpenCL backend's (cl_kir_target). Verify the kernel IR, render
 * the kernels, and put them with each target's program descriptor into
 * objects through the LLVM backend, then link those with the runtime's
 * main and library. The system C compiler driver
 * ($CC, default cc) is used only as the linker.
 * --cpu and the output's folder are checked first (--cpu help lists LLVM's
 * CPU names); the executable embeds ddpmc's and LLVM's versions
 * (ddpmc_build, which its --version prints).
 * --report prints, per target, what the kernels were scheduled for
 * (kir_target), then every kernel with its ops, FLOPs, bytes, register
 * tile and the memory plan's peak; DDPMC_DUMP=kir dumps the kernel IR, DDPMC_DUMP=opencl the
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

/* --winograd: which 3x3 stride-1 convolutions run by Winograd (tuned: as
 * measured, else the cost model's). */
static int winograd_mode(const drv_args *a, kir_winograd *w)
{
	static const char *const ways[] = { [KIR_WINOGRAD_CHOSEN] = "tuned", [KIR_WINOGRAD_NONE] = "none",
		                            [KIR_WINOGRAD_2X2] = "2x2", [KIR_WINOGRAD_4X4] = "4x4" };
	for (int i = 0; i < (int)(sizeof ways / sizeof *ways); i++)
		if (!strcmp(a->winograd ? a->winograd : "tuned", ways[i])) {
			*w = (kir_winograd)i;
			return 0;
		}
	fprintf(stderr, "ddpmc compile: --winograd %s: expected tuned, none, 2x2 or 4x4\n", a->winograd);
	return -1;
}

/* What the lowering schedules for: the CPU's description for the CPU's
 * kernels, the GPU's for the OpenCL kernels (each target is lowered on
 * its own), the way --winograd says for both. */
static int schedule_targets(const drv_args *a, const targets *t, kir_target *cpu, kir_target *gpu)
{
	char err[1200];
	kir_winograd w;
	if (winograd_mode(a, &w) < 0)
		return -1;
	if (t->cpu && llvm_kir_target(a->cpu, cpu, err, sizeof err) < 0) {
		fprintf(stderr, "ddpmc compile: %s\n", err);
		return -1;
	}
	cl_kir_target(&cl_target_default, gpu);
	cpu->winograd = gpu->winograd = w;
	return 0;
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

/* The programs of an executable, each lowered for its target: cpu's
 * kernels become native functions, gpu's OpenCL kernels (NULL: no such
 * target). */
typedef struct {
	kir_program **cpu, **gpu;
} lowered;

/* The descriptors (program.h): the first program's (the CPU's, else the
 * GPU's) into json and data, and with both targets the GPU's into cl_json
 * and cl_data; the OpenCL source into cl. */
static int describe(const drv_args *a, ir_graph *g, const lowered *l, targets *t, rt_strbuf *json,
                    rt_strbuf *data, rt_strbuf *cl_json, rt_strbuf *cl_data, rt_strbuf *cl)
{
	int n = g->nentries;
	if (l->gpu && !(t->launch = cl_render(l->gpu, n, NULL, cl))) {
		fprintf(stderr, "ddpmc: out of memory rendering OpenCL\n");
		return -1;
	}
	kir_describe_opts cpu_opts = { 0 }, gpu_opts = { 1, put_cl_launch, t };
	if (l->cpu) {
		kir_share(l->cpu, n);
		kir_describe(g, a->model, l->cpu, n, &cpu_opts, json, data);
	}
	if (l->gpu) {
		kir_share(l->gpu, n);
		kir_describe(g, a->model, l->gpu, n, &gpu_opts, l->cpu ? cl_json : json, l->cpu ? cl_data : data);
	}
	return 0;
}

static int emit_and_link(const drv_args *a, ir_graph *g, const lowered *l, targets *t, const char *out)
{
	char err[1024], names[OBJECT_PARTS][4096], *objs[OBJECT_PARTS];
	rt_strbuf json = { 0 }, data = { 0 }, cl_json = { 0 }, cl_data = { 0 }, cl = { 0 };
	int rc = describe(a, g, l, t, &json, &data, &cl_json, &cl_data, &cl);
	rt_sb_put(&data, "", 1);                 /* never empty */
	if (l->cpu && l->gpu)
		rt_sb_put(&cl_data, "", 1);
	char build[96];
	drv_version(build, sizeof build);
	llvm_blob blobs[] = { { "ddpmc_program_json", json.p, json.len },
	                      { "ddpmc_program_data", data.p, data.len },
	                      { "ddpmc_opencl_json", cl_json.p, cl_json.len },
	                      { "ddpmc_opencl_data", cl_data.p, cl_data.len },
	                      { "ddpmc_opencl_source", cl.p, cl.len },
	                      { "ddpmc_build", build, strlen(build) + 1 } };
	int nblobs = (int)(sizeof blobs / sizeof *blobs);
	int ncpu = l->cpu ? g->nentries : 0;
	kir_program **code = l->cpu ? l->cpu : l->gpu;
	int parts = object_parts(code, ncpu);
	for (int i = 0; i < parts; i++) {
		snprintf(names[i], sizeof names[i], "%s.%d.o", out, i);
		objs[i] = names[i];
	}
	if (json.oom || data.oom || cl_json.oom || cl_data.oom || cl.oom)
		rc = -1;
	if (rc == 0 && llvm_emit_objects(code, ncpu, blobs, nblobs, a->cpu, parts, compile_threads(parts), objs,
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
	if (l->gpu)
		cl_launches_free(t->launch, l->gpu, g->nentries);
	rt_sb_free(&json);
	rt_sb_free(&data);
	rt_sb_free(&cl_json);
	rt_sb_free(&cl_data);
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

/* --report and DDPMC_DUMP=kir: what each target's lowering made. */
static void report(const drv_args *a, const kir_target *kt, kir_program **progs, int n)
{
	if (a->report)
		kir_target_report(kt, stdout);
	for (int i = 0; i < n; i++) {
		if (a->report)
			kir_report(progs[i], stdout);
		if (getenv("DDPMC_DUMP") && !strcmp(getenv("DDPMC_DUMP"), "kir"))
			kir_dump(progs[i], stderr);
	}
}

static void free_programs(kir_program **progs, int n)
{
	for (int i = 0; progs && i < n; i++)
		kir_program_free(progs[i]);
	free(progs);
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
	kir_target cpu_kt, gpu_kt;
	ir_graph *g = schedule_targets(a, &t, &cpu_kt, &gpu_kt) == 0 ? drv_load(a) : NULL;
	if (!g)
		return -1;
	lowered l = { NULL, NULL };
	int rc = t.cpu ? lower_tuned(a, g, &cpu_kt, &l.cpu) : 0;
	if (rc == 0 && t.cpu)
		report(a, &cpu_kt, l.cpu, g->nentries);
	if (rc == 0 && t.opencl)
		rc = (l.gpu = lower_all(g, &gpu_kt)) ? 0 : -1;
	if (rc == 0 && t.opencl)
		report(a, &gpu_kt, l.gpu, g->nentries);
	if (rc == 0)
		rc = emit_and_link(a, g, &l, &t, path);
	free_programs(l.cpu, g->nentries);
	free_programs(l.gpu, g->nentries);
	ir_free(g);
	return rc;
}
