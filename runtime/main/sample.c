/* sample.c: `OUT sample` — draws images with the sample_ddpm or
 * sample_ddim entry and writes them as a PNG grid.
 *
 * Images come in rounds of the compiled batch B (n rounded up, the extra
 * images discarded). Round r starts from x_T = N(0, I) drawn on the host:
 * Philox (seed, NOISE_STREAM) elements [r*B*CHW, (r+1)*B*CHW), and runs
 * with the state's rng.seed = seed + r (the entries draw their z from it).
 *   DDPM: t = T-1, ..., 0, one sample_ddpm call each (sample.t = t).
 *   DDIM with K steps ("leading" spacing, as diffusers' DDIMScheduler):
 *   t_i = i * floor(T/K), i = K-1, ..., 0; sample.t = t_i, sample.s = t_{i-1} (-1 after t_0),
 *   sample.eta = E.
 * Unless --no-ema, every state tensor ema.NAME is first copied into NAME
 * (sampling uses the EMA weights, DESIGN.md §5). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "exec.h"
#include "image.h"
#include "philox.h"
#include "safetensors.h"

#define NOISE_STREAM UINT64_C(0xFFFF)

typedef struct {
	const cli_opts *o;
	const rt_program *p;
	const rt_entry *e;
	int ddim;
	const rt_buffer *xb;    /* sample.x (B, C, H, W) */
	const char *xout;       /* the output that is x_{t-1} */
	int64_t T, K;
	rt_tensorset state, inputs, outputs;
	rt_tensor *x, *t, *s, *eta;     /* in inputs */
	rt_pool *pool;
	float *images;          /* (n, C, H, W) */
} sampler;

static int sample_check_entry(sampler *sm)
{
	const cli_opts *o = sm->o;
	const char *name = sm->ddim ? "sample_ddim" : "sample_ddpm";
	if (!(sm->e = rt_program_entry(sm->p, name)))
		return cli_fail(o, "this program has no %s entry", name);
	sm->xb = rt_entry_buffer(sm->e, RT_BUF_INPUT, "sample.x");
	if (!sm->xb || sm->xb->rank != 4)
		return cli_fail(o, "%s has no input sample.x of shape (B, C, H, W)", name);
	int nout = 0;
	for (int i = 0; i < sm->e->nbuf; i++)
		if (sm->e->buf[i].kind == RT_BUF_OUTPUT) {
			nout++;
			if (!sm->xout || strcmp(sm->e->buf[i].name, "x_prev") == 0)
				sm->xout = sm->e->buf[i].name;
		}
	if (!sm->xout || (nout > 1 && strcmp(sm->xout, "x_prev") != 0))
		return cli_fail(o, "%s has no output x_prev", name);
	const rt_buffer *ob = rt_entry_buffer(sm->e, RT_BUF_OUTPUT, sm->xout);
	if (ob->numel != sm->xb->numel)
		return cli_fail(o, "%s: output %s and input sample.x differ in size", name, sm->xout);
	return 0;
}

static int check_steps(sampler *sm)
{
	const cli_opts *o = sm->o;
	if (!(sm->T = sm->p->timesteps))
		return cli_fail(o, "the program does not say its number of timesteps (meta.timesteps)");
	if (!sm->ddim) {
		if (o->has_steps && o->steps != sm->T)
			return cli_fail(o, "--steps %lld: ddpm runs all %lld timesteps; use --sampler ddim "
			                "for fewer", (long long)o->steps, (long long)sm->T);
		if (o->has_eta)
			return cli_fail(o, "--eta applies to --sampler ddim only");
		sm->K = sm->T;
		return 0;
	}
	sm->K = o->has_steps ? o->steps : sm->T < 50 ? sm->T : 50;
	if (sm->K > sm->T)
		return cli_fail(o, "--steps %lld: at most %lld (the program's timesteps)",
		                (long long)sm->K, (long long)sm->T);
	return 0;
}

/* The state from the checkpoint (or, when the default one is absent,
 * from the seed, with a warning), then EMA weights and rng.seed. */
static int sample_load_state(sampler *sm)
{
	const cli_opts *o = sm->o;
	char err[1024], path[4096];
	rt_tensorset ckpt = { 0 };
	snprintf(path, sizeof path, "%s", o->has_ckpt ? o->ckpt : CLI_DEFAULT_DIR "/checkpoint.safetensors");
	int have = o->has_ckpt || access(path, F_OK) == 0;
	if (!have)
		fprintf(stderr, "%s: warning: %s not found; sampling from untrained weights (seed %lld)\n",
		        o->prog, path, (long long)o->seed);
	else if (rt_st_read(path, &ckpt, err, sizeof err) != RT_OK)
		return cli_fail(o, "%s", err);
	int rc = rt_state_init(sm->p, (uint64_t)o->seed, have ? &ckpt : NULL, path, &sm->state, err,
	                       sizeof err);
	rt_set_free(&ckpt);
	if (rc != RT_OK)
		return cli_fail(o, "%s", err);
	for (int i = 0; !o->no_ema && i < sm->state.n; i++) {
		const rt_tensor *ema = &sm->state.t[i];
		rt_tensor *w = strncmp(ema->name, "ema.", 4) == 0 ? rt_set_find(&sm->state, ema->name + 4)
		                                                 : NULL;
		if (w && rt_numel(w->rank, w->shape) == rt_numel(ema->rank, ema->shape))
			rt_tensor_convert(ema, w);
	}
	return 0;
}

