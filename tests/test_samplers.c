/* samplers: the DDPM and DDIM steps of lua/ddpm/diffusion.lua, as the
 * entries ddpm_step, ddim_step, sample_ddpm and sample_ddim that
 * ddpm.program.diffusion builds (fixture tests/scripts/sampler_program.lua),
 * and the host's timestep sequences (runtime/timesteps.c):
 *
 * - every step against diffusers' DDPMScheduler.step / DDIMScheduler.step
 *   (tests/golden/samplers.safetensors, made by make_sampler_golden.py):
 *   each prediction type, clipping to [-1, 1], to [-0.5, 0.5] and off,
 *   both DDPM variances, DDIM eta 0 and 0.5, on steps t -> s of strided
 *   sequences (1000, 50, 30, 7 steps; leading, trailing, linspace);
 * - rt_timesteps against set_timesteps' sequences and previous steps;
 * - the schedule constants alpha_bar_999 ~ 4.0358e-5, beta~_1 ~ 5.4532e-5,
 *   and the cosine schedule's betas;
 * - sample_ddpm draws its noise from the rng.seed state: the same seed
 *   gives the same bytes, another seed other noise, t = 0 none; the
 *   sample entries are the step entries on the model's output.
 *
 * Tolerance. The golden values are diffusers' steps computed in float64;
 * the entries compute in f32 from f32 inputs and tables rounded once from
 * float64. So |ours - want| <= 1e-5 * max(1, |want|, m), where m is the
 * size of the largest term the step sums (the golden file's `mag`: the x0
 * estimate at t = 999 is a difference of O(1) terms amplified 157 times).
 * Measured errors are printed and are far below the bound. */
#include "testutil.h"
#include "timesteps.h"

#define T 1000
#define B 4
#define D 6                         /* elements per sample: 1 x 2 x 3 */
#define N (B * D)

static double betas[T], abar[T];

static void linear_schedule(void)
{
	double step = (0.02 - 1e-4) / (T - 1), prod = 1;
	for (int i = 0; i < T; i++) {
		betas[i] = i * step + 1e-4;   /* numpy.linspace: arange(n) * step + start */
		prod *= 1 - betas[i];
		abar[i] = prod;
	}
}

static double f32(double v)
{
	return (double)(float)v;
}

/* Test data: values in [-2, 2] from a fixed sequence, rounded to f32. */
static void make_data(double *x, double *eps, double *z)
{
	for (int i = 0; i < N; i++) {
		x[i] = f32(2 * sin(1.3 * i + 0.4));
		eps[i] = f32(1.7 * cos(0.7 * i + 1.1));
		z[i] = f32(1.5 * sin(2.9 * i + 0.2));
	}
}

typedef struct {
	ir_graph *g;
	rt_tensorset st;
} program;

static void open_program(program *p, const fe_option *opts, int nopts)
{
	char path[1024], err[1024];
	p->g = fe_load(tu_script("sampler_program.lua", path, sizeof path), opts, nopts, err, sizeof err);
	if (!p->g)
		fail_msg("%s", err);
	memset(&p->st, 0, sizeof p->st);
	if (interp_init_state(p->g, 1, NULL, NULL, &p->st, err, sizeof err) < 0)
		fail_msg("%s", err);
}

static void close_program(program *p)
{
	rt_set_free(&p->st);
	ir_free(p->g);
}

static void add_f32(rt_tensorset *in, const char *name, const double *v)
{
	int64_t shape[4] = { B, 1, 2, 3 };
	rt_tensor *t = rt_set_add(in, name, RT_F32, 4, shape);
	assert_non_null(t);
	for (int i = 0; i < N; i++)
		rt_store(RT_F32, t->data, i, v[i]);
}

static void add_i32(rt_tensorset *in, const char *name, const int *v, int n)
{
	int64_t len = n;
	rt_tensor *t = rt_set_add(in, name, RT_I32, n ? 1 : 0, &len);
	assert_non_null(t);
	for (int i = 0; i < (n ? n : 1); i++)
		rt_store(RT_I32, t->data, i, v[i]);
}

static void add_scalar(rt_tensorset *in, const char *name, double v)
{
	rt_tensor *t = rt_set_add(in, name, RT_F32, 0, NULL);
	assert_non_null(t);
	rt_store(RT_F32, t->data, 0, v);
}

/* The inputs of ddpm_step and ddim_step: steps t[b] -> s[b], model output
 * out, noise z, clip range (INFINITY: none) and eta. */
