/* sample.c: `OUT sample` — draws images with the sample_ddpm or
 * sample_ddim entry and writes them as a PNG grid (--out) and/or one PNG
 * per image (--out-dir DIR: DIR/image_0000.png, ...). The drawing itself
 * (cli_sampler, cli.h) is shared with train's --sample-every.
 *
 * Images come in rounds of the compiled batch B (n rounded up, the extra
 * images discarded). Round r starts from x_T = N(0, I) drawn on the host:
 * Philox (seed, NOISE_STREAM) elements [r*B*CHW, (r+1)*B*CHW), and runs
 * with the state's rng.seed = seed + r (the entries draw their z from it).
 * Each of the K steps runs the entry once with sample.t and sample.s the
 * step's timestep and the one it goes to, as diffusers' DDPMScheduler or
 * DDIMScheduler would take them (timesteps.h: "leading" spacing unless
 * --spacing), sample.clip the x0 clip range (+inf: --no-clip) and, for
 * DDIM, sample.eta = E.
 * Unless --no-ema, every state tensor ema.NAME is first copied into NAME
 * (sampling uses the EMA weights, docs/semantics.md §5). --weights FILE takes the
 * parameters by name from any safetensors file (a diffusers
 * diffusion_pytorch_model.safetensors as is, or a diffusers folder, its
 * config.json checked against the program's: cli_read_weights); state it lacks is
 * initialised from the seed, and no EMA is applied (the file's weights
 * are the ones wanted). The entries run on the device (--device): the
 * state is invalidated there whenever the host writes it (weights, the
 * seed of a round). Everything depends only on the seed, the weights
 * and the flags: the same seed gives the same images. */
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
#include "timesteps.h"

#define NOISE_STREAM UINT64_C(0xFFFF)

struct cli_sampler {
	cli_opts opts;
	const cli_opts *o;      /* &opts */
	const rt_program *p;
	const rt_entry *e;
	int ddim;
	const rt_buffer *xb;    /* sample.x (B, C, H, W) */
	const char *xout;       /* the output that is x_{t-1} */
	int64_t T, K;
	int64_t *ts, *ss;       /* (K): step i goes from ts[i] to ss[i] */
	rt_tensorset state, inputs, outputs;
	rt_tensor *x, *t, *s, *eta, *clip;     /* in inputs */
	rt_device *dev;
	float *images;          /* (rounds * B, C, H, W) */
	int64_t images_cap;     /* floats */
	char weights[4400];     /* which weights: "EMA weights of PATH (step N)", ... */
};

typedef struct cli_sampler sampler;

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
	rt_spacing spacing;
	if (!(sm->T = sm->p->timesteps))
		return cli_fail(o, "the program does not say its number of timesteps (meta.timesteps)");
	if (!sm->ddim && o->has_eta)
		return cli_fail(o, "--eta applies to --sampler ddim only");
	if (rt_spacing_parse(o->spacing, &spacing))
		return cli_fail(o, "--spacing %s: expected leading, trailing or linspace", o->spacing);
	sm->K = o->has_steps ? o->steps : sm->ddim && sm->T > 50 ? 50 : sm->T;
	if (sm->K > sm->T)
		return cli_fail(o, "--steps %lld: at most %lld (the program's timesteps)",
		                (long long)sm->K, (long long)sm->T);
	sm->ts = malloc((size_t)sm->K * sizeof *sm->ts);
	sm->ss = malloc((size_t)sm->K * sizeof *sm->ss);
	if (!sm->ts || !sm->ss)
		return cli_fail(o, "out of memory");
	rt_timesteps(sm->T, sm->K, spacing, sm->ddim, sm->ts, sm->ss);
	return 0;
}

/* The x0 clip range the steps get: the flags', else the program's. */
static double clip_range(const sampler *sm)
{
	const cli_opts *o = sm->o;
	if (o->no_clip || (!o->has_clip_range && !cli_meta_bool(sm->p, "clip_sample", 1)))
		return INFINITY;
	return o->has_clip_range ? o->clip_range : cli_meta_num(sm->p, "clip_sample_range", 1.0);
}

/* sm->state := fresh, keeping the tensors' addresses when the layout is
 * the same (as it is from one call to the next): a device keys its copies
 * by address, and a new address each time would be a new copy. */
