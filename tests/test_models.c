/* models: the shipped model scripts and diffusers parity.
 *
 * - models/ddpm_cifar10.lua has Ho et al.'s 35,746,307 parameters and
 *   models/unet.lua the 6,469,889 diffusers counts for its config;
 * - the forward pass of tests/models/unet_{attn,levels}.lua, run by the
 *   reference interpreter on weights saved from diffusers' UNet2DModel,
 *   matches diffusers' output (tests/golden, made by make_unet_golden.py)
 *   to max |error| <= 1e-4. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>

#include "frontend.h"
#include "interp.h"
#include "safetensors.h"
#include "testutil.h"

static long long trainable_count(const ir_graph *g)
{
	long long n = 0;
	for (int i = 0; i < g->nparams; i++)
		if (g->nodes[g->params[i]].a.param.trainable)
			n += ir_numel(&g->nodes[g->params[i]].shape);
	return n;
}

static void cifar10_model_has_ho_et_al_parameter_count(void **state)
{
	ir_graph *g = tu_load("models/ddpm_cifar10.lua");
	assert_int_equal(trainable_count(g), 35746307);
	ir_free(g);
}

static void default_model_has_diffusers_parameter_count(void **state)
{
	ir_graph *g = tu_load("models/unet.lua");
	assert_int_equal(trainable_count(g), 6469889);
	ir_free(g);
}

/* Runs forward on the golden weights and inputs; compares eps. */
static void check_parity(const char *cfg)
{
	char rel[256], file[256], err[1024];
	snprintf(rel, sizeof rel, "tests/models/unet_%s.lua", cfg);
	ir_graph *g = tu_load(rel);
	rt_tensorset weights = { 0 }, io = { 0 }, st = { 0 }, out = { 0 };
	snprintf(file, sizeof file, "unet_%s_weights.safetensors", cfg);
	tu_read_golden(file, &weights);
	snprintf(file, sizeof file, "unet_%s_io.safetensors", cfg);
	tu_read_golden(file, &io);
	if (interp_init_state(g, 0, &weights, file, &st, err, sizeof err) < 0 ||
	    interp_run(g, ir_entry_find(g, "forward"), &st, &io, &out, err, sizeof err) < 0)
		fail_msg("%s: %s", cfg, err);
	const rt_tensor *want = rt_set_find(&io, "eps"), *got = rt_set_find(&out, "eps");
	assert_non_null(want);
	assert_non_null(got);
	int64_t n = rt_numel(want->rank, want->shape);
	assert_int_equal(n, rt_numel(got->rank, got->shape));
	double worst = 0;
	int64_t at = 0;
	for (int64_t i = 0; i < n; i++) {
		double d = fabs(rt_load(got->dtype, got->data, i) - rt_load(want->dtype, want->data, i));
		if (d > worst)
			worst = d, at = i;
	}
	print_message("%s: max |ours - diffusers| = %.3g at element %lld\n", cfg, worst, (long long)at);
	if (!(worst <= 1e-4))
		fail_msg("%s: eps differs from diffusers by %g at element %lld (limit 1e-4)", cfg, worst,
		         (long long)at);
	rt_set_free(&weights);
	rt_set_free(&io);
	rt_set_free(&st);
	rt_set_free(&out);
	ir_free(g);
}

static void forward_matches_diffusers_with_attention(void **state)
{
	check_parity("attn");
}

static void forward_matches_diffusers_across_three_levels(void **state)
{
	check_parity("levels");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(cifar10_model_has_ho_et_al_parameter_count),
		cmocka_unit_test(default_model_has_diffusers_parameter_count),
		cmocka_unit_test(forward_matches_diffusers_with_attention),
		cmocka_unit_test(forward_matches_diffusers_across_three_levels),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