static void add_step_inputs(rt_tensorset *in, const double *x, const double *out, const double *z,
                            const int *t, const int *s, double clip, double eta)
{
	add_f32(in, "step.x", x);
	add_f32(in, "step.out", out);
	add_f32(in, "step.z", z);
	add_i32(in, "step.t", t, B);
	add_i32(in, "step.s", s, B);
	add_scalar(in, "step.clip", clip);
	add_scalar(in, "step.eta", eta);
}

/* Runs entry `name`; returns its output `out` (in *outs, freed by the
 * caller), which must have n elements. */
static const rt_tensor *run_n(program *p, const char *name, const rt_tensorset *in,
                              rt_tensorset *outs, const char *out, int64_t n)
{
	char err[1024];
	const ir_entry *e = ir_entry_find(p->g, name);
	if (!e)
		fail_msg("no entry %s", name);
	if (interp_run(p->g, e, &p->st, in, outs, err, sizeof err) < 0)
		fail_msg("%s: %s", name, err);
	const rt_tensor *t = rt_set_find(outs, out);
	if (!t)
		fail_msg("%s has no output %s", name, out);
	assert_int_equal(rt_numel(t->rank, t->shape), n);
	assert_int_equal(t->dtype, RT_F32);
	return t;
}

/* run_n for the sampler entries' (B, 1, 2, 3) outputs. */
static const rt_tensor *run(program *p, const char *name, const rt_tensorset *in,
                            rt_tensorset *outs, const char *out)
{
	return run_n(p, name, in, outs, out, N);
}

/* Compares got[i] with want[i] under the tolerance of the header; returns
 * the worst error relative to that tolerance (fails when over 1). */
static double compare(const char *what, const rt_tensor *got, const double *want,
                      const double *mag)
{
	double worst = 0;
	int bad = 0;
	for (int i = 0; i < N; i++) {
		double g = rt_load(got->dtype, got->data, i);
		double tol = 1e-5 * fmax(1, fmax(fabs(want[i]), mag[i]));
		double r = fabs(g - want[i]) / tol;
		if (!(r <= 1) && bad++ < 8)
			print_error("%s[%d] (sample %d): expected %.9g, got %.9g (off by %.3g, tol %.3g)\n",
			            what, i, i / D, want[i], g, g - want[i], tol);
		if (!(r <= worst))
			worst = r;
	}
	if (bad)
		fail_msg("%s: %d elements differ from diffusers", what, bad);
	return worst;
}

/* --- against diffusers ------------------------------------------------------- */

static const rt_tensor *golden(const rt_tensorset *gs, const char *fmt, const char *a)
{
	char name[256];
	snprintf(name, sizeof name, fmt, a);
	const rt_tensor *t = rt_set_find(gs, name);
	if (!t)
		fail_msg("samplers.safetensors has no %s", name);
	return t;
}

static void golden_values(const rt_tensor *t, double *v, int n)
{
	assert_int_equal(rt_numel(t->rank, t->shape), n);
	for (int i = 0; i < n; i++)
		v[i] = rt_load(t->dtype, t->data, i);
}

static void golden_ints(const rt_tensor *t, int *v, int n)
{
	double d[N];
	golden_values(t, d, n);
	for (int i = 0; i < n; i++)
		v[i] = (int)d[i];
}

/* One golden case CASE (= SAMPLER.PREDICTION.CLIP.PAIRS) through entry
 * `entry` of p; returns the worst error relative to the tolerance. */
static double check_case(program *p, const rt_tensorset *gs, const char *entry, const char *c)
{
	double x[N], out[N], z[N], want[N], mag[N], clip, eta;
	int t[B], s[B];
	golden_values(golden(gs, "x", ""), x, N);
	golden_values(golden(gs, "out", ""), out, N);
	golden_values(golden(gs, "z", ""), z, N);
	golden_values(golden(gs, "%s.want", c), want, N);
	golden_values(golden(gs, "%s.mag", c), mag, N);
	golden_ints(golden(gs, "%s.t", c), t, B);
	golden_ints(golden(gs, "%s.s", c), s, B);
	golden_values(golden(gs, "%s.clip", c), &clip, 1);
	golden_values(golden(gs, "%s.eta", c), &eta, 1);
	rt_tensorset in = { 0 }, o = { 0 };
	add_step_inputs(&in, x, out, z, t, s, clip, eta);
	double worst = compare(c, run(p, entry, &in, &o, "x_prev"), want, mag);
	rt_set_free(&in);
	rt_set_free(&o);
	return worst;
}

