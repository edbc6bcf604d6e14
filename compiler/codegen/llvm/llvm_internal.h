/* llvm_internal: what the LLVM backend's files share (not a public header). */
#ifndef DDPMC_LLVM_INTERNAL_H
#define DDPMC_LLVM_INTERNAL_H

#include <llvm-c/Core.h>
#include <llvm-c/TargetMachine.h>

#include "kir.h"
#include "llvm_backend.h"

/* Adds kernel k of p to M as function `name` with the kernel ABI of
 * llvm_backend.h, vectorized over at most t->lanes f32 lanes, its register
 * tile within t->vector_registers. */
LLVMValueRef llvm_emit_kernel(LLVMModuleRef M, const kir_program *p, const kir_kernel *k,
                              const char *name, const llvm_target *t);

/* A target machine for cpu (NULL or "native": this host) and its facts;
 * NULL with a message in err. */
LLVMTargetMachineRef llvm_make_tm(const char *cpu, llvm_target *facts, char *err, size_t errlen);

#endif
