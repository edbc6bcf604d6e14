/* llvm: the LLVM backend (compiler/codegen/llvm) against the reference
 * interpreter (the cases of kernel_cases.h, for this host; contractions,
 * Winograd convolutions among them, also for AVX2 and AVX-512 code, with
 * each tile candidate the tuner may choose), register tiles within each
 * target's vector registers, plus object files and the check of --cpu
 * names. (The throughput of convolutions is bench/conv_bench's, not a
 * test's.)
 *
 * The backend runs each kernel over its rows split into three ranges run
 * out of order (kernels must be pure functions of their row range).
 *
 * Then RANDOM_SCRIPTS scripts made at random (random_graph.h) compiled
 * for this host; and, on a host that runs it, for x86-64-v3 with every
 * kernel's tile candidate of rank seed % LLVM_TILE_CANDIDATES and the 3x3
 * convolutions by Winograd F(2x2, 3x3) or F(4x4, 3x3), seed by seed in
 * turn (the lowerings test_random_graphs holds to kir_eval, here in
 * machine code). */
#include "kernel_cases.h"
#include "random_graph.h"

#include "llvm_backend.h"

static const char *jit_cpu;     /* the code backend_run makes: NULL this host's, else an LLVM CPU name */
static int tile_choice = -1;    /* >= 0: backend_run gives every kernel its tile candidate of
                                   this rank (its last when it has fewer), as a tuning would */

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

/* The cases are lowered for the CPU they are compiled for. */
static const kir_target *case_target(void)
{
	return tu_cpu_target(jit_cpu);
}

/* Fixes every kernel's tile to its candidate of rank tile_choice, and
 * checks that it fits the vector registers (a tile does; a kernel left
 * untiled, a long reduction's many loads, may need more) and that the
 * backend takes it. */
static void choose_tiles(kir_program *p)
{
	llvm_target t;
	char err[512];
	if (llvm_target_for(jit_cpu, &t, err, sizeof err) < 0)
		fail_msg("%s", err);
	for (int n = 0; n < p->nk; n++) {
		kir_kernel *k = &p->k[n];
		llvm_tile cand[LLVM_TILE_CANDIDATES];
		int nc = llvm_tile_candidates(p, k, &t, cand);
		if (!nc)
			continue;
		const llvm_tile *c = &cand[tile_choice < nc ? tile_choice : nc - 1];
		if (c->var[0] >= 0 && c->registers > t.vector_registers)
			fail_msg("%s: a tile of %d registers, over the target's %d", k->name, c->registers,
			         t.vector_registers);
		k->tile = (kir_tile){ KIR_TILE_TUNED, { c->var[0], c->var[1] }, { c->copies[0], c->copies[1] }, 0 };
		llvm_tile used = llvm_kernel_tile(p, k, &t);
		if (memcmp(used.var, c->var, sizeof used.var) || memcmp(used.copies, c->copies, sizeof used.copies))
			fail_msg("%s: the backend did not take the fixed tile", k->name);
	}
}