/* Every case of one sampler (ddpm_small, ddpm_large, ddim_eta0, ddim_eta05):
 * 3 predictions x 3 clip settings x 2 sets of steps. */
static void check_sampler(const char *sampler)
{
	static const char *const predictions[] = { "epsilon", "v_prediction", "sample" };
	static const char *const clips[] = { "clip1", "clip05", "noclip" };
	rt_tensorset gs = { 0 };
	tu_read_golden("samplers.safetensors", &gs);
	int ddim = strncmp(sampler, "ddim", 4) == 0;
	for (int k = 0; k < 3; k++) {
		fe_option o[] = { { "prediction", predictions[k] },
		                  { "variance", strcmp(sampler, "ddpm_large") ? "fixed_small" : "fixed_large" } };
		program p;
		open_program(&p, o, 2);
		double worst = 0;
		for (int c = 0; c < 3; c++)
			for (int set = 0; set < 2; set++) {
				char name[128];
				snprintf(name, sizeof name, "%s.%s.%s.%s", sampler, predictions[k], clips[c],
				         set ? "b" : "a");
				worst = fmax(worst, check_case(&p, &gs, ddim ? "ddim_step" : "ddpm_step", name));
			}
		print_message("%s %s: worst error %.3g of the tolerance\n", sampler, predictions[k], worst);
		close_program(&p);
	}
	rt_set_free(&gs);
}

static void ddpm_fixed_small_steps_match_diffusers(void **state)
{
	(void)state;
	check_sampler("ddpm_small");
}

static void ddpm_fixed_large_steps_match_diffusers(void **state)
{
	(void)state;
	check_sampler("ddpm_large");
}

static void ddim_eta0_steps_match_diffusers(void **state)
{
	(void)state;
	check_sampler("ddim_eta0");
}

static void ddim_eta05_steps_match_diffusers(void **state)
{
	(void)state;
	check_sampler("ddim_eta05");
}

/* rt_timesteps against the sequences set_timesteps makes (the golden
 * file's seq.SAMPLER.SPACING.K and prev.*, diffusers' s before the
 * -1 floor). */
static void timesteps_match_set_timesteps(void **state)
{
	(void)state;
	rt_tensorset gs = { 0 };
	tu_read_golden("samplers.safetensors", &gs);
	int checked = 0;
	for (int i = 0; i < gs.n; i++) {
		char sampler[8], spacing[16];
		int k;
		if (sscanf(gs.t[i].name, "seq.%7[a-z].%15[a-z].%d", sampler, spacing, &k) != 3)
			continue;
		rt_spacing sp;
		assert_int_equal(rt_spacing_parse(spacing, &sp), 0);
		char prev_name[64];
		snprintf(prev_name, sizeof prev_name, "prev.%s", gs.t[i].name + 4);
		const rt_tensor *prev = rt_set_find(&gs, prev_name);
		assert_non_null(prev);
		assert_int_equal(rt_numel(gs.t[i].rank, gs.t[i].shape), k);
		int64_t *t = malloc((size_t)k * sizeof *t), *s = malloc((size_t)k * sizeof *s);
		rt_timesteps(T, k, sp, strcmp(sampler, "ddim") == 0, t, s);
		for (int j = 0; j < k; j++) {
			int64_t wt = (int64_t)rt_load(RT_I32, gs.t[i].data, j);
			int64_t ws = (int64_t)rt_load(RT_I32, prev->data, j);
			if (t[j] != wt || s[j] != (ws < 0 ? -1 : ws))
				fail_msg("%s step %d: %lld -> %lld, diffusers %lld -> %lld", gs.t[i].name, j,
				         (long long)t[j], (long long)s[j], (long long)wt, (long long)ws);
		}
		free(t);
		free(s);
		checked++;
	}
	print_message("%d sequences match set_timesteps\n", checked);
	assert_int_equal(checked, 16);
	rt_spacing sp;
	assert_int_equal(rt_spacing_parse("uniform", &sp), -1);
	rt_set_free(&gs);
}

/* At t = 0 a DDPM step adds no noise: z is ignored (and here huge). With
 * fixed_small sigma_0 is 0 by its formula; fixed_large needs the [t > 0]. */