static void replace_state(sampler *sm, rt_tensorset *fresh)
{
	int same = sm->state.n == fresh->n;
	for (int i = 0; same && i < fresh->n; i++) {
		const rt_tensor *a = &sm->state.t[i], *b = &fresh->t[i];
		same = strcmp(a->name, b->name) == 0 && a->dtype == b->dtype &&
		       rt_numel(a->rank, a->shape) == rt_numel(b->rank, b->shape);
	}
	if (!same) {
		rt_set_free(&sm->state);
		sm->state = *fresh;
		return;
	}
	for (int i = 0; i < fresh->n; i++)
		memcpy(sm->state.t[i].data, fresh->t[i].data,
		       (size_t)rt_numel(fresh->t[i].rank, fresh->t[i].shape) *
		       rt_dtype_size(fresh->t[i].dtype));
	rt_set_free(fresh);
}

/* The EMA weights stand in for the trained ones once the initial weights'
 * share in them (optim.ema_init_share, the product of the decays applied)
 * is below this. */
#define EMA_READY_SHARE 0.01

/* Copies every ema.NAME into NAME. */
static void use_ema(sampler *sm)
{
	for (int i = 0; i < sm->state.n; i++) {
		const rt_tensor *e = &sm->state.t[i];
		rt_tensor *w = strncmp(e->name, "ema.", 4) == 0 ? rt_set_find(&sm->state, e->name + 4)
		                                               : NULL;
		if (w && rt_numel(w->rank, w->shape) == rt_numel(e->rank, e->shape))
			rt_tensor_convert(e, w);
	}
}

int cli_sampler_weights(sampler *sm, const rt_tensorset *weights, const char *name,
                        uint64_t seed, int ema)
{
	char err[1024];
	rt_tensorset fresh = { 0 };
	if (rt_state_init(sm->p, seed, weights, name, &fresh, err, sizeof err) != RT_OK)
		return cli_fail(sm->o, "%s", err);
	replace_state(sm, &fresh);
	int has_ema = 0;
	for (int i = 0; i < sm->state.n && !has_ema; i++)
		has_ema = strncmp(sm->state.t[i].name, "ema.", 4) == 0;
	double share = cli_scalar(&sm->state, "optim.ema_init_share");
	if (!ema || !has_ema)
		snprintf(sm->weights, sizeof sm->weights, "the weights of %s", name);
	else if (share > EMA_READY_SHARE)
		snprintf(sm->weights, sizeof sm->weights, "the trained weights of %s (its EMA still "
		         "holds %.0f %% of the initial weights)", name, 100 * share);
	else {
		snprintf(sm->weights, sizeof sm->weights, "the EMA weights of %s", name);
		use_ema(sm);
	}
	if (sm->dev)
		rt_device_invalidate(sm->dev, &sm->state);
	return 0;
}

const char *cli_sampler_weights_used(const sampler *sm)
{
	return sm->weights;
}

int cli_sampler_load(sampler *sm)
{
	const cli_opts *o = sm->o;
	char err[1024], path[RT_WEIGHTS_PATH];
	rt_tensorset file = { 0 };
	if (o->has_ckpt && o->has_weights)
		return cli_fail(o, "--ckpt and --weights: give one of them");
	snprintf(path, sizeof path, "%s", o->has_ckpt ? o->ckpt
	         : CLI_DEFAULT_DIR "/checkpoint.safetensors");
	int have = o->has_ckpt || o->has_weights || access(path, F_OK) == 0;
	if (!have)
		fprintf(stderr, "%s: warning: %s not found; sampling from untrained weights (seed %lld)\n",
		        o->prog, path, (long long)o->seed);
	else if (o->has_weights && cli_read_weights(o, sm->p, o->weights, &file, path))
		return 1;
	else if (!o->has_weights && rt_st_read(path, &file, err, sizeof err) != RT_OK)
		return cli_fail(o, "%s", err);
	if (cli_ckpt_finite(o, &file, path)) {
		rt_set_free(&file);
		return 1;
	}
	char what[4200];
	const char *step = rt_get_meta(&file, "step");
	snprintf(what, sizeof what, step ? "%s (step %s)" : "%s", path, step);
	int rc = cli_sampler_weights(sm, have ? &file : NULL, what, (uint64_t)o->seed,
	                             !o->no_ema && !o->has_weights);
	if (!have)
		snprintf(sm->weights, sizeof sm->weights, "untrained weights (seed %lld)",
		         (long long)o->seed);
	rt_set_free(&file);
	return rc;
}

