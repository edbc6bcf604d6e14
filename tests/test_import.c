/* import: `ddpmc import DIR -o MODEL.lua` (compiler/driver/import.c) and
 * weights given as diffusers folders (runtime/weights.c: sample --weights,
 * ddpmc run --weights, train --init).
 *
 * tests/golden/import_pipeline is a DDPMPipeline folder saved by diffusers
 * (make_import_golden.py) with settings unlike ddpmc's test models
 * (flip_sin_to_cos true and freq_shift 0 with DDPM's blocks, four attention
 * heads, a cosine schedule of 100 steps, v_prediction, fixed_large). It is
 * imported once and the script compiled once (batch 2); then:
 *   - the script carries the UNet's and the scheduler's settings;
 *   - `ddpmc run --weights DIR` of its forward entry gives diffusers' eps
 *     (import_io.safetensors) to 1e-4, as the U-Net golden tests require;
 *   - `sample --weights DIR` draws diffusers' samples (import_samples.
 *     safetensors: DDIM, DDPM and DDIM with eta 1 from the executable's
 *     noise, each with its own flags): every pixel within one level of
 *     diffusers' sample quantised as sample quantises, at most 1 % of them
 *     a level off;
 *   - a copy whose config.json says flip_sin_to_cos false is refused by run
 *     and sample, naming the field and both values; config.json given as
 *     the weights is refused as JSON;
 *   - so are copies whose scheduler_config.json says another
 *     num_train_timesteps, prediction_type, clip_sample or class, and a
 *     linear schedule's other beta_end; the betas of a cosine schedule and
 *     timestep_spacing (a sample flag) are not compared;
 *   - settings ddpmc does not implement are refused by import, naming the
 *     file, field and value; diffusers' bookkeeping keys are ignored; a
 *     linear schedule's betas are carried, and a folder without a scheduler
 *     gets DDPMScheduler's defaults;
 *   - train --init DIR starts at step 0 with the folder's weights as
 *     parameters and EMA (lr 0: they stay), and --init with a checkpoint
 *     starts afresh too; --init with --resume is refused;
 *   - that run's export imports to the same script, and passes as --weights. */
#include "testutil.h"

#include <stdint.h>

#include "data.h"
#include "image.h"
#include "json.h"
#include "weights.h"

static char dir[64], exe[128], script[128], golden[512], io[512], samples[512];