static void ddpm_step_at_t0_adds_no_noise(void **state)
{
	(void)state;
	const fe_option o[] = { { "variance", "fixed_large" } };
	program p;
	open_program(&p, o, 1);
	double x[N], eps[N], z[N], z2[N];
	make_data(x, eps, z);
	for (int i = 0; i < N; i++)
		z2[i] = 1e3 * (i + 1);
	const int t0[B] = { 0, 0, 0, 0 }, sm1[B] = { -1, -1, -1, -1 };
	rt_tensorset in1 = { 0 }, in2 = { 0 }, o1 = { 0 }, o2 = { 0 };
	add_step_inputs(&in1, x, eps, z, t0, sm1, 1, 0);
	add_step_inputs(&in2, x, eps, z2, t0, sm1, 1, 0);
	const rt_tensor *a = run(&p, "ddpm_step", &in1, &o1, "x_prev");
	const rt_tensor *b = run(&p, "ddpm_step", &in2, &o2, "x_prev");
	assert_memory_equal(a->data, b->data, N * sizeof(float));
	rt_set_free(&in1);
	rt_set_free(&in2);
	rt_set_free(&o1);
	rt_set_free(&o2);
	close_program(&p);
}

/* The schedule tables the steps gather from, and the constants of the
 * original DDPM as the entries themselves produce them. */
static void linear_schedule_constants(void **state)
{
	(void)state;
	program p;
	open_program(&p, NULL, 0);
	rt_tensorset none = { 0 }, out = { 0 };
	const rt_tensor *tb = run_n(&p, "schedule", &none, &out, "betas", T);
	const rt_tensor *ta = rt_set_find(&out, "alphas_cumprod");
	assert_non_null(ta);
	double wb[T], wa[T];
	for (int i = 0; i < T; i++)
		wb[i] = f32(betas[i]), wa[i] = f32(abar[i]);
	CHECK_PTR(tb, SH(T), wb, 0, 0);       /* computed in float64, rounded once */
	CHECK_PTR(ta, SH(T), wa, 0, 0);
	assert_true(rt_load(RT_F32, tb->data, 0) == f32(1e-4));
	assert_true(rt_load(RT_F32, tb->data, T - 1) == f32(0.02));
	assert_true(fabs(rt_load(RT_F32, ta->data, T - 1) - 4.0358e-5) <= 5e-10);
	rt_set_free(&out);

	/* ddpm_step 1 -> 0 with x = out = 0, z = 1 returns sigma_1: beta~_1
	 * (fixed_small). ddim_step 999 -> -1 with out = 0, eta = 0 returns
	 * x / sqrt(alpha_bar_999). */
	double zero[N] = { 0 }, one[N];
	for (int i = 0; i < N; i++)
		one[i] = 1;
	const int t1[B] = { 1, 1, 1, 1 }, s0[B] = { 0, 0, 0, 0 };
	const int t999[B] = { 999, 999, 999, 999 }, sm1[B] = { -1, -1, -1, -1 };
	rt_tensorset in = { 0 };
	add_step_inputs(&in, zero, zero, one, t1, s0, 1, 0);
	const rt_tensor *sig = run(&p, "ddpm_step", &in, &out, "x_prev");
	double s1 = rt_load(RT_F32, sig->data, 0), bt1 = betas[1] * (1 - abar[0]) / (1 - abar[1]);
	print_message("beta~_1 = %.6g (closed form %.6g)\n", s1 * s1, bt1);
	assert_true(fabs(s1 * s1 - 5.4532e-5) <= 5e-10);
	assert_true(fabs(s1 * s1 - bt1) <= 1e-6 * bt1);
	rt_set_free(&in);
	rt_set_free(&out);

	memset(&in, 0, sizeof in);
	add_step_inputs(&in, one, zero, one, t999, sm1, INFINITY, 0);
	const rt_tensor *inv = run(&p, "ddim_step", &in, &out, "x_prev");
	double r = rt_load(RT_F32, inv->data, 0), ab999 = 1 / (r * r);
	print_message("alpha_bar_999 = %.6g (closed form %.6g)\n", ab999, abar[999]);
	assert_true(fabs(ab999 - 4.0358e-5) <= 5e-10);
	assert_true(fabs(ab999 - abar[999]) <= 1e-6 * abar[999]);
	rt_set_free(&in);
	rt_set_free(&out);
	close_program(&p);
}

/* Nichol & Dhariwal: f(u) = cos^2((u + 0.008)/1.008 pi/2),
 * beta_i = min(1 - f((i+1)/T)/f(i/T), 0.999). */
