/* samplers: the DDPM and DDIM steps of lua/ddpm/diffusion.lua, as the
 * entries ddpm_step, ddim_step, sample_ddpm and sample_ddim that
 * ddpm.program.diffusion builds (fixture tests/scripts/sampler_program.lua),
 * against DESIGN.md §4's closed forms computed here in double from the
 * schedule (betas = linspace(1e-4, 0.02, 1000) as numpy computes it,
 * alpha_bar the cumulative product):
 *
 * - ddpm_step at t = 0 (no noise), 1, 500 and 999, with both variances,
 *   x0 clipping active on some elements (and off with clip_sample=false);
 * - ddim_step with eta 0 and 1, s the previous step of a stride-20
 *   subsequence and s = -1 (alpha_bar = 1);
 * - the schedule constants alpha_bar_999 ~ 4.0358e-5, beta~_1 ~ 5.4532e-5,
 *   and the cosine schedule's first and last beta;
 * - sample_ddpm draws its noise from the rng.seed state: the same seed
 *   gives the same bytes, another seed other noise, t = 0 none.
 *
 * Tolerance. Inputs are f32 values and the closed form is computed from
 * those exact values; the interpreter rounds every schedule constant and
 * every node to f32 (relative 6e-8 each), a handful of times per result.
 * So |ours - closed| <= 1e-5 * max(1, |value|, m), where m is the size of
 * the largest term the formula sums (the x0 estimate at t = 999 is
 * (x - sqrt(1-abar) eps) / sqrt(abar): a difference of O(1) terms amplified
 * 157 times, each term carrying its own f32 rounding). Measured errors are
 * printed and are far below the bound. */
#include "testutil.h"

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

static double abar_at(int t)
{
	return t < 0 ? 1.0 : abar[t];
}

static double f32(double v)
{
	return (double)(float)v;
}

static double clip1(double v)
{
	return v < -1 ? -1 : v > 1 ? 1 : v;
}

/* DDPM ancestral step; *mag gets the largest term's size, *clipped whether
 * x0 was clipped. */
static double ddpm_closed(double x, double eps, double z, int t, int large, int clip,
                          double *mag, int *clipped)
{
	double ab = abar[t], abp = abar_at(t - 1), beta = betas[t];
	double a = sqrt(1 / ab) * x, b = sqrt(1 / ab - 1) * eps;
	double x0 = a - b;
	*clipped = clip && clip1(x0) != x0;
	if (clip)
		x0 = clip1(x0);
	double c0 = beta * sqrt(abp) / (1 - ab), cx = (1 - abp) * sqrt(1 - beta) / (1 - ab);
	double sigma = t == 0 ? 0 : large ? sqrt(beta) : sqrt(beta * (1 - abp) / (1 - ab));
	*mag = fmax(c0 * fmax(fabs(a), fabs(b)), fmax(fabs(cx * x), fabs(sigma * z)));
	return c0 * x0 + cx * x + sigma * z;
}

static double ddim_closed(double x, double eps, double z, int t, int s, double eta, double *mag)
{
	double at = abar[t], as = abar_at(s);
	double x0 = (x - sqrt(1 - at) * eps) / sqrt(at);
	double sigma = eta * sqrt((1 - as) / (1 - at)) * sqrt(1 - at / as);
	double dir = sqrt(fmax(1 - as - sigma * sigma, 0));
	*mag = fmax(sqrt(as) * (fabs(x) + sqrt(1 - at) * fabs(eps)) / sqrt(at),
	            fmax(fabs(dir * eps), fabs(sigma * z)));
	return sqrt(as) * x0 + dir * eps + sigma * z;
}

/* Test data: values in [-2, 2] from a fixed sequence, rounded to f32, with
 * element 0 of every sample set so that x ~ eps (x0 stays inside [-1, 1]
 * even at t = 999). */