/* The input tensors (looked up after all are added: adding moves them). */
static int make_inputs(sampler *sm)
{
	static const int64_t none[1] = { 0 };
	rt_tensorset *in = &sm->inputs;
	int ok = rt_set_add(in, "sample.x", RT_F32, 4, sm->xb->shape) &&
	         rt_set_add(in, "sample.t", RT_I32, 0, none) &&
	         rt_set_add(in, "sample.s", RT_I32, 0, none) &&
	         rt_set_add(in, "sample.clip", RT_F32, 0, none) &&
	         (!sm->ddim || rt_set_add(in, "sample.eta", RT_F32, 0, none));
	if (!ok)
		return cli_fail(sm->o, "out of memory");
	sm->x = rt_set_find(in, "sample.x");
	sm->t = rt_set_find(in, "sample.t");
	sm->s = rt_set_find(in, "sample.s");
	sm->clip = rt_set_find(in, "sample.clip");
	sm->eta = rt_set_find(in, "sample.eta");
	rt_store(RT_F32, sm->clip->data, 0, clip_range(sm));
	if (sm->ddim)
		rt_store(RT_F32, sm->eta->data, 0, sm->o->eta);
	return 0;
}

/* rng.seed of the state, and of the device's copy of it alone. */
static void set_round_seed(sampler *sm, int64_t seed)
{
	rt_tensorset one = { .t = rt_set_find(&sm->state, "rng.seed"), .n = 1 };
	cli_set_scalar(&sm->state, "rng.seed", (double)seed);
	if (one.t)
		rt_device_invalidate(sm->dev, &one);
}

/* One round: x_T from the noise stream, then every step; the bar counts
 * the steps of all rounds. Returns 2 when *stop was set. */
static int round_of(sampler *sm, int64_t seed, int64_t r, int64_t rounds, int bar,
                    cli_progress *pg, volatile sig_atomic_t *stop)
{
	const cli_opts *o = sm->o;
	char err[1024];
	int64_t n = sm->xb->numel;
	rt_philox_normal((uint64_t)seed, NOISE_STREAM, (uint64_t)(r * n), n, sm->x->data);
	set_round_seed(sm, (seed + r) & 0x7fffffff);
	for (int64_t i = 0; i < sm->K; i++) {
		if (stop && *stop)
			return 2;
		rt_store(RT_I32, sm->t->data, 0, (double)sm->ts[i]);
		rt_store(RT_I32, sm->s->data, 0, (double)sm->ss[i]);
		if (rt_device_run(sm->dev, sm->e, &sm->state, &sm->inputs, &sm->outputs, err,
		                  sizeof err) != RT_OK)
			return cli_fail(o, "%s", err);
		rt_tensor_convert(rt_set_find(&sm->outputs, sm->xout), sm->x);
		int64_t done = i + 1;
		if (bar >= 0 && pg->tty) {
			char extra[64];
			snprintf(extra, sizeof extra, "round %lld/%lld t %lld", (long long)(r + 1),
			         (long long)rounds, (long long)sm->ts[i]);
			cli_progress_update(pg, r * sm->K + done, extra, 0);
		} else if (bar >= 0 && (done % 100 == 0 || done == sm->K)) {
			printf("round %lld/%lld step %lld/%lld t %lld\n", (long long)(r + 1),
			       (long long)rounds, (long long)done, (long long)sm->K,
			       (long long)sm->ts[i]);
			fflush(stdout);
		}
	}
	return 0;
}

int cli_sampler_draw(sampler *sm, int64_t n, int64_t seed, int bar, volatile sig_atomic_t *stop,
                     const float **images)
{
	int64_t b = sm->xb->shape[0], chw = sm->xb->numel / b, rounds = (n + b - 1) / b;
	if (rounds * b * chw > sm->images_cap) {
		float *p = realloc(sm->images, (size_t)(rounds * b * chw) * sizeof *p);
		if (!p)
			return cli_fail(sm->o, "out of memory");
		sm->images = p;
		sm->images_cap = rounds * b * chw;
	}
	cli_progress pg;
	cli_progress_start(&pg, "sample", rounds * sm->K);
	int rc = 0;
	for (int64_t r = 0; r < rounds && !rc; r++) {
		rc = round_of(sm, seed, r, rounds, bar, &pg, stop);
		if (!rc)
			memcpy(sm->images + r * b * chw, sm->x->data, (size_t)(b * chw) * sizeof(float));
	}
	cli_progress_end(&pg);
	*images = sm->images;
	return rc;
}

void cli_sampler_image(const sampler *sm, int64_t chw[3])
{
	chw[0] = sm->xb->shape[1], chw[1] = sm->xb->shape[2], chw[2] = sm->xb->shape[3];
}

int64_t cli_sampler_steps(const sampler *sm)
{
	return sm->K;
}

