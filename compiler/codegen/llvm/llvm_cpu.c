/* llvm_cpu: whether LLVM can generate code for a --cpu name, asked before
 * any code is generated for it, and LLVM's list of the names.
 *
 * LLVM's C API lists no CPUs, and LLVM meets a name it does not know
 * ("frob", "x86-64-v9") with a warning on stderr and a generic CPU, which
 * on x86-64 then aborts the process ("64-bit code requested on a subtarget
 * that doesn't support it!"), as a known 32-bit CPU ("i386") does. So a
 * child process makes a target machine for the name and compiles an empty
 * function with it: the name is good when the child exits 0 having written
 * nothing. For the name "help" LLVM prints its list of CPUs (then its
 * features, and aborts): llvm_list_cpus keeps the CPUs.
 * llvm_version says which LLVM this is (for --version). */
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "llvm_internal.h"

/* The child's work: code for one empty function on cpu; exits 0 when
 * LLVM managed it. */
static void compile_empty(const char *cpu)
{
	char err[512];
	llvm_target t;
	LLVMTargetMachineRef tm = llvm_make_tm(cpu, &t, err, sizeof err);
	if (!tm)
		_exit(1);
	LLVMModuleRef M = LLVMModuleCreateWithName("cpu_probe");
	LLVMTypeRef fty = LLVMFunctionType(LLVMVoidType(), NULL, 0, 0);
	LLVMBuilderRef b = LLVMCreateBuilder();
	LLVMPositionBuilderAtEnd(b, LLVMAppendBasicBlock(LLVMAddFunction(M, "probe", fty), "entry"));
	LLVMBuildRetVoid(b);
	char *msg = NULL;
	LLVMMemoryBufferRef obj = NULL;
	_exit(LLVMTargetMachineEmitToMemoryBuffer(tm, M, LLVMObjectFile, &msg, &obj) ? 1 : 0);
}

/* Reads fd to its end, keeping the first len - 1 bytes in out (a
 * string); the rest is read and dropped, so that the writer never blocks. */
static void read_all(int fd, char *out, size_t len)
{
	char scratch[4096];
	size_t n = 0;
	for (;;) {
		int full = n + 1 >= len;
		ssize_t got = read(fd, full ? scratch : out + n, full ? sizeof scratch : len - 1 - n);
		if (got <= 0)
			break;
		n += full ? 0 : (size_t)got;
	}
	out[n] = 0;
}

/* Runs compile_empty(cpu) in a child whose stdout and stderr go to a
 * pipe; what it wrote (at most len - 1 bytes) into out. Returns the
 * child's exit status, or -1 when it did not exit normally. */
static int probe(const char *cpu, char *out, size_t len)
{
	int fd[2], status;
	if (pipe(fd) < 0)
		return -1;
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		dup2(fd[1], 1);
		dup2(fd[1], 2);
		close(fd[0]);
		compile_empty(cpu);
	}
	close(fd[1]);
	read_all(fd[0], out, len);
	close(fd[0]);
	if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

int llvm_check_cpu(const char *cpu, char *err, size_t errlen)
{
	char said[1024];
	if (!cpu || !strcmp(cpu, "native"))
		return 0;
	if (probe(cpu, said, sizeof said) == 0 && !said[0])
		return 0;
	said[strcspn(said, "\n")] = 0;
	snprintf(err, errlen, "LLVM cannot generate code for CPU '%s' on this host's target (%s)", cpu,
	         said[0] ? said : "it stopped without a message");
	return -1;
}

int llvm_list_cpus(FILE *out)
{
	static char said[1 << 16];
	probe("help", said, sizeof said);
	char *end = strstr(said, "Available features");
	if (!strstr(said, "Available CPUs"))
		return -1;
	if (end)
		*end = 0;
	fputs(said, out);
	return 0;
}

const char *llvm_version(char *buf, size_t len)
{
	unsigned major, minor, patch;
	LLVMGetVersion(&major, &minor, &patch);
	snprintf(buf, len, "%u.%u.%u", major, minor, patch);
	return buf;
}