static void make_data(double *x, double *eps, double *z)
{
	for (int i = 0; i < N; i++) {
		x[i] = f32(2 * sin(1.3 * i + 0.4));
		eps[i] = f32(1.7 * cos(0.7 * i + 1.1));
		z[i] = f32(1.5 * sin(2.9 * i + 0.2));
	}
	for (int b = 0; b < B; b++) {
		x[b * D] = f32(0.3 + 0.1 * b);
		eps[b * D] = f32(x[b * D] * 1.001);
	}
	x[1] = f32(1.5);      /* t = 0: x0 ~ 1.5, clipped */
	x[2] = f32(0.25);     /* t = 0: x0 ~ 0.25, not clipped */
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
	print_message("%s: worst error %.3g of the tolerance\n", what, worst);
	if (bad)
		fail_msg("%s: %d elements differ from the closed form", what, bad);
	return worst;
}

static const int TS[B] = { 0, 1, 500, 999 };

/* ddpm_step of a program loaded with `opts` against the closed form. */
static void check_ddpm(const fe_option *opts, int nopts, int large, int clip)
{
	program p;
	open_program(&p, opts, nopts);
	double x[N], eps[N], z[N], want[N], mag[N];
	int nclipped[B] = { 0 }, clipped;
	make_data(x, eps, z);
	for (int i = 0; i < N; i++) {
		want[i] = ddpm_closed(x[i], eps[i], z[i], TS[i / D], large, clip, &mag[i], &clipped);
		nclipped[i / D] += clipped;
	}
	if (clip)   /* the data exercises clipping at every t, and not everywhere */
		for (int b = 0; b < B; b++)
			assert_true(nclipped[b] > 0 && nclipped[b] < D);
	rt_tensorset in = { 0 }, out = { 0 };
	add_f32(&in, "step.x", x);
	add_f32(&in, "step.eps", eps);
	add_f32(&in, "step.z", z);
	add_i32(&in, "step.t", TS, B);
	char what[64];
	snprintf(what, sizeof what, "ddpm_step %s%s", large ? "fixed_large" : "fixed_small",
	         clip ? "" : " unclipped");
	compare(what, run(&p, "ddpm_step", &in, &out, "x_prev"), want, mag);
	rt_set_free(&in);
	rt_set_free(&out);
	close_program(&p);
}

static void ddpm_step_fixed_small_matches_closed_form(void **state)
{
	(void)state;
	check_ddpm(NULL, 0, 0, 1);
}

static void ddpm_step_fixed_large_matches_closed_form(void **state)
{
	(void)state;
	const fe_option o[] = { { "variance", "fixed_large" } };
	check_ddpm(o, 1, 1, 1);
}

static void ddpm_step_without_clipping_matches_closed_form(void **state)
{
	(void)state;
	const fe_option o[] = { { "clip_sample", "false" } };
	check_ddpm(o, 1, 0, 0);
}