static double cos_f(double u)
{
	double c = cos((u + 0.008) / 1.008 * 3.14159265358979323846 / 2);
	return c * c;
}

static void cosine_schedule_betas(void **state)
{
	(void)state;
	const fe_option o[] = { { "schedule", "cosine" } };
	program p;
	open_program(&p, o, 1);
	rt_tensorset none = { 0 }, out = { 0 };
	const rt_tensor *tb = run_n(&p, "schedule", &none, &out, "betas", T);
	double want[T];
	for (int i = 0; i < T; i++)
		want[i] = fmin(1 - cos_f((i + 1.0) / T) / cos_f((double)i / T), 0.999);
	print_message("cosine beta_0 = %.9g (formula %.9g)\n", rt_load(RT_F32, tb->data, 0), want[0]);
	/* f32 rounding of the float64 value: relative 2^-24. */
	assert_true(fabs(rt_load(RT_F32, tb->data, 0) - want[0]) <= 0x1p-24 * want[0]);
	assert_true(rt_load(RT_F32, tb->data, T - 1) == f32(0.999));   /* clamped */
	CHECK_PTR(tb, SH(T), want, 0x1p-24, 0);
	rt_set_free(&out);
	close_program(&p);
}

/* sample_ddpm's x_prev for x (the make_data x), a step t -> t - 1 and the
 * state's seed. */
static void sample_ddpm(program *p, int t, int seed, float *got)
{
	double x[N], eps[N], z[N];
	make_data(x, eps, z);
	rt_tensor *s = rt_set_find(&p->st, "rng.seed");
	assert_non_null(s);
	rt_store(s->dtype, s->data, 0, seed);
	rt_tensorset in = { 0 }, out = { 0 };
	int prev = t - 1;
	add_f32(&in, "sample.x", x);
	add_i32(&in, "sample.t", &t, 0);
	add_i32(&in, "sample.s", &prev, 0);
	add_scalar(&in, "sample.clip", 1);
	const rt_tensor *r = run(p, "sample_ddpm", &in, &out, "x_prev");
	memcpy(got, r->data, N * sizeof(float));
	rt_set_free(&in);
	rt_set_free(&out);
}

/* ddpm_step t -> t - 1 on the model's output (0.5 x) with noise z;
 * z = NULL: none (the step's mean). */
static void ddpm_step_on_model(program *p, int t, const double *zin, float *got)
{
	double x[N], eps[N], z[N];
	make_data(x, eps, z);
	for (int i = 0; i < N; i++)
		eps[i] = 0.5 * x[i], z[i] = zin ? zin[i] : 0;
	int ts[B] = { t, t, t, t }, ss[B] = { t - 1, t - 1, t - 1, t - 1 };
	rt_tensorset in = { 0 }, out = { 0 };
	add_step_inputs(&in, x, eps, z, ts, ss, 1, 0);
	const rt_tensor *r = run(p, "ddpm_step", &in, &out, "x_prev");
	memcpy(got, r->data, N * sizeof(float));
	rt_set_free(&in);
	rt_set_free(&out);
}

static int count_differing(const float *a, const float *b)
{
	int n = 0;
	for (int i = 0; i < N; i++)
		n += a[i] != b[i];
	return n;
}

/* z of a sample_ddpm step: (x_prev - mu) / sigma_t (fixed_small). */
static void recover_z(program *p, int t, const float *x_prev, double *z)
{
	float mu[N];
	ddpm_step_on_model(p, t, NULL, mu);
	double sigma = sqrt(betas[t] * (1 - abar[t - 1]) / (1 - abar[t]));
	for (int i = 0; i < N; i++)
		z[i] = (x_prev[i] - mu[i]) / sigma;
}