/* Runs a command; its stdout and stderr into out (size 8192). */
static int run(char *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int run(char *out, const char *fmt, ...)
{
	char cmd[3000];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	return tu_output_of(cmd, out, 8192);
}

/* The file src with the first `from` replaced by `to`, written to dst. */
static void copy_edited(const char *src, const char *dst, const char *from, const char *to)
{
	static char text[1 << 16], edited[1 << 16];
	FILE *f = fopen(src, "rb");
	assert_non_null(f);
	size_t n = fread(text, 1, sizeof text - 1, f);
	fclose(f);
	text[n] = 0;
	char *at = strstr(text, from);
	if (!at)
		fail_msg("%s has no '%s'", src, from);
	snprintf(edited, sizeof edited, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
	f = fopen(dst, "wb");
	assert_non_null(f);
	fputs(edited, f);
	fclose(f);
}

/* dir/NAME: a copy of the golden pipeline whose unet/config.json (or
 * scheduler/scheduler_config.json when sched) has `from` replaced by `to`. */
static const char *edited_pipeline(const char *name, int sched, const char *from, const char *to)
{
	static char path[256];
	char out[8192], src[1024], dst[512];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	assert_int_equal(run(out, "cp -r '%s' '%s'", golden, path), 0);
	const char *file = sched ? "scheduler/scheduler_config.json" : "unet/config.json";
	snprintf(src, sizeof src, "%s/%s", golden, file);
	snprintf(dst, sizeof dst, "%s/%s", path, file);
	copy_edited(src, dst, from, to);
	return path;
}

static int setup(void **unused)
{
	char out[8192];
	tu_tmpdir(dir, sizeof dir);
	snprintf(exe, sizeof exe, "%s/imported", dir);
	snprintf(script, sizeof script, "%s/imported.lua", dir);
	snprintf(golden, sizeof golden, "%s/tests/golden/import_pipeline", DDPMC_SOURCE_DIR);
	snprintf(io, sizeof io, "%s/tests/golden/import_io.safetensors", DDPMC_SOURCE_DIR);
	snprintf(samples, sizeof samples, "%s/tests/golden/import_samples.safetensors",
	         DDPMC_SOURCE_DIR);
	if (run(out, "'%s' import '%s' -o '%s'", DDPMC_BIN, golden, script) ||
	    run(out, "'%s' compile '%s' --set batch=2 --target cpu -o '%s'", DDPMC_BIN, script, exe)) {
		print_error("%s\n", out);
		return -1;
	}
	return 0;
}

static int teardown(void **unused)
{
	tu_rmtree(dir);
	return 0;
}

static void script_carries_the_settings(void **unused)
{
	char text[8192];
	FILE *f = fopen(script, "rb");
	assert_non_null(f);
	text[fread(text, 1, sizeof text - 1, f)] = 0;
	fclose(f);
	CONTAINS(text, "flip_sin_to_cos = true,", "freq_shift = 0,", "attention_head_dim = 4,",
	         "norm_eps = 1e-06,", "downsample_padding = 0,", "block_out_channels = { 8, 16 },",
	         "down_block_types = { \"DownBlock2D\", \"AttnDownBlock2D\" },",
	         "attn_norm_num_groups = nn.None,", "image = { 3, 8, 8 }", "schedule = \"cosine\"",
	         "timesteps = 100", "prediction = \"v_prediction\"", "variance = \"fixed_large\"",
	         "clip_sample = false");
	assert_null(strstr(text, "_diffusers_version"));
}

static void existing_script_needs_force(void **unused)
{
	char out[8192];
	assert_int_not_equal(run(out, "'%s' import '%s' -o '%s'", DDPMC_BIN, golden, script), 0);
	CONTAINS(out, "imported.lua exists: --force replaces it");
	assert_int_equal(run(out, "'%s' import '%s' -o '%s' --force", DDPMC_BIN, golden, script), 0);
}

static void forward_matches_diffusers(void **unused)
{
	char out[8192], got[256];
	rt_tensorset want = { 0 }, have = { 0 };
	snprintf(got, sizeof got, "%s/eps.safetensors", dir);
	if (run(out, "'%s' run '%s' --set batch=2 --entry forward --weights '%s' --inputs '%s' -o '%s'",
	        DDPMC_BIN, script, golden, io, got))
		fail_msg("ddpmc run: %s", out);
	tu_read_st(io, &want);
	tu_read_st(got, &have);
	const rt_tensor *w = rt_set_find(&want, "eps"), *h = rt_set_find(&have, "eps");
	assert_non_null(w);
	assert_non_null(h);
	int64_t n = rt_numel(w->rank, w->shape);
	assert_int_equal(rt_numel(h->rank, h->shape), n);
	double worst = 0;
	for (int64_t i = 0; i < n; i++)
		worst = fmax(worst, fabs(rt_load(h->dtype, h->data, i) - rt_load(w->dtype, w->data, i)));
	print_message("imported forward vs diffusers: max |error| %g (largest |eps| %g)\n", worst,
	              tu_max_abs(w));
	if (!(worst <= 1e-4))
		fail_msg("eps differs from diffusers by %g (limit 1e-4)", worst);
	rt_set_free(&want);
	rt_set_free(&have);
}

static void executable_samples_from_the_folder(void **unused)
{
	char out[8192];
	if (run(out, "'%s' sample --weights '%s' --n 2 --steps 3 --threads 2 --out '%s/grid.png'", exe,
	        golden, dir))
		fail_msg("sample: %s", out);
	CONTAINS(out, "the weights of ", "import_pipeline/unet/diffusion_pytorch_model.safetensors");
}

/* Pixels of dir/NAME/image_000I.png against want (C, H, W) quantised as
 * sample quantises: the largest difference in levels; *off counts those
 * that differ. */
static int pixels_off(const char *name, int i, const rt_tensor *want, int64_t chw, int *off)
{
	char path[256], err[1024];
	uint8_t *px;
	int64_t h, w, worst = 0;
	snprintf(path, sizeof path, "%s/%s/image_%04d.png", dir, name, i);
	if (rt_image_read(path, want->shape[1], want->shape[2], want->shape[3],
	                  &(rt_image_opts){ 0 }, &px, &h, &w, err, sizeof err) != RT_OK)
		fail_msg("%s", err);
	for (int64_t k = 0; k < chw; k++) {
		int64_t d = llabs((int64_t)px[k] -
		                  rt_quantise((float)rt_load(want->dtype, want->data, i * chw + k)));
		worst = d > worst ? d : worst;
		*off += d > 0;
	}
	free(px);
	return (int)worst;
}

/* The executable's sample with the flags of golden case NAME (the file's
 * metadata) against diffusers' final sample NAME.x. */
static void samples_like_diffusers(const rt_tensorset *g, const char *name)
{
	char out[8192], key[64];
	const char *flags = rt_get_meta(g, name);
	snprintf(key, sizeof key, "%s.x", name);
	const rt_tensor *want = rt_set_find(g, key);
	assert_non_null(flags);
	assert_non_null(want);
	if (run(out, "'%s' sample --weights '%s' --n %lld --threads 2 --out-dir '%s/%s' %s", exe,
	        golden, (long long)want->shape[0], dir, name, flags))
		fail_msg("sample %s: %s", flags, out);
	int64_t chw = rt_numel(want->rank, want->shape) / want->shape[0];
	int worst = 0, off = 0;
	for (int i = 0; i < want->shape[0]; i++) {
		int d = pixels_off(name, i, want, chw, &off);
		worst = d > worst ? d : worst;
	}
	int64_t n = rt_numel(want->rank, want->shape);
	print_message("sample %s vs diffusers: %d of %lld pixels off, by at most %d\n", flags, off,
	              (long long)n, worst);
	if (worst > 1 || off * 100 > n)
		fail_msg("sample %s: %d of %lld pixels differ from diffusers', by up to %d levels "
		         "(limit: 1 level, on 1 %%)", flags, off, (long long)n, worst);
}

static void samples_match_diffusers(void **unused)
{
	rt_tensorset g = { 0 };
	tu_read_st(samples, &g);
	samples_like_diffusers(&g, "ddim_leading");
	samples_like_diffusers(&g, "ddpm_leading");
	samples_like_diffusers(&g, "ddim_trailing_eta1");
	rt_set_free(&g);
}

static void mismatched_config_is_refused(void **unused)
{
	char out[8192];
	const char *bad = edited_pipeline("flipped", 0, "\"flip_sin_to_cos\": true",
	                                  "\"flip_sin_to_cos\": false");
	const char *why = "flip_sin_to_cos is false there, true in this program";
	assert_int_not_equal(run(out, "'%s' sample --weights '%s' --n 2 --steps 2", exe, bad), 0);
	CONTAINS(out, "flipped/unet/config.json: ", why);
	assert_int_not_equal(run(out, "'%s' sample --weights '%s/unet/diffusion_pytorch_model"
	                         ".safetensors' --n 2 --steps 2", exe, bad), 0);
	CONTAINS(out, why);
	assert_int_not_equal(run(out, "'%s' run '%s' --set batch=2 --entry forward --weights '%s' "
	                         "--inputs '%s' -o '%s/x.safetensors'", DDPMC_BIN, script, bad, io,
	                         dir), 0);
	CONTAINS(out, why);
	assert_int_equal(tu_lines(out), 1);
}

/* sample --weights on a copy of the golden folder whose scheduler config
 * has `from` replaced by `to`: refused naming `why` (NULL: accepted). */
static void sample_with_scheduler(const char *name, const char *from, const char *to,
                                  const char *why)
{
	char out[8192], file[256];
	const char *w = edited_pipeline(name, 1, from, to);
	int rc = run(out, "'%s' sample --weights '%s' --n 2 --steps 1 --out '%s/%s.png'", exe, w, dir,
	             name);
	if (!why) {
		if (rc)
			fail_msg("%s: %s", name, out);
		return;
	}
	assert_int_not_equal(rc, 0);
	snprintf(file, sizeof file, "%s/scheduler/scheduler_config.json: ", name);
	CONTAINS(out, file, why);
	assert_int_equal(tu_lines(out), 1);
}

static void mismatched_scheduler_is_refused(void **unused)
{
	char out[8192], script2[256], linear[256];
	sample_with_scheduler("steps", "\"num_train_timesteps\": 100", "\"num_train_timesteps\": 1000",
	                      "num_train_timesteps is 1000 there, 100 in this program: the pipeline "
	                      "samples with another scheduler (ddpmc import writes a script for it)");
	sample_with_scheduler("eps", "\"v_prediction\"", "\"epsilon\"",
	                      "prediction_type is \"epsilon\" there, \"v_prediction\" in");
	sample_with_scheduler("clipped", "\"clip_sample\": false", "\"clip_sample\": true",
	                      "clip_sample is true there, false in");
	sample_with_scheduler("lin", "\"squaredcos_cap_v2\"", "\"linear\"",
	                      "beta_schedule is \"linear\" there, \"squaredcos_cap_v2\" in");
	sample_with_scheduler("pndm", "\"DDPMScheduler\"", "\"PNDMScheduler\"",
	                      "the config of a PNDMScheduler; ddpmc samples as DDPMScheduler and "
	                      "DDIMScheduler do (give the unet folder to take the weights alone)");
	/* not compared: the betas of a cosine schedule, the spacing */
	sample_with_scheduler("cosbeta", "\"beta_end\": 0.02", "\"beta_end\": 0.03", NULL);
	sample_with_scheduler("spacing", "\"leading\"", "\"trailing\"", NULL);
	/* a linear program: its beta_end, and ddpmc run's check */
	snprintf(linear, sizeof linear, "%s",
	         edited_pipeline("lin012", 1, "\"beta_end\": 0.02,\n  \"beta_schedule\": "
	                         "\"squaredcos_cap_v2\"", "\"beta_end\": 0.012,\n  "
	                         "\"beta_schedule\": \"linear\""));
	snprintf(script2, sizeof script2, "%s/lin012.lua", dir);
	if (run(out, "'%s' import '%s' -o '%s'", DDPMC_BIN, linear, script2))
		fail_msg("import: %s", out);
	const char *other = edited_pipeline("lin02", 1, "\"squaredcos_cap_v2\"", "\"linear\"");
	assert_int_not_equal(run(out, "'%s' run '%s' --set batch=2 --entry forward --weights '%s' "
	                         "--inputs '%s' -o '%s/x.safetensors'", DDPMC_BIN, script2, other, io,
	                         dir), 0);
	CONTAINS(out, "lin02/scheduler/scheduler_config.json: beta_end is 0.02 there, 0.012 in this "
	         "program");
	assert_int_equal(tu_lines(out), 1);
	if (run(out, "'%s' run '%s' --set batch=2 --entry forward --weights '%s' --inputs '%s' -o "
	        "'%s/x.safetensors'", DDPMC_BIN, script2, linear, io, dir))
		fail_msg("run --weights with its own scheduler: %s", out);
}

static void config_json_is_not_weights(void **unused)
{
	char out[8192];
	assert_int_not_equal(run(out, "'%s' sample --weights '%s/unet/config.json' --n 2", exe,
	                         golden), 0);
	CONTAINS(out, "config.json is a JSON file, not weights");
	assert_int_equal(tu_lines(out), 1);
}

/* import refuses DIR (a copy with one edit) naming `what`. */
static void refused(const char *name, int sched, const char *from, const char *to,
                    const char *what)
{
	char out[8192];
	const char *bad = edited_pipeline(name, sched, from, to);
	assert_int_not_equal(run(out, "'%s' import '%s' -o '%s/%s.lua'", DDPMC_BIN, bad, dir, name), 0);
	CONTAINS(out, what);
	assert_int_equal(tu_lines(out), 1);
}

static void unsupported_settings_are_refused(void **unused)
{
	char out[8192];
	refused("fourier", 0, "\"positional\"", "\"fourier\"",
	        "fourier/unet/config.json: time_embedding_type = \"fourier\" is not supported "
	        "(ddpmc supports [\"positional\"])");
	refused("unknown", 0, "\"act_fn\"", "\"upcast_attention\": true, \"act_fn\"",
	        "upcast_attention = true is not supported (ddpmc knows no UNet2DModel setting");
	refused("classes", 0, "\"num_class_embeds\": null", "\"num_class_embeds\": 10",
	        "num_class_embeds = 10 is not supported");
	refused("gelu", 0, "\"silu\"", "\"gelu\"", "act_fn = \"gelu\" is not supported");
	refused("scaled", 1, "\"squaredcos_cap_v2\"", "\"scaled_linear\"",
	        "scheduler/scheduler_config.json: beta_schedule = \"scaled_linear\" is not supported "
	        "(ddpmc supports linear, squaredcos_cap_v2)");
	refused("learned", 1, "\"fixed_large\"", "\"learned_range\"", "variance_type = \"learned_range\"");
	refused("thresh", 1, "\"thresholding\": false", "\"thresholding\": true", "thresholding = true");
	refused("groups", 0, "\"norm_num_groups\": 4", "\"norm_num_groups\": 5",
	        "groups/unet/config.json: ddpmc cannot build this model: ");
	/* bookkeeping is ignored */
	const char *named = edited_pipeline("named", 0, "\"act_fn\"",
	                                    "\"_name_or_path\": \"google/x\", \"act_fn\"");
	assert_int_equal(run(out, "'%s' import '%s' -o '%s/named.lua'", DDPMC_BIN, named, dir), 0);
}

/* The script after its header comment (the lines naming where it came from). */
static const char *script_body(const char *path, char *text, size_t len)
{
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	text[fread(text, 1, len - 1, f)] = 0;
	fclose(f);
	const char *body = strstr(text, "local ddpm");
	assert_non_null(body);
	return body;
}

/* A linear schedule keeps its betas (ddpm.program.diffusion's beta_start,
 * beta_end): the script has them, and the frontend ran it (import did). */
static void linear_schedule_keeps_its_betas(void **unused)
{
	char out[8192], path[256], text[8192];
	const char *linear = edited_pipeline("linear", 1, "\"beta_end\": 0.02,\n  \"beta_schedule\": "
	                                     "\"squaredcos_cap_v2\"", "\"beta_end\": 0.012,\n  "
	                                     "\"beta_schedule\": \"linear\"");
	snprintf(path, sizeof path, "%s/linear.lua", dir);
	if (run(out, "'%s' import '%s' -o '%s'", DDPMC_BIN, linear, path))
		fail_msg("import: %s", out);
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	text[fread(text, 1, sizeof text - 1, f)] = 0;
	fclose(f);
	CONTAINS(text, "schedule = \"linear\", timesteps = 100,", "beta_start = 0.0001, beta_end = 0.012,");
	/* a model folder alone: DDPMScheduler's defaults */
	if (run(out, "'%s' import '%s/unet' -o '%s' --force", DDPMC_BIN, golden, path))
		fail_msg("import of unet/: %s", out);
	script_body(path, text, sizeof text);
	CONTAINS(text, "DDPMScheduler's defaults", "schedule = \"linear\", timesteps = 1000,",
	         "beta_start = 0.0001, beta_end = 0.02,", "prediction = \"epsilon\"",
	         "variance = \"fixed_small\"", "clip_sample = true");
}

/* dir/img.png: one 8x8 RGB image, the data set of the train tests. */
static const char *one_image(void)
{
	static char path[256];
	uint8_t px[8 * 8 * 3];
	char err[256];
	for (int i = 0; i < (int)sizeof px; i++)
		px[i] = (uint8_t)(i * 37);
	snprintf(path, sizeof path, "%s/img.png", dir);
	if (rt_png_write_pixels(path, px, 8, 8, 3, err, sizeof err) != RT_OK)
		fail_msg("%s", err);
	return path;
}

/* The checkpoint's train.iteration. */
static double step_of(const rt_tensorset *ckpt)
{
	const rt_tensor *t = rt_set_find(ckpt, "train.iteration");
	assert_non_null(t);
	return rt_load(t->dtype, t->data, 0);
}

/* Every parameter of want equals got's NAME and ema.NAME. */
static void holds_weights(const rt_tensorset *want, const rt_tensorset *got)
{
	char ema[512];
	for (int i = 0; i < want->n; i++) {
		const rt_tensor *w = &want->t[i];
		snprintf(ema, sizeof ema, "ema.%s", w->name);
		const rt_tensor *p = rt_set_find(got, w->name), *e = rt_set_find(got, ema);
		if (!p || !e)
			fail_msg("%s or %s missing from the checkpoint", w->name, ema);
		for (int64_t k = 0; k < rt_numel(w->rank, w->shape); k++)
			if (rt_load(p->dtype, p->data, k) != rt_load(w->dtype, w->data, k) ||
			    rt_load(e->dtype, e->data, k) != rt_load(w->dtype, w->data, k))
				fail_msg("%s[%lld]: the run does not hold the --init weights", w->name,
				         (long long)k);
	}
}

static void train_init_starts_at_step_0(void **unused)
{
	char out[8192], path[1024];
	rt_tensorset weights = { 0 }, ckpt = { 0 };
	const char *data = one_image();
	if (run(out, "'%s' train --init '%s' --data '%s' --steps 1 --lr 0 --out '%s/run' --threads 2",
	        exe, golden, data, dir))
		fail_msg("train --init: %s", out);
	CONTAINS(out, "1 steps from step 0", "initial weights: ");
	snprintf(path, sizeof path, "%s/unet/diffusion_pytorch_model.safetensors", golden);
	tu_read_st(path, &weights);
	tu_read_checkpoint(dir, "run", &ckpt);
	assert_true(step_of(&ckpt) == 1);
	holds_weights(&weights, &ckpt);
	rt_set_free(&ckpt);
	/* a checkpoint as --init: its weights, not its step or optimizer */
	if (run(out, "'%s' train --init '%s/run/checkpoint.safetensors' --data '%s' --steps 1 --lr 0 "
	        "--out '%s/run2' --threads 2", exe, dir, data, dir))
		fail_msg("train --init CKPT: %s", out);
	CONTAINS(out, "1 steps from step 0");
	tu_read_checkpoint(dir, "run2", &ckpt);
	assert_true(step_of(&ckpt) == 1);
	holds_weights(&weights, &ckpt);
	assert_int_not_equal(run(out, "'%s' train --init '%s' --resume --data '%s' --steps 1 --out "
	                         "'%s/run'", exe, golden, data, dir), 0);
	CONTAINS(out, "--resume and --init: give one of them");
	rt_set_free(&ckpt);
	rt_set_free(&weights);
}

/* rt_weights_locate's cases and the JSON number writer import uses. */
static void weights_are_located(void **unused)
{
	char err[1024], path[1024];
	rt_weights_src src;
	rt_strbuf b = { 0 };
	assert_int_equal(rt_weights_locate(golden, &src, err, sizeof err), RT_OK);
	CONTAINS(src.file, "import_pipeline/unet/diffusion_pytorch_model.safetensors");
	CONTAINS(src.config, "import_pipeline/unet/config.json");
	snprintf(path, sizeof path, "%s/unet/diffusion_pytorch_model.safetensors", golden);
	assert_int_equal(rt_weights_locate(path, &src, err, sizeof err), RT_OK);
	CONTAINS(src.config, "import_pipeline/unet/config.json");
	snprintf(path, sizeof path, "%s/scheduler", golden);
	assert_int_equal(rt_weights_locate(path, &src, err, sizeof err), RT_ERR);
	CONTAINS(err, "scheduler: a folder without diffusion_pytorch_model.safetensors");
	const char *json = tu_write(dir, "config.bin", "{\"in_channels\": 3, \"out_channels\": 3}",
	                            -1, path, sizeof path);
	assert_int_equal(rt_weights_locate(json, &src, err, sizeof err), RT_ERR);
	CONTAINS(err, "config.bin is a JSON file, not weights");
	rt_sb_json_number(&b, 1e-6);
	rt_sb_puts(&b, " ");
	rt_sb_json_number(&b, 1);
	rt_sb_puts(&b, " ");
	rt_sb_json_number(&b, 0.1);
	assert_string_equal(b.p, "1e-06 1.0 0.1");
	rt_sb_free(&b);
}

/* Both ways: a run started from the folder, exported, imports to the same
 * script, and its export passes as --weights (its config.json is the
 * program's). */
static void export_imports_to_the_same_script(void **unused)
{
	char out[8192], again[256];
	static char a[8192], b[8192];
	const char *data = one_image();
	if (run(out, "'%s' train --init '%s' --data '%s' --steps 1 --out '%s/run3' --threads 2 && "
	        "'%s' export --ckpt '%s/run3/checkpoint.safetensors' --out '%s/exported'", exe, golden,
	        data, dir, exe, dir, dir))
		fail_msg("train and export: %s", out);
	snprintf(again, sizeof again, "%s/again.lua", dir);
	if (run(out, "'%s' import '%s/exported' -o '%s'", DDPMC_BIN, dir, again))
		fail_msg("import of the export: %s", out);
	assert_string_equal(script_body(again, a, sizeof a), script_body(script, b, sizeof b));
	if (run(out, "'%s' sample --weights '%s/exported' --n 2 --steps 2 --out '%s/g2.png'", exe, dir,
	        dir))
		fail_msg("sample --weights of the export: %s", out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(weights_are_located),
		cmocka_unit_test(script_carries_the_settings),
		cmocka_unit_test(existing_script_needs_force),
		cmocka_unit_test(forward_matches_diffusers),
		cmocka_unit_test(executable_samples_from_the_folder),
		cmocka_unit_test(samples_match_diffusers),
		cmocka_unit_test(mismatched_config_is_refused),
		cmocka_unit_test(mismatched_scheduler_is_refused),
		cmocka_unit_test(config_json_is_not_weights),
		cmocka_unit_test(unsupported_settings_are_refused),
		cmocka_unit_test(linear_schedule_keeps_its_betas),
		cmocka_unit_test(train_init_starts_at_step_0),
		cmocka_unit_test(export_imports_to_the_same_script),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