/* At t = 0 the step adds no noise: z is ignored (and here huge). With
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
	const int t0[B] = { 0, 0, 0, 0 };
	rt_tensorset in1 = { 0 }, in2 = { 0 }, o1 = { 0 }, o2 = { 0 };
	add_f32(&in1, "step.x", x);
	add_f32(&in1, "step.eps", eps);
	add_f32(&in1, "step.z", z);
	add_i32(&in1, "step.t", t0, B);
	add_f32(&in2, "step.x", x);
	add_f32(&in2, "step.eps", eps);
	add_f32(&in2, "step.z", z2);
	add_i32(&in2, "step.t", t0, B);
	const rt_tensor *a = run(&p, "ddpm_step", &in1, &o1, "x_prev");
	const rt_tensor *b = run(&p, "ddpm_step", &in2, &o2, "x_prev");
	assert_memory_equal(a->data, b->data, N * sizeof(float));
	rt_set_free(&in1);
	rt_set_free(&in2);
	rt_set_free(&o1);
	rt_set_free(&o2);
	close_program(&p);
}

static void check_ddim(double eta)
{
	program p;
	open_program(&p, NULL, 0);
	/* A stride-20 subsequence 999, 979, ..., 19 and the last step 19 -> -1,
	 * plus 500 -> 480 and 20 -> 0. */
	const int ts[B] = { 999, 500, 20, 19 }, ss[B] = { 979, 480, 0, -1 };
	double x[N], eps[N], z[N], want[N], mag[N];
	make_data(x, eps, z);
	for (int i = 0; i < N; i++)
		want[i] = ddim_closed(x[i], eps[i], z[i], ts[i / D], ss[i / D], eta, &mag[i]);
	rt_tensorset in = { 0 }, out = { 0 };
	add_f32(&in, "step.x", x);
	add_f32(&in, "step.eps", eps);
	add_f32(&in, "step.z", z);
	add_i32(&in, "step.t", ts, B);
	add_i32(&in, "step.s", ss, B);
	add_scalar(&in, "step.eta", eta);
	char what[64];
	snprintf(what, sizeof what, "ddim_step eta=%g", eta);
	compare(what, run(&p, "ddim_step", &in, &out, "x_prev"), want, mag);
	rt_set_free(&in);
	rt_set_free(&out);

	/* The last step of the sequence at t = 999 (s = -1) returns x0_hat. */
	const int t999[B] = { 999, 999, 999, 999 }, sm1[B] = { -1, -1, -1, -1 };
	for (int i = 0; i < N; i++)
		want[i] = ddim_closed(x[i], eps[i], z[i], 999, -1, eta, &mag[i]);
	memset(&in, 0, sizeof in);
	memset(&out, 0, sizeof out);
	add_f32(&in, "step.x", x);
	add_f32(&in, "step.eps", eps);
	add_f32(&in, "step.z", z);
	add_i32(&in, "step.t", t999, B);
	add_i32(&in, "step.s", sm1, B);
	add_scalar(&in, "step.eta", eta);
	snprintf(what, sizeof what, "ddim_step eta=%g 999 -> -1", eta);
	compare(what, run(&p, "ddim_step", &in, &out, "x_prev"), want, mag);
	rt_set_free(&in);
	rt_set_free(&out);
	close_program(&p);
}

static void ddim_step_eta0_matches_closed_form(void **state)
{
	(void)state;
	check_ddim(0);
}

static void ddim_step_eta1_matches_closed_form(void **state)
{
	(void)state;
	check_ddim(1);
}

/* The schedule tables the steps gather from, and the constants of
 * DESIGN.md §4 as the entries themselves produce them. */
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

	/* ddpm_step with x = eps = 0, z = 1 returns sigma_t: beta~_1 (fixed_small)
	 * at t = 1. ddim_step 999 -> -1 with eps = 0, eta = 0 returns
	 * x / sqrt(alpha_bar_999). */
	double zero[N] = { 0 }, one[N];
	for (int i = 0; i < N; i++)
		one[i] = 1;
	const int t1[B] = { 1, 1, 1, 1 }, t999[B] = { 999, 999, 999, 999 }, sm1[B] = { -1, -1, -1, -1 };
	rt_tensorset in = { 0 };
	add_f32(&in, "step.x", zero);
	add_f32(&in, "step.eps", zero);
	add_f32(&in, "step.z", one);
	add_i32(&in, "step.t", t1, B);
	const rt_tensor *sig = run(&p, "ddpm_step", &in, &out, "x_prev");
	double s1 = rt_load(RT_F32, sig->data, 0), bt1 = betas[1] * (1 - abar[0]) / (1 - abar[1]);
	print_message("beta~_1 = %.6g (closed form %.6g)\n", s1 * s1, bt1);
	assert_true(fabs(s1 * s1 - 5.4532e-5) <= 5e-10);
	assert_true(fabs(s1 * s1 - bt1) <= 1e-6 * bt1);
	rt_set_free(&in);
	rt_set_free(&out);

	memset(&in, 0, sizeof in);
	add_f32(&in, "step.x", one);
	add_f32(&in, "step.eps", zero);
	add_f32(&in, "step.z", one);
	add_i32(&in, "step.t", t999, B);
	add_i32(&in, "step.s", sm1, B);
	add_scalar(&in, "step.eta", 0);
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