/* The input tensors (looked up after all are added: adding moves them). */
static int make_inputs(sampler *sm)
{
	static const int64_t none[1] = { 0 };
	rt_tensorset *in = &sm->inputs;
	int ok = rt_set_add(in, "sample.x", RT_F32, 4, sm->xb->shape) &&
	         rt_set_add(in, "sample.t", RT_I32, 0, none) &&
	         (!sm->ddim || (rt_set_add(in, "sample.s", RT_I32, 0, none) &&
	                        rt_set_add(in, "sample.eta", RT_F32, 0, none)));
	if (!ok)
		return cli_fail(sm->o, "out of memory");
	sm->x = rt_set_find(in, "sample.x");
	sm->t = rt_set_find(in, "sample.t");
	sm->s = rt_set_find(in, "sample.s");
	sm->eta = rt_set_find(in, "sample.eta");
	if (sm->ddim)
		rt_store(RT_F32, sm->eta->data, 0, sm->o->eta);
	return 0;
}

/* Timestep i of K in the sampler's sequence: diffusers' "leading"
 * spacing t_i = i * (T / K) with integer division (DDPM: K = T, t_i = i). */
static int64_t step_t(const sampler *sm, int64_t i)
{
	return i < 0 ? -1 : i * (sm->T / sm->K);
}

/* One round: x_T from the noise stream, then every step. */
static int round_of(sampler *sm, int64_t r, int64_t rounds)
{
	const cli_opts *o = sm->o;
	char err[1024];
	int64_t n = sm->xb->numel;
	rt_philox_normal((uint64_t)o->seed, NOISE_STREAM, (uint64_t)(r * n), n, sm->x->data);
	cli_set_scalar(&sm->state, "rng.seed", (double)((o->seed + r) & 0x7fffffff));
	for (int64_t i = sm->K - 1; i >= 0; i--) {
		rt_store(RT_I32, sm->t->data, 0, (double)step_t(sm, i));
		if (sm->ddim)
			rt_store(RT_I32, sm->s->data, 0, (double)step_t(sm, i - 1));
		if (rt_entry_run(sm->p, sm->e, &sm->state, &sm->inputs, &sm->outputs, sm->pool, err,
		                 sizeof err) != RT_OK)
			return cli_fail(o, "%s", err);
		rt_tensor_convert(rt_set_find(&sm->outputs, sm->xout), sm->x);
		int64_t done = sm->K - i;
		if (done % 100 == 0 || i == 0) {
			printf("round %lld/%lld step %lld/%lld t %lld\n", (long long)(r + 1),
			       (long long)rounds, (long long)done, (long long)sm->K,
			       (long long)step_t(sm, i));
			fflush(stdout);
		}
	}
	return 0;
}

static int run(sampler *sm)
{
	const cli_opts *o = sm->o;
	int64_t b = sm->xb->shape[0], chw = sm->xb->numel / b, rounds = (o->n + b - 1) / b;
	if (!(sm->images = malloc((size_t)(rounds * b * chw) * sizeof *sm->images)))
		return cli_fail(o, "out of memory");
	printf("sample: %s, %lld images, %s %lld steps%s, %d threads, seed %lld\n", sm->p->model,
	       (long long)o->n, sm->ddim ? "ddim" : "ddpm", (long long)sm->K,
	       o->no_ema ? ", no EMA" : "", rt_pool_threads(sm->pool), (long long)o->seed);
	double t0 = cli_now();
	for (int64_t r = 0; r < rounds; r++) {
		if (round_of(sm, r, rounds))
			return 1;
		memcpy(sm->images + r * b * chw, sm->x->data, (size_t)(b * chw) * sizeof(float));
	}
	double secs = cli_now() - t0;
	char err[1024];
	const char *out = o->has_out ? o->out : "grid.png";
	if (rt_png_write_grid(out, sm->images, o->n, sm->xb->shape[1], sm->xb->shape[2],
	                      sm->xb->shape[3], err, sizeof err) != RT_OK)
		return cli_fail(o, "%s", err);
	printf("wrote %s: %lld images in %.1f s (%.1f steps/s)\n", out, (long long)o->n, secs,
	       (double)(rounds * sm->K) / secs);
	return 0;
}

int cli_sample(const cli_opts *o, const rt_program *p)
{
	sampler sm = { .o = o, .p = p };
	if (strcmp(o->sampler, "ddpm") != 0 && strcmp(o->sampler, "ddim") != 0)
		return cli_fail(o, "--sampler %s: expected ddpm or ddim", o->sampler);
	sm.ddim = strcmp(o->sampler, "ddim") == 0;
	int rc = sample_check_entry(&sm) || check_steps(&sm) || sample_load_state(&sm) || make_inputs(&sm) ||
	         !(sm.pool = cli_pool(o));
	if (!rc) {
		cli_profile_start(sm.e);
		rc = run(&sm);
		cli_profile_report(sm.e);
	}
	rt_pool_free(sm.pool);
	free(sm.images);
	rt_set_free(&sm.state);
	rt_set_free(&sm.inputs);
	rt_set_free(&sm.outputs);
	return rc;
}
