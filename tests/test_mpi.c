/* mpi: data-parallel training of a compiled executable under mpirun.
 *
 * tests/models/cli_tiny.lua compiled at batch 4 (run as 2 ranks) and at
 * batch 8 (run as 1 process), 16 pseudo-random 28x28 images. Checked:
 *   - 2 ranks x batch 4 against 1 process x batch 8, 3 steps from seed 5:
 *     both read the same 8 images per step and draw the same t, noise and
 *     dropout masks (shards 0 and 1 of each draw are the single process's
 *     rows), so the losses agree to 1e-5 relative and every state tensor to
 *     1e-4 of its largest value (float32 sums in another order: the mean
 *     over 8 images against the mean of two means over 4, the gradient
 *     averaged after the backward pass rather than summed inside it);
 *   - the same command again, as 2 steps + --resume 1 step on 2 ranks,
 *     gives the checkpoint's bytes; --resume as 1 process refuses the
 *     2-process checkpoint with a message naming the count;
 *   - rank 1 killed mid-run (SIGKILL): mpirun and rank 0 end with a
 *     non-zero status within a minute instead of waiting forever.
 * Without MPI (DDPMC_MPIEXEC undefined: CMake found none) the test exits
 * 77, which ctest reports as skipped. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "safetensors.h"
#include "testutil.h"

enum { NIMG = 16, SIDE = 28, STEPS = 3 };

#ifdef DDPMC_MPIEXEC
#define MPIRUN DDPMC_MPIEXEC " --oversubscribe --allow-run-as-root -np 2"

static char dir[64], exe4[128], exe8[160], data[128];

static int setup(void **unused)
{
	if (tu_tiny_program("tests/models/cli_tiny.lua", "--target cpu", dir, exe4, data, NIMG, SIDE))
		return -1;
	snprintf(exe8, sizeof exe8, "%s/tiny8", dir);
	return tu_compile("tests/models/cli_tiny.lua", "--target cpu --set batch=8", exe8);
}

static int teardown(void **unused)
{
	tu_rmtree(dir);
	return 0;
}

/* `launch exe train --out dir/run ARGS`; fails the test unless it exits 0. */
static void train(const char *launch, const char *exe, const char *run, const char *args)
{
	char cmd[2048], out[8192];
	snprintf(cmd, sizeof cmd, "%s '%s' train --data '%s' --out '%s/%s' --seed 5 --threads 1 "
	         "--log-every 1 %s", launch, exe, data, dir, run, args);
	if (tu_output_of(cmd, out, sizeof out) != 0)
		fail_msg("%s failed:\n%s", cmd, out);
}

/* The losses of steps 1..STEPS in dir/run/metrics.jsonl. */
static void losses(const char *run, double *loss)
{
	char path[256], line[1024];
	snprintf(path, sizeof path, "%s/%s/metrics.jsonl", dir, run);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	for (int s = 0; s < STEPS; s++) {
		if (!fgets(line, sizeof line, f) || !strstr(line, "\"loss\": "))
			fail_msg("%s: line %d is not a metrics line", path, s + 1);
		loss[s] = strtod(strstr(line, "\"loss\": ") + 8, NULL);
	}
	fclose(f);
}

static void two_ranks_match_one_process(void **unused)
{
	char steps[32];
	double one[STEPS], two[STEPS];
	snprintf(steps, sizeof steps, "--steps %d", STEPS);
	train("", exe8, "one", steps);
	train(MPIRUN, exe4, "two", steps);
	losses("one", one);
	losses("two", two);
	for (int s = 0; s < STEPS; s++) {
		print_message("step %d: loss 1 x 8 %.7f, 2 x 4 %.7f\n", s + 1, one[s], two[s]);
		if (!(fabs(one[s] - two[s]) <= 1e-5 * fabs(one[s])))
			fail_msg("step %d: loss %.7f (2 ranks) vs %.7f (1 process)", s + 1, two[s], one[s]);
	}
	rt_tensorset a = { 0 }, b = { 0 };
	tu_read_checkpoint(dir, "one", &a);
	tu_read_checkpoint(dir, "two", &b);
	assert_int_equal(a.n, b.n);
	tu_close_state(&a, &b, 1e-4, "1 process x batch 8 and 2 ranks x 4");
	rt_set_free(&a);
	rt_set_free(&b);
}

/* Runs after two_ranks_match_one_process (its run "two"). */
static void resume_needs_the_same_ranks(void **unused)
{
	train(MPIRUN, exe4, "again", "--steps 2");
	train(MPIRUN, exe4, "again", "--steps 1 --resume");
	rt_tensorset a = { 0 }, b = { 0 };
	tu_read_checkpoint(dir, "two", &a);
	tu_read_checkpoint(dir, "again", &b);
	assert_int_equal(a.n, b.n);
	for (int i = 0; i < a.n; i++) {
		const rt_tensor *x = &a.t[i], *y = rt_set_find(&b, x->name);
		size_t bytes = (size_t)rt_numel(x->rank, x->shape) * rt_dtype_size(x->dtype);
		if (!y || memcmp(x->data, y->data, bytes))
			fail_msg("%s: 2 + --resume 1 steps differ from 3 steps on 2 ranks", x->name);
	}
	rt_set_free(&a);
	rt_set_free(&b);
	char cmd[1024], err[2048];
	snprintf(cmd, sizeof cmd, "'%s' train --data '%s' --out '%s/again' --steps 1 --resume", exe4,
	         data, dir);
	assert_int_not_equal(tu_stderr_of(cmd, err, sizeof err), 0);
	CONTAINS(err, "trained by 2 processes, this run has 1", "mpirun -np 2");
}

/* Rank 1 is killed 4 s in (a run of many steps); rank 0, waiting for its
 * gradients, must not wait forever. */
static void a_dead_rank_stops_the_others(void **unused)
{
	char cmd[2048], out[16384];
	snprintf(cmd, sizeof cmd, "timeout 120 " MPIRUN " sh -c 'if [ \"$OMPI_COMM_WORLD_RANK\" = 1 ]; "
	         "then exec timeout -s KILL 4 \"$0\" \"$@\"; else exec \"$0\" \"$@\"; fi' '%s' train "
	         "--data '%s' --out '%s/dead' --steps 100000 --threads 1 --log-every 1", exe4, data, dir);
	time_t t0 = time(NULL);
	int rc = tu_output_of(cmd, out, sizeof out);
	double took = difftime(time(NULL), t0);
	print_message("mpirun exit status %d after %.1f s\n", rc, took);
	if (rc == 0 || rc == 124 || !strstr(out, "step 1"))       /* a line or the bar */
		fail_msg("expected a non-zero exit after some steps, got %d after %.1f s:\n%s", rc, took, out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(two_ranks_match_one_process),
		cmocka_unit_test(resume_needs_the_same_ranks),
		cmocka_unit_test(a_dead_rank_stops_the_others),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
#else
int main(void)
{
	puts("mpi: skipped (ddpmc was built without MPI)");
	return 77;
}
#endif
