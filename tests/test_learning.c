/* learning: the reference interpreter trains a tiny U-Net on 256
 * Fashion-MNIST images (Debian's dataset-fashion-mnist) and the loss goes
 * down: it starts near 1.0, and the mean of the last 20 steps is below
 * 0.15. This is the end-to-end check that the train step (Philox draws,
 * noise injection, forward, autodiff, clipping, Adam) learns at all.
 * Labelled "slow" in ctest. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "data.h"
#include "frontend.h"
#include "interp.h"
#include "testutil.h"

#define IMAGES "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"
#define SUBSET 256
#define BATCH 16

static int steps(void)
{
	const char *s = getenv("DDPMC_LEARN_STEPS");
	return s ? atoi(s) : 100;
}

static void tiny_unet_learns_fashion_mnist(void **unused)
{
	char err[1024];
	ir_graph *g = tu_load("tests/models/learn_unet.lua");
	rt_images im;
	if (rt_idx_read_images(IMAGES, &im, err, sizeof err) != RT_OK)
		fail_msg("%s", err);
	im.n = SUBSET;
	rt_tensorset state = { 0 }, in = { 0 };
	int64_t shape[4] = { BATCH, 1, im.h, im.w };
	rt_tensor *x0 = rt_set_add(&in, "x0", RT_F32, 4, shape);
	assert_non_null(x0);
	if (interp_init_state(g, 1, NULL, NULL, &state, err, sizeof err) < 0)
		fail_msg("%s", err);
	const ir_entry *train = ir_entry_find(g, "train_step");
	int n = steps();
	double *loss = calloc((size_t)n, sizeof *loss);
	clock_t start = clock();
	for (int s = 0; s < n; s++) {
		rt_tensorset out = { 0 };
		rt_images_batch(&im, (int64_t)s * BATCH, BATCH, x0->data);
		if (interp_run(g, train, &state, &in, &out, err, sizeof err) < 0)
			fail_msg("step %d: %s", s, err);
		loss[s] = ((float *)rt_set_find(&out, "loss")->data)[0];
		if (s % 20 == 0 || s == n - 1)
			print_message("step %3d loss %.4f (%.1f s)\n", s, loss[s],
			              (double)(clock() - start) / CLOCKS_PER_SEC);
		rt_set_free(&out);
	}
	double first = (loss[0] + loss[1] + loss[2]) / 3, last = 0;
	for (int s = n - 20; s < n; s++)
		last += loss[s] / 20;
	print_message("first 3 steps: %.4f, last 20 steps: %.4f\n", first, last);
	if (first < 0.7 || first > 1.4)
		fail_msg("the loss starts at %.4f, not near 1.0", first);
	if (!(last < 0.15))
		fail_msg("the mean loss of the last 20 of %d steps is %.4f, not below 0.15", n, last);
	free(loss);
	rt_set_free(&state);
	rt_set_free(&in);
	rt_images_free(&im);
	ir_free(g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(tiny_unet_learns_fashion_mnist),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