static void backend_run(ir_graph *g, kir_program *p, rt_tensorset *state, const rt_tensorset *inputs,
                        rt_tensorset *outputs)
{
	char err[1024], *arena;
	rt_tensorset in = { 0 };
	if (tile_choice >= 0)
		choose_tiles(p);
	llvm_kernel_fn *fns = calloc((size_t)p->nk + 1, sizeof *fns);
	llvm_jit *j = llvm_jit_compile(p, jit_cpu, fns, err, sizeof err);
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

/* --- per target: AVX2 and AVX-512 code ------------------------------------------------------------ */

static const char *x86_cpus[] = { "x86-64-v3", "x86-64-v4" };   /* AVX2 (16 registers), AVX-512 (32) */

/* Whether this host runs the code of x86_cpus[i]; skips the test on
 * hosts that are not x86-64. */
static int host_runs(int i)
{
#if defined(__x86_64__)
	__builtin_cpu_init();
	return i == 0 ? __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")
	              : __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
	                        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
#else
	(void)i;
	skip();
	return 0;
#endif
}

/* Convolutions at the U-Net's sizes, forward and both gradients (3x3 at
 * 28, 14 and 7 pixels, channels-last and not, a 1x1), and matmuls
 * (attention's, a linear layer's): lowered only, never run. */
static const char *tiles_lua =
	"local ddpm = require 'ddpm'\n"
	"local outs = {}\n"
	"local function conv(n, c, o, h, k)\n"
	"  local id = c .. '_' .. o .. '_' .. h .. '_' .. k\n"
	"  local x = ddpm.param('x' .. id, { n, c, h, h }, { init = 'normal', a = 0, b = 1 })\n"
	"  local w = ddpm.param('w' .. id, { o, c, k, k }, { init = 'normal', a = 0, b = 0.1 })\n"
	"  local y = ddpm.conv2d(x, w, { padding = k // 2 })\n"
	"  local g = ddpm.grad(y, { x, w }, ddpm.input('g' .. id, y:shape()))\n"
	"  outs['y' .. id], outs['gx' .. id], outs['gw' .. id] = y, g[1], g[2]\n"
	"end\n"
	"conv(8, 128, 128, 28, 3) conv(8, 64, 64, 14, 3) conv(8, 256, 256, 7, 3) conv(8, 192, 64, 28, 1)\n"
	"conv(8, 24, 40, 13, 3)\n"
	"local q = ddpm.input('q', { 4, 196, 64 })\n"
	"outs.attn = q:matmul(q:transpose(1, 2))\n"
	"outs.linear = ddpm.input('h', { 64, 512 }):matmul(ddpm.input('wl', { 512, 256 }))\n"
	"ddpm.entry('main', outs)\n";

/* Vector spills and reloads inside innermost loops, counted from the
 * comments of LLVM's assembly: a block is in an innermost loop when it is
 * one's header ("This Inner Loop Header") or says it is in such a loop
 * ("in Loop: Header=BB2_11"); a spill is a "32-byte Spill", "64-byte
 * Folded Reload" and the like (16, 32 or 64 bytes: a vector). Prints
 * each function that has some. */
static int inner_loop_spills(const char *text, const char *cpu)
{
	int total = 0, n = 0, inner = 0, nheads = 0;
	char fn[160] = "", block[64] = "", heads[256][64];
	for (const char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
		char l[512];
		size_t len = strcspn(line, "\n");
		snprintf(l, sizeof l, "%.*s", (int)(len < sizeof l - 1 ? len : sizeof l - 1), line);
		if (!strncmp(l, "ddpmc_f", 7) && strchr(l, ':')) {
			if (n)
				print_error("%s: %s spills or reloads %d vector registers in its innermost loops\n", cpu, fn, n);
			snprintf(fn, sizeof fn, "%.*s", (int)(strchr(l, ':') - l), l);
			n = inner = nheads = 0;
		} else if (!strncmp(l, ".LBB", 4) || !strncmp(l, "# %bb.", 6)) {
			snprintf(block, sizeof block, "%.*s", (int)strcspn(l + 2, ":"), l + 2);
			inner = 0;
		}
		const char *h = strstr(l, "in Loop: Header=");
		if (strstr(l, "This Inner Loop Header")) {
			inner = 1;
			if (nheads < 256)
				snprintf(heads[nheads++], sizeof heads[0], "%s", block);
		} else if (h)
			for (int i = 0; i < nheads; i++)
				inner |= !strncmp(h + 16, heads[i], strlen(heads[i])) && h[16 + strlen(heads[i])] == ' ';
		if (inner && (strstr(l, "16-byte") || strstr(l, "32-byte") || strstr(l, "64-byte")) &&
		    (strstr(l, "Spill") || strstr(l, "Reload")))
			n++, total++;
	}
	if (n)
		print_error("%s: %s spills or reloads %d vector registers in its innermost loops\n", cpu, fn, n);
	return total;
}

/* Kernel k is named after op (its name is "kN_op"). */
static int named(const kir_kernel *k, const char *op)
{
	size_t n = k->name ? strlen(k->name) : 0, m = strlen(op);
	return n > m && k->name[n - m - 1] == '_' && !strcmp(k->name + n - m, op);
}

/* For AVX2 and AVX-512 code: the register tile of every direct convolution
 * (forward, input and weight gradients) and matmul needs no more vector
 * registers than the target has (llvm_kernel_tile's count), and the
 * compiled code indeed spills none in its innermost loops. */
static void register_tiles_fit_the_vector_registers(void **state)
{
	static const char *kinds[] = { "conv2d", "conv2d_grad_input", "conv2d_grad_weight", "matmul" };
	char err[1024];
	ir_graph *g = load_script(tiles_lua, NULL, 0);
	for (int c = 0; c < TU_LEN(x86_cpus); c++) {
		host_runs(c);   /* skips off x86-64 */
		llvm_target t;
		if (llvm_target_for(x86_cpus[c], &t, err, sizeof err) < 0)
			fail_msg("%s", err);
		kir_target direct = *tu_cpu_target(x86_cpus[c]);
		direct.winograd = KIR_WINOGRAD_NONE;    /* its transforms hold 16 points, untiled */
		kir_program *p = kir_lower(g, ir_entry_find(g, "main"), &direct);
		int tiled[TU_LEN(kinds)] = { 0 }, over = 0;
		for (int n = 0; n < p->nk; n++) {
			const kir_kernel *k = &p->k[n];
			llvm_tile tl = llvm_kernel_tile(p, k, &t);
			for (int i = 0; i < TU_LEN(kinds); i++)
				tiled[i] += named(k, kinds[i]) && tl.var[0] >= 0;
			if (tl.registers > t.vector_registers && over++ < 8)
				print_error("%s: kernel %d (%s): tile %d x %d of vars %d, %d needs %d vector registers of %d\n",
				            x86_cpus[c], n, k->name, tl.copies[0], tl.copies[1], tl.var[0], tl.var[1],
				            tl.registers, t.vector_registers);
		}
		for (int i = 0; i < TU_LEN(kinds); i++)
			if (!tiled[i])
				fail_msg("%s: no %s kernel has a register tile", x86_cpus[c], kinds[i]);
		char *text = llvm_assembly(p, x86_cpus[c], err, sizeof err);
		if (!text)
			fail_msg("%s: %s", x86_cpus[c], err);
		int spills = inner_loop_spills(text, x86_cpus[c]);
		print_message("    %s (%d registers): %d kernels, %d tiles over the budget, "
		              "%d vector spills and reloads in innermost loops\n",
		              x86_cpus[c], t.vector_registers, p->nk, over, spills);
		for (int n = 0; spills && n < p->nk; n++) {     /* what the kernels' tiles were */
			llvm_tile tl = llvm_kernel_tile(p, &p->k[n], &t);
			if (tl.var[0] >= 0)
				print_error("%s: function %d (%s): tile %d x %d of vars %d, %d: %d registers\n", x86_cpus[c],
				            p->k[n].fn, p->k[n].name, tl.copies[0], tl.copies[1], tl.var[0], tl.var[1],
				            tl.registers);
		}
		free(text);
		kir_program_free(p);
		if (over || spills)
			fail_msg("%s: %d tiles need more vector registers than the target's %d; "
			         "%d spills and reloads in innermost loops",
			         x86_cpus[c], over, t.vector_registers, spills);
	}
	ir_free(g);
}

/* Convolutions and matmuls, AVX2 then AVX-512 code, against the
 * interpreter: widths and channel counts not multiples of 8 or 16 (masked
 * tails), and channels-last convolutions (48 channels) with tiles of
 * neighbouring pixels. */
static const char *conv_tiles_lua =
	"local ddpm = require 'ddpm'\n"
	"local function conv(n, c, o, h, wd)\n"
	"  local x = ddpm.param('x' .. o, { n, c, h, wd }, { init = 'normal', a = 0, b = 1 })\n"
	"  local w = ddpm.param('w' .. o, { o, c, 3, 3 }, { init = 'normal', a = 0, b = 0.2 })\n"
	"  local y = ddpm.conv2d(x, w, { padding = 1 })\n"
	"  local g = ddpm.grad(y, { x, w }, ddpm.input('g' .. o, y:shape()))\n"
	"  return y, g[1], g[2]\n"
	"end\n"
	"local y1, gx1, gw1 = conv(2, 32, 48, 9, 14)\n"
	"local y2, gx2, gw2 = conv(2, 24, 40, 7, 13)\n"
	"ddpm.entry('main', { y1 = y1, gx1 = gx1, gw1 = gw1, y2 = y2, gx2 = gx2, gw2 = gw2 })\n";

/* check() with backend_run making the code of each of x86_cpus in turn
 * (those this host runs). */
static void for_avx2_and_avx512(void (*check)(void **state), void **state)
{
	for (int c = 0; c < TU_LEN(x86_cpus); c++) {
		if (!host_runs(c)) {
			print_message("    %s: this host cannot run its code, not checked\n", x86_cpus[c]);
			continue;
		}
		jit_cpu = x86_cpus[c];
		print_message("    %s:\n", jit_cpu);
		check(state);
		jit_cpu = NULL;
	}
}

static void contractions_match_interpreter(void **state)
{
	static const int64_t dims[][3] = { { 2, 3, 5 }, { 3, 4, 12 }, { 1, 8, 26 } };
	for (int i = 0; i < TU_LEN(dims); i++) {
		check_script(conv_lua, dims[i], -1, 1, 1e-4);
		check_script(matmul_lua, dims[i], -1, 1, 1e-4);
	}
	check_main(load_script(conv_tiles_lua, NULL, 0));
}

static void contractions_match_interpreter_for_avx2_and_avx512(void **state)
{
	for_avx2_and_avx512(contractions_match_interpreter, state);
}

/* Winograd convolutions (kernel_cases.h's case) in AVX2, then AVX-512
 * code, against the interpreter. */
static void winograd_matches_interpreter_for_avx2_and_avx512(void **state)
{
	for_avx2_and_avx512(winograd_convolutions_match_interpreter, state);
}

/* Elementwise kernels that read a tensor across their vector var (here a
 * channels-last one in NCHW order) read it in W x W tiles transposed in
 * registers where the channels make whole tiles (llvm_kernel.c,
 * find_transposed), and by gathers otherwise: which kernels do, for AVX2
 * (8 lanes: both) and AVX-512 code (16 lanes: neither, its gathers are
 * cheaper), and their values against the interpreter, widths not
 * multiples of the lanes (masked last chunks). */
static const char *transposed_lua =
	"local ddpm = require 'ddpm'\n"
	"local t1, x1 = ddpm.input('t1', { 2, 5, 13, 48 }), ddpm.input('x1', { 2, 48, 5, 13 })\n"
	"local t2 = ddpm.input('t2', { 3, 40, 24 })\n"
	"ddpm.entry('main', { y1 = t1:permute { 0, 3, 1, 2 } + x1 * 2, y2 = t2:transpose(1, 2):exp() })\n";

static void transposed_reads_match_interpreter(void **state)
{
	char err[1024];
	for (int c = 0; c < TU_LEN(x86_cpus); c++) {
		if (!host_runs(c))
			continue;
		llvm_target t;
		if (llvm_target_for(x86_cpus[c], &t, err, sizeof err) < 0)
			fail_msg("%s", err);
		ir_graph *g = load_script(transposed_lua, NULL, 0);
		kir_program *p = kir_lower(g, ir_entry_find(g, "main"), tu_cpu_target(x86_cpus[c]));
		int transposed = 0;
		for (int n = 0; n < p->nk; n++)
			for (int s = 0; s < (kir_is_batch(&p->k[n]) ? p->k[n].nseg : 1); s++) {
				kir_kernel v = kir_is_batch(&p->k[n]) ? kir_segment_view(&p->k[n], s) : p->k[n];
				llvm_tile tl = llvm_kernel_tile(p, &v, &t);
				transposed += tl.var[0] == 1 && tl.copies[0] == t.lanes && tl.copies[1] == 1;
			}
		kir_program_free(p);
		print_message("    %s: %d of 2 outputs read transposed tiles\n", x86_cpus[c], transposed);
		assert_int_equal(transposed, t.lanes == 8 ? 2 : 0);
		jit_cpu = x86_cpus[c];
		check_main(g);
		jit_cpu = NULL;
	}
}

/* Every tile candidate the tuner can choose (llvm_tile_candidates, the
 * cost model's best few), forced on every kernel in turn, against the
 * interpreter: convolutions (forward, both gradients) and matmuls of
 * random sizes (a fixed seed; widths, heights and channel counts mostly
 * not multiples of 8 or 16, and channel counts of 32 or 48 for the
 * channels-last layout; images small enough that a weight gradient's sum
 * of at most 450 products stays within check_main's 1e-4 whatever its
 * order), AVX2 then AVX-512 code. */
static void every_tile_candidate_matches_interpreter(void **state)
{
	uint32_t r = 20261205;
	for (int c = 0; c < TU_LEN(x86_cpus); c++) {
		if (!host_runs(c)) {
			print_message("    %s: this host cannot run its code, not checked\n", x86_cpus[c]);
			continue;
		}
		jit_cpu = x86_cpus[c];
		for (int trial = 0; trial < 2; trial++) {
			int d[8];
			for (int i = 0; i < 8; i++)
				r = r * 1664525u + 1013904223u, d[i] = 1 + (int)(r >> 16) % 19;
			char script[1400];
			snprintf(script, sizeof script,
			         "local ddpm = require 'ddpm'\n"
			         "local x = ddpm.param('x', { %d, %d, %d, %d }, { init = 'normal', a = 0, b = 1 })\n"
			         "local w = ddpm.param('w', { %d, %d, 3, 3 }, { init = 'normal', a = 0, b = 0.2 })\n"
			         "local y = ddpm.conv2d(x, w, { padding = 1 })\n"
			         "local g = ddpm.grad(y, { x, w }, ddpm.input('g', y:shape()))\n"
			         "local a, b = ddpm.input('a', { %d, %d }), ddpm.input('b', { %d, %d })\n"
			         "ddpm.entry('main', { y = y, gx = g[1], gw = g[2], m = a:matmul(b) })\n",
			         1 + d[0] % 2, d[1], 3 + d[2] % 13, 3 + d[3] % 13, trial ? 48 : 32, d[1], 2 + d[4], d[5] + 8,
			         d[5] + 8, 3 + d[6] * 2);
			print_message("    %s, conv %d -> %d channels at %dx%d, matmul %dx%dx%d:\n", jit_cpu,
			              d[1], trial ? 48 : 32, 3 + d[2] % 13, 3 + d[3] % 13, 2 + d[4], d[5] + 8,
			              3 + d[6] * 2);
			for (tile_choice = 0; tile_choice < LLVM_TILE_CANDIDATES; tile_choice++)
				check_main(load_script(script, NULL, 0));
			tile_choice = -1;
		}
		jit_cpu = NULL;
	}
}

/* --- scripts made at random --------------------------------------------------------------------- */

enum { RANDOM_SCRIPTS = 400 };

/* The script's entry compiled for this host, then (where it runs here)
 * for x86-64-v3 with other tiles and Winograd's algorithm. */
static void random_script_matches_interpreter(const char *script, uint64_t seed)
{
	static const char *v3_stage[] = { "x86-64-v3, tile candidates, F(2x2, 3x3)",
		                          "x86-64-v3, tile candidates, F(4x4, 3x3)" };
	rt_tensorset in = { 0 };
	ir_graph *g = random_script_load(script, seed, &in);
	random_stage = "this host's code";
	check_entry(g, "main", &in, NULL, 1e-4);
	if (host_runs(0)) {
		kir_target t = *tu_cpu_target(x86_cpus[0]);
		t.winograd = seed % 2 ? KIR_WINOGRAD_4X4 : KIR_WINOGRAD_2X2;
		random_stage = v3_stage[seed % 2];
		jit_cpu = x86_cpus[0];
		tile_choice = (int)(seed % LLVM_TILE_CANDIDATES);
		check_entry_for(&t, g, "main", &in, NULL, 2e-4);
		jit_cpu = NULL;
		tile_choice = -1;
	}
	rt_set_free(&in);
	ir_free(g);
}

/* --- object files and speed --------------------------------------------------------------------- */

static void object_file_for_x86_64_v3_is_written(void **state)
{
	char dir[256], path[512], err[1024];
	ir_graph *g = load_script(conv_lua, (fe_option[]){ { "n0", "2" }, { "n1", "3" }, { "n2", "5" } }, 3);
	kir_program *p = kir_lower(g, ir_entry_find(g, "main"), tu_cpu_target("x86-64-v3"));
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

/* --- CPU names ----------------------------------------------------------------------------------- */

/* A CPU name LLVM cannot generate code for (unknown, or 32-bit on x86-64)
 * is refused with LLVM's complaint instead of aborting ddpmc compile;
 * --cpu help lists the names. */
static void unusable_cpus_are_refused(void **state)
{
	(void)state;
	static const char *bad[] = { "frob", "x86-64-v9", "i386" };
	char err[1024], cmd[2048], out[1 << 14];
	for (int i = 0; i < TU_LEN(bad); i++) {
		if (llvm_check_cpu(bad[i], err, sizeof err) == 0)
			fail_msg("--cpu %s was accepted", bad[i]);
		CONTAINS(err, "LLVM cannot generate code for CPU", bad[i]);
	}
	assert_int_equal(llvm_check_cpu(NULL, err, sizeof err), 0);
	assert_int_equal(llvm_check_cpu("native", err, sizeof err), 0);
	snprintf(cmd, sizeof cmd, "'%s' compile '%s/tests/models/cli_tiny.lua' --target cpu --cpu frob "
	         "-o /nonexistent/x", DDPMC_BIN, DDPMC_SOURCE_DIR);
	assert_int_equal(tu_stderr_of(cmd, out, sizeof out), 1);
	CONTAINS(out, "--cpu frob: LLVM cannot generate code", "--cpu help` lists");
	snprintf(cmd, sizeof cmd, "'%s' compile '%s/tests/models/cli_tiny.lua' --cpu help", DDPMC_BIN,
	         DDPMC_SOURCE_DIR);
	assert_int_equal(tu_shell_output(cmd, "2>/dev/null", out, sizeof out), 0);
	CONTAINS(out, "Available CPUs");
	host_runs(0);   /* skips off x86-64 */
	assert_int_equal(llvm_check_cpu("x86-64-v3", err, sizeof err), 0);
	CONTAINS(out, "x86-64-v3");
}

int main(void)
{
	/* DDPMC_TEST_FILTER='seed 7*' runs the tests whose names match
	 * (cmocka's * and ? wildcards) */
	if (getenv("DDPMC_TEST_FILTER"))
		cmocka_set_test_filter(getenv("DDPMC_TEST_FILTER"));
	const struct CMUnitTest tests[] = {
		KERNEL_CASES,
		cmocka_unit_test(register_tiles_fit_the_vector_registers),
		cmocka_unit_test(contractions_match_interpreter_for_avx2_and_avx512),
		cmocka_unit_test(winograd_matches_interpreter_for_avx2_and_avx512),
		cmocka_unit_test(every_tile_candidate_matches_interpreter),
		cmocka_unit_test(transposed_reads_match_interpreter),
		cmocka_unit_test(object_file_for_x86_64_v3_is_written),
		cmocka_unit_test(unusable_cpus_are_refused),
	};
	int failed = cmocka_run_group_tests(tests, NULL, NULL);
	return failed + run_random_graphs(RANDOM_SCRIPTS, random_script_matches_interpreter);
}
