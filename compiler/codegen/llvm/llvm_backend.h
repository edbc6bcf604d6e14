/* llvm_backend: the CPU code generator. Kernel IR (kir.h) -> LLVM IR ->
 * native code, either JIT-compiled into this process (ORC LLJIT) or written
 * as an object file for the standalone programs.
 *
 * Kernel ABI (kir.h, kir_share): void f(void **args, int64_t row_begin,
 * int64_t row_end). args[j] is the base of the kernel's buffer k->arg[j]
 * (F32: float, F16/BF16: uint16_t, I32: int32_t); kernels equal but for
 * their buffers share one function. A row is one point of every domain var
 * but the last; the last var runs fully inside a row. A kernel computes the
 * domain rows [row_begin, row_end) and nothing else, so the runtime may split
 * rows across threads freely. Results are kir_eval's (kir.c), up to FMA
 * contraction, the math library's few ulp in exp/log/sin/cos/tanh, and the
 * order of the sums of one-lane kernels (one point per row), which LLVM
 * vectorizes; fixed at compile time, so runs are reproducible.
 *
 * What is CPU-specific stays in this folder: the target's facts
 * (llvm_target: vector width and registers, from the features of the CPU
 * chosen), the register tile, the use of masked loads and gathers. See
 * llvm_kernel.c for the loop nest. */
#ifndef DDPMC_LLVM_BACKEND_H
#define DDPMC_LLVM_BACKEND_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "kir.h"

typedef void (*llvm_kernel_fn)(void **args, int64_t row_begin, int64_t row_end);

/* The facts about a CPU target that the schedule decisions (vector width,
 * register tile) read; the only place they come from is llvm_target_for,
 * from the features of the CPU chosen (host or --cpu). */
typedef struct {
	int lanes;              /* f32 lanes of a vector: 16 AVX-512, 8 AVX/AVX2, 4 SSE/NEON */
	int vector_registers;   /* architectural vector registers: 32 AVX-512 or AArch64, 16 other x86 */
} llvm_target;

/* The target of CPU `cpu` (NULL or "native": this host; otherwise an LLVM
 * CPU name such as "x86-64-v3"). Returns 0, or -1 with a message in err. */
int llvm_target_for(const char *cpu, llvm_target *t, char *err, size_t errlen);

/* The kernel IR's description of CPU `cpu` (kir.h), what the lowering's
 * schedule decides for: llvm_target's facts, this host's cores and caches
 * when cpu is the host (NULL or "native"), and the thresholds for its
 * instruction set. Returns 0, or -1 with a message in err. */
int llvm_kir_target(const char *cpu, kir_target *t, char *err, size_t errlen);

/* Whether LLVM can generate code for `cpu` (NULL or "native": this host)
 * on this host's target: 0, or -1 with LLVM's complaint in err. Forks:
 * call it before starting threads. */
int llvm_check_cpu(const char *cpu, char *err, size_t errlen);

/* Writes LLVM's list of this host target's CPU names to out; 0 or -1. */
int llvm_list_cpus(FILE *out);

/* The version of the LLVM library in use, "19.1.7", written into buf. */
const char *llvm_version(char *buf, size_t len);


/* The register tile the backend gives kernel k of p on target t (a
 * batch kernel: its first segment that tiles): k->tile when the schedule
 * fixed one that fits, else the cost model's pick; copies[d] of domain var
 * var[d] (-1: none) run together, holding `registers` vector registers
 * live in the innermost reduction loop (accumulators, shared operands,
 * one in flight); never more than t->vector_registers. */
typedef struct {
	int var[2], copies[2], registers;
} llvm_tile;

llvm_tile llvm_kernel_tile(const kir_program *p, const kir_kernel *k, const llvm_target *t);

/* The register tiles the tuner may choose for kernel k on target t: the
 * cost model's best LLVM_TILE_CANDIDATES (the first is its pick; "no
 * tile", var[0] = -1, is one of them), each within t's vector registers,
 * into out. Returns how many: 0 for a kernel with segments or nothing to
 * tile. */
enum { LLVM_TILE_CANDIDATES = 6 };
int llvm_tile_candidates(const kir_program *p, const kir_kernel *k, const llvm_target *t,
                         llvm_tile *out);

