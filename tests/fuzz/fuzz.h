/* fuzz: what the libFuzzer harnesses of tests/fuzz share.
 *
 * Each harness (fuzz_NAME.c) defines LLVMFuzzerTestOneInput, feeds the
 * input to one runtime reader, and checks the reader's contract beyond
 * "does not crash": on failure a one-line message with the expected
 * prefix and nothing left allocated, on success a result of consistent
 * size. A broken contract aborts, which libFuzzer reports as a crash. */
#ifndef DDPMC_FUZZ_H
#define DDPMC_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Aborts with "file:line: contract broken: COND" when cond is false. */
#define FUZZ_CHECK(cond) \
	((cond) ? (void)0 : fuzz_abort(__FILE__, __LINE__, #cond))
void fuzz_abort(const char *file, int line, const char *what);

/* The readers under test take a path: this puts data[0..size) into one
 * in-memory file (memfd, rewritten at every call) and returns a path that
 * opens it ("/proc/self/fd/N"). Nothing touches the disk. */
const char *fuzz_path(const uint8_t *data, size_t size);

/* Checks a reader's error message: it starts with prefix (e.g. "NAME: ",
 * the file name the reader was given) and is one line. */
void fuzz_check_message(const char *err, const char *prefix);
/* The same with prefix "PATH: ", PATH being fuzz_path's. */
void fuzz_check_file_message(const char *err);

/* Reads every byte of p[0..n) so that ASan checks the whole result. */
void fuzz_touch(const void *p, size_t n);

#endif