/* sample_ddpm's x_prev for x (the make_data x), t and the state's seed. */
static void sample_ddpm(program *p, int t, int seed, float *got)
{
	double x[N], eps[N], z[N];
	make_data(x, eps, z);
	rt_tensor *s = rt_set_find(&p->st, "rng.seed");
	assert_non_null(s);
	rt_store(s->dtype, s->data, 0, seed);
	rt_tensorset in = { 0 }, out = { 0 };
	add_f32(&in, "sample.x", x);
	add_i32(&in, "sample.t", &t, 0);
	const rt_tensor *r = run(p, "sample_ddpm", &in, &out, "x_prev");
	assert_int_equal(r->dtype, RT_F32);
	memcpy(got, r->data, N * sizeof(float));
	rt_set_free(&in);
	rt_set_free(&out);
}

/* mu of the step the sampler takes: ddpm_step with the model's eps
 * (0.5 x) and z = 0. */
static void ddpm_mean(program *p, int t, float *got)
{
	double x[N], eps[N], z[N];
	make_data(x, eps, z);
	for (int i = 0; i < N; i++)
		eps[i] = 0.5 * x[i], z[i] = 0;
	int ts[B] = { t, t, t, t };
	rt_tensorset in = { 0 }, out = { 0 };
	add_f32(&in, "step.x", x);
	add_f32(&in, "step.eps", eps);
	add_f32(&in, "step.z", z);
	add_i32(&in, "step.t", ts, B);
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
	ddpm_mean(p, t, mu);
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

	/* t = 0: no noise, so the seed does not matter and the step is the mean. */
	sample_ddpm(&p, 0, 3, a);
	sample_ddpm(&p, 0, 4, b);
	assert_memory_equal(a, b, sizeof a);
	ddpm_mean(&p, 0, mu);
	assert_memory_equal(a, mu, sizeof a);
	close_program(&p);
}

/* sample_ddim with eta = 0 is deterministic: the closed form with the
 * model's eps = 0.5 x, whatever the seed. */
static void sample_ddim_eta0_matches_closed_form(void **state)
{
	(void)state;
	program p;
	open_program(&p, NULL, 0);
	double x[N], eps[N], z[N], want[N], mag[N];
	make_data(x, eps, z);
	for (int i = 0; i < N; i++)
		want[i] = ddim_closed(x[i], 0.5 * x[i], 0, 500, 480, 0, &mag[i]);
	const int t = 500, s = 480;
	for (int seed = 0; seed < 2; seed++) {
		rt_tensor *sd = rt_set_find(&p.st, "rng.seed");
		rt_store(sd->dtype, sd->data, 0, seed);
		rt_tensorset in = { 0 }, out = { 0 };
		add_f32(&in, "sample.x", x);
		add_i32(&in, "sample.t", &t, 0);
		add_i32(&in, "sample.s", &s, 0);
		add_scalar(&in, "sample.eta", 0);
		compare("sample_ddim eta=0", run(&p, "sample_ddim", &in, &out, "x_prev"), want, mag);
		rt_set_free(&in);
		rt_set_free(&out);
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
		cmocka_unit_test(ddpm_step_fixed_small_matches_closed_form),
		cmocka_unit_test(ddpm_step_fixed_large_matches_closed_form),
		cmocka_unit_test(ddpm_step_without_clipping_matches_closed_form),
		cmocka_unit_test(ddpm_step_at_t0_adds_no_noise),
		cmocka_unit_test(ddim_step_eta0_matches_closed_form),
		cmocka_unit_test(ddim_step_eta1_matches_closed_form),
		cmocka_unit_test(linear_schedule_constants),
		cmocka_unit_test(cosine_schedule_betas),
		cmocka_unit_test(sample_ddpm_noise_follows_the_seed),
		cmocka_unit_test(sample_ddim_eta0_matches_closed_form),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