static void sample_ddpm_noise_follows_the_seed(void **state)
{
	(void)state;
	program p;
	open_program(&p, NULL, 0);
	float a[N], b[N], c[N], d[N], mu[N];
	sample_ddpm(&p, 500, 3, a);
	sample_ddpm(&p, 500, 3, b);
	assert_memory_equal(a, b, sizeof a);            /* same seed, same bytes */
	sample_ddpm(&p, 500, 4, c);
	assert_int_equal(count_differing(a, c), N);     /* another seed: other noise everywhere */

	/* The draw is x_prev - mu = sigma_t z with z ~ N(0, 1): finite, not
	 * degenerate, of the size of a standard normal, and keyed by the step
	 * t as well as the seed (else every step of a chain reuses one z). */
	double za[N], zc[N], zd[N], sum2 = 0;
	sample_ddpm(&p, 499, 3, d);
	recover_z(&p, 500, a, za);
	recover_z(&p, 500, c, zc);
	recover_z(&p, 499, d, zd);
	int same_t = 0, same_seed = 0;
	for (int i = 0; i < N; i++) {
		assert_true(isfinite(za[i]) && fabs(za[i]) < 6);
		sum2 += za[i] * za[i];
		same_t += fabs(za[i] - zd[i]) < 1e-3;
		same_seed += fabs(za[i] - zc[i]) < 1e-3;
	}
	print_message("sample_ddpm: mean z^2 = %.3f over %d draws\n", sum2 / N, N);
	assert_true(sum2 / N > 0.2 && sum2 / N < 3);
	assert_int_equal(same_t, 0);
	assert_int_equal(same_seed, 0);

	/* The step with the recovered z is the sample: the entry is ddpm_step
	 * on the model's output. */
	ddpm_step_on_model(&p, 500, za, mu);
	for (int i = 0; i < N; i++)
		assert_true(fabs(mu[i] - a[i]) <= 1e-5 * fmax(1, fabs(a[i])));

	/* t = 0: no noise, so the seed does not matter and the step is the mean. */
	sample_ddpm(&p, 0, 3, a);
	sample_ddpm(&p, 0, 4, b);
	assert_memory_equal(a, b, sizeof a);
	ddpm_step_on_model(&p, 0, NULL, mu);
	assert_memory_equal(a, mu, sizeof a);
	close_program(&p);
}

/* sample_ddim with eta = 0 is deterministic, whatever the seed, and is
 * ddim_step on the model's output 0.5 x; with clip 0.01 clipping shows. */
static void sample_ddim_is_ddim_step_on_the_model(void **state)
{
	(void)state;
	program p;
	open_program(&p, NULL, 0);
	double x[N], out[N], z[N];
	make_data(x, out, z);
	for (int i = 0; i < N; i++)
		out[i] = 0.5 * x[i];
	const int t = 500, s = 480, ts[B] = { t, t, t, t }, ss[B] = { s, s, s, s };
	const double clips[2] = { 1, 0.01 };
	float first[N];
	for (int c = 0; c < 2; c++) {
		rt_tensorset sin = { 0 }, sout = { 0 };
		add_step_inputs(&sin, x, out, z, ts, ss, clips[c], 0);
		const rt_tensor *want = run(&p, "ddim_step", &sin, &sout, "x_prev");
		for (int seed = 0; seed < 2; seed++) {
			rt_tensor *sd = rt_set_find(&p.st, "rng.seed");
			rt_store(sd->dtype, sd->data, 0, seed);
			rt_tensorset in = { 0 }, o = { 0 };
			add_f32(&in, "sample.x", x);
			add_i32(&in, "sample.t", &t, 0);
			add_i32(&in, "sample.s", &s, 0);
			add_scalar(&in, "sample.eta", 0);
			add_scalar(&in, "sample.clip", clips[c]);
			const rt_tensor *got = run(&p, "sample_ddim", &in, &o, "x_prev");
			assert_memory_equal(got->data, want->data, N * sizeof(float));
			if (c == 0)
				memcpy(first, got->data, sizeof first);
			else
				assert_true(count_differing(first, got->data) > N / 2);
			rt_set_free(&in);
			rt_set_free(&o);
		}
		rt_set_free(&sin);
		rt_set_free(&sout);
	}
	close_program(&p);
}

static int setup(void **state)
{
	(void)state;
	linear_schedule();
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(ddpm_fixed_small_steps_match_diffusers),
		cmocka_unit_test(ddpm_fixed_large_steps_match_diffusers),
		cmocka_unit_test(ddim_eta0_steps_match_diffusers),
		cmocka_unit_test(ddim_eta05_steps_match_diffusers),
		cmocka_unit_test(timesteps_match_set_timesteps),
		cmocka_unit_test(ddpm_step_at_t0_adds_no_noise),
		cmocka_unit_test(linear_schedule_constants),
		cmocka_unit_test(cosine_schedule_betas),
		cmocka_unit_test(sample_ddpm_noise_follows_the_seed),
		cmocka_unit_test(sample_ddim_is_ddim_step_on_the_model),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
