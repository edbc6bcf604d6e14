/* test_classifier: what a classifier trained by ddpmc is made of.
 *   - F.cross_entropy and F.log_softmax (lua/ddpm/functional.lua) against
 *     their closed form, log sum_j e^z_j - z_label, computed here in double
 *     on the fixture's logits (tests/scripts/cross_entropy.lua; one row of
 *     values near 80, where e^z overflows f32 without the max subtraction).
 * Their gradients are checked by finite differences in test_autodiff
 * (grad_composite.lua). */
#include <math.h>

#include "testutil.h"

static const double logits[4][5] = {
	{ 0.5, -1.25, 2.0, 0.75, -0.5 }, { 3.0, 1.0, -2.0, 0.0, 0.25 },
	{ -0.75, 0.5, 1.5, -1.0, 2.25 }, { 80.0, 81.5, 79.0, 80.5, 78.0 },
};
static const int labels[4] = { 3, 0, 4, 1 };

static void test_cross_entropy_closed_form(void **state)
{
	(void)state;
	char err[512];
	double logp[20], loss = 0;
	for (int i = 0; i < 4; i++) {
		double m = logits[i][0], s = 0;
		for (int j = 1; j < 5; j++)
			m = fmax(m, logits[i][j]);
		for (int j = 0; j < 5; j++)
			s += exp(logits[i][j] - m);
		for (int j = 0; j < 5; j++)
			logp[i * 5 + j] = logits[i][j] - m - log(s);
		loss -= logp[i * 5 + labels[i]] / 4;
	}
	ir_graph *g = tu_load("tests/scripts/cross_entropy.lua");
	rt_tensorset out = { 0 };
	if (interp_run(g, ir_entry_find(g, "ce"), NULL, NULL, &out, err, sizeof err) < 0)
		fail_msg("interp_run: %s", err);
	const double want[1] = { loss };
	CHECK_VALUES(rt_set_find(&out, "loss"), SH0, want, 1e-6, 1e-6);
	CHECK_PTR(rt_set_find(&out, "logp"), SH(4, 5), logp, 1e-6, 1e-6);
	rt_set_free(&out);
	ir_free(g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cross_entropy_closed_form),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