/* Tuning (llvm_tune.c): llvm_fix_tiles fixes k->tile of every kernel of
 * progs[0..n) that has tile candidates, before code generation: db's
 * result for it when that is one of its candidates, else (with tune, and
 * while the budget of seconds lasts) the fastest candidate as timed now
 * through the JIT on one thread, recorded in db; else the cost model's
 * pick. log (NULL: quiet) gets a line per kernel timed and per result of
 * db refused. Returns 0, or -1 with a message in err. */
typedef struct {
	const char *cpu;        /* the code's CPU: NULL or "native" (this host), or an LLVM name */
	kir_tuning *db;         /* results for llvm_machine_key(cpu) */
	int tune;
	double deadline;        /* llvm_tune_deadline(the budget's seconds) */
	FILE *log;
} llvm_tune_opts;

double llvm_tune_deadline(double seconds);
int llvm_fix_tiles(kir_program **progs, int n, const llvm_tune_opts *o, char *err, size_t errlen);

/* Before g is lowered for t: t reads db's algorithm choices
 * (t->measured), and with tune, while the budget lasts, every
 * convolution or gradient Winograd applies to that db has no choice for
 * is lowered alone each way, timed through the JIT on one thread, and the
 * fastest recorded in db (only when t->winograd is KIR_WINOGRAD_CHOSEN). log gets
 * a line per convolution timed. Returns 0, or -1 with a message in err. */
int llvm_choose_algorithms(const ir_graph *g, kir_target *t, const llvm_tune_opts *o, char *err,
                           size_t errlen);

/* The tuning file's machine for code for cpu on this host: the host's
 * CPU name and a hash of its features, and cpu ("native" for NULL), as
 * "host znver4/1a2b3c4d code x86-64-v3". 0, or -1 when len is too small. */
int llvm_machine_key(const char *cpu, char *key, size_t len);

/* Runs kernel k's function on rows [rb, re) with its arguments taken from
 * bufs, the program's table of buffers. */
void llvm_call(const kir_kernel *k, llvm_kernel_fn fn, void **bufs, int64_t rb, int64_t re);

/* Bytes embedded in an object file (weights, program metadata). */
typedef struct {
	const char *name;
	const void *data;
	size_t len;
} llvm_blob;

/* Object file with every distinct function of progs[0..n) (requires:
 * kir_share over them, as the descriptor's "fn" was written), a global
 * array `ddpmc_kernels` (pointers to them by k->fn), and
 * each blob as global `NAME` (const bytes) and `NAME_len` (int64).
 * cpu: NULL or "native" = host CPU and features; otherwise an LLVM CPU name
 * such as "x86-64-v3". Returns 0, or -1 with a message in err. */
int llvm_emit_object(kir_program **progs, int n, const llvm_blob *blobs, int nblobs,
                     const char *cpu, const char *path, char *err, size_t errlen);

/* The same program split into `parts` objects compiled on `threads`
 * threads: writes paths[0..parts). With more than one, the first holds the
 * tables and blobs only and the functions are dealt to the others by their
 * rough cost. Linking all of them together is equivalent to
 * llvm_emit_object's one file, and the objects do not depend on the
 * number of threads. */
int llvm_emit_objects(kir_program **progs, int n, const llvm_blob *blobs, int nblobs,
                      const char *cpu, int parts, int threads, char *const *paths, char *err,
                      size_t errlen);

typedef struct llvm_jit llvm_jit;

/* JIT (ORC LLJIT) into this process, code for cpu (NULL or "native": this
 * host; another CPU name only where this host runs its code, such as
 * "x86-64-v3" on an AVX-512 machine): fns[i] is kernel i's function (fns
 * holds p->nk entries; call them through llvm_call). Sets the kernels'
 * arguments and functions (kir_share). Returns NULL with a message in err
 * on failure. */
llvm_jit *llvm_jit_compile(kir_program *p, const char *cpu, llvm_kernel_fn *fns, char *err, size_t errlen);
void llvm_jit_free(llvm_jit *j);

/* The assembly text of p's functions for cpu (as llvm_jit_compile would
 * make them), with LLVM's comments (such as "32-byte Spill"): for tests
 * and tuning. malloc'd; NULL with a message in err on failure. */
char *llvm_assembly(kir_program *p, const char *cpu, char *err, size_t errlen);

#endif