cli_sampler *cli_sampler_new(const cli_opts *o, const rt_program *p, rt_device *dev)
{
	sampler *sm = calloc(1, sizeof *sm);
	if (!sm) {
		cli_fail(o, "out of memory");
		return NULL;
	}
	sm->opts = *o;
	sm->o = &sm->opts;
	sm->p = p;
	sm->dev = dev;
	if (strcmp(o->sampler, "ddpm") != 0 && strcmp(o->sampler, "ddim") != 0) {
		cli_fail(o, "--sampler %s: expected ddpm or ddim", o->sampler);
		cli_sampler_free(sm);
		return NULL;
	}
	sm->ddim = strcmp(o->sampler, "ddim") == 0;
	if (sample_check_entry(sm) || check_steps(sm) || make_inputs(sm)) {
		cli_sampler_free(sm);
		return NULL;
	}
	return sm;
}

void cli_sampler_free(sampler *sm)
{
	if (!sm)
		return;
	free(sm->images);
	free(sm->ts);
	free(sm->ss);
	rt_set_free(&sm->state);
	rt_set_free(&sm->inputs);
	rt_set_free(&sm->outputs);
	free(sm);
}

/* image_0000.png, ... in o->out_dir, each image without a border. */
static int write_each(const sampler *sm, const float *x, int64_t n)
{
	const cli_opts *o = sm->o;
	char err[1024], path[4200];
	int64_t chw[3];
	cli_sampler_image(sm, chw);
	int64_t c = chw[0], hw = chw[1] * chw[2];
	if (c != 1 && c != 3)
		return cli_fail(o, "--out-dir: images of %lld channels cannot be PNG files", (long long)c);
	if (cli_mkdirs(o->out_dir))
		return cli_fail(o, "cannot create %s: %s", o->out_dir, strerror(errno));
	uint8_t *px = malloc((size_t)(c * hw));
	if (!px)
		return cli_fail(o, "out of memory");
	int rc = 0;
	for (int64_t i = 0; i < n && !rc; i++) {
		const float *img = x + i * c * hw;      /* (c, h, w) planes -> (h, w, c) */
		for (int64_t k = 0; k < hw; k++)
			for (int64_t ch = 0; ch < c; ch++)
				px[k * c + ch] = rt_quantise(img[ch * hw + k]);
		snprintf(path, sizeof path, "%s/image_%04lld.png", o->out_dir, (long long)i);
		if (rt_png_write_pixels(path, px, chw[1], chw[2], c, err, sizeof err) != RT_OK)
			rc = cli_fail(o, "%s", err);
	}
	free(px);
	return rc;
}

static int run(sampler *sm)
{
	const cli_opts *o = sm->o;
	const float *x;
	int64_t chw[3];
	cli_sampler_image(sm, chw);
	printf("sample: %s, %lld images, %s %lld steps, %s, %s, seed %lld\n", sm->p->model,
	       (long long)o->n, sm->ddim ? "ddim" : "ddpm", (long long)sm->K, sm->weights,
	       rt_device_name(sm->dev), (long long)o->seed);
	fflush(stdout);
	double t0 = rt_seconds();
	if (cli_sampler_draw(sm, o->n, o->seed, 1, NULL, &x))
		return 1;
	double secs = rt_seconds() - t0;
	int64_t rounds = (o->n + sm->xb->shape[0] - 1) / sm->xb->shape[0];
	char err[1024];
	if (o->has_out_dir && write_each(sm, x, o->n))
		return 1;
	const char *out = o->has_out || !o->has_out_dir ? o->out : NULL;
	if (out && rt_png_write_grid(out, x, o->n, chw[0], chw[1], chw[2], o->scale, err,
	                             sizeof err) != RT_OK)
		return cli_fail(o, "%s", err);
	printf("wrote %s%s%s: %lld images in %.1f s (%.1f steps/s)\n", out ? out : "",
	       out && o->has_out_dir ? " and " : "", o->has_out_dir ? o->out_dir : "",
	       (long long)o->n, secs, (double)(rounds * sm->K) / secs);
	return 0;
}

/* Where the images go can take them: refused before any sampling. */
static int check_outputs(const cli_opts *o)
{
	if ((o->has_out || !o->has_out_dir) && cli_check_out_file(o, "--out", o->out))
		return 1;
	return o->has_out_dir && cli_check_out_dir(o, "--out-dir", o->out_dir);
}

int cli_sample(const cli_opts *o, const rt_program *p)
{
	rt_device *dev = NULL;
	if (check_outputs(o))
		return 1;
	sampler *sm = cli_sampler_new(o, p, NULL);
	int rc = !sm || !(dev = cli_device(o, p));
	if (!rc)
		sm->dev = dev;
	rc = rc || cli_sampler_load(sm);
	if (!rc) {
		cli_profile_start(sm->dev, sm->e);
		rc = run(sm);
		cli_profile_report(sm->dev, sm->e);
	}
	cli_sampler_free(sm);
	rt_device_free(dev);
	return rc;
}
