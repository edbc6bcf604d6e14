/* weights: where the weights of --weights W (sample, eval, ddpmc run) and
 * train --init W come from, and the check that they were trained for the
 * model the program computes.
 *
 * W is one of
 *   - a diffusers model folder: W/diffusion_pytorch_model.safetensors with
 *     W/config.json beside it, or a pipeline folder holding them in W/unet/;
 *   - a safetensors file, with or without a config.json beside it (an
 *     exported folder's weights, a checkpoint, any file of tensors by name).
 * When there is a config.json, every UNet2DModel setting in it that
 * changes what the model computes (rt_unet_fields' `computes`) must equal
 * the program's (its meta.config, the config the script's UNet2DModel
 * wrote); an absent key stands for diffusers' default. When there is a
 * scheduler_config.json (W/scheduler/, else beside the weights' config.json
 * or file, where ddpmc import looks) and the program has a schedule
 * (meta.timesteps), every DDPMScheduler setting that changes what the
 * program computes must equal the program's (meta.timesteps, schedule,
 * beta_start, beta_end, prediction, variance, clip_sample,
 * clip_sample_range, and the settings ddpmc implements at their defaults
 * only). A JSON file given as W (config.json itself) is refused as such,
 * not read as a bogus safetensors header. */
#ifndef DDPMC_RUNTIME_WEIGHTS_H
#define DDPMC_RUNTIME_WEIGHTS_H

#include <stddef.h>

#include "json.h"
#include "tensor.h"

/* diffusers' UNet2DModel config (0.42.1): each keyword with its default. */
typedef struct {
	const char *key;
	const char *dflt;       /* diffusers' default, as JSON text */
	const char *supported;  /* JSON array of the values ddpmc implements; NULL: any
	                         * (the model script checks the rest) */
	int computes;           /* weights trained under another value compute
	                         * something else. Two do not: dropout, which acts
	                         * only in training (the forward pass and sampling
	                         * are the same under any rate), and
	                         * num_train_timesteps, read only by the "learned"
	                         * time embedding ddpmc does not implement (the
	                         * scheduler's is compared: scheduler_config.json) */
} rt_unet_field;

extern const rt_unet_field rt_unet_fields[];
extern const int rt_unet_nfields;
/* The field named key, or NULL. */
const rt_unet_field *rt_unet_field_find(const char *key);
/* Whether two JSON values are the same setting (numbers by value, so 1 and
 * 1.0 agree; "swish" and "silu" name one activation). */
int rt_unet_same(const rt_json *a, const rt_json *b);

enum { RT_WEIGHTS_PATH = 4096 };

typedef struct {
	char file[RT_WEIGHTS_PATH];     /* the safetensors file */
	char config[RT_WEIGHTS_PATH];   /* the config.json that goes with it; "" if none */
	char scheduler[RT_WEIGHTS_PATH];        /* its scheduler_config.json; "" if none */
} rt_weights_src;

/* Where W's tensors and config are. RT_OK, or RT_ERR with a message
 * naming W in err. */
int rt_weights_locate(const char *w, rt_weights_src *src, char *err, size_t errlen);
/* config_path's UNet2DModel settings against want (a program's
 * meta.config): RT_OK, or RT_ERR naming the first setting that differs
 * and both values. */
int rt_weights_check(const char *config_path, const rt_json *want, char *err, size_t errlen);
/* path's DDPMScheduler (or DDIMScheduler) settings against meta (a
 * program's meta object): RT_OK, or RT_ERR naming the first setting that
 * differs and both values, or a scheduler of another class. */
int rt_weights_check_scheduler(const char *path, const rt_json *meta, char *err, size_t errlen);
/* Locates W, checks its config against meta.config and its scheduler
 * config against meta (each when both exist; meta is a program's meta
 * object, or NULL: nothing checked) and reads its tensors into out
 * (empty). RT_OK, or RT_ERR with a message. */
int rt_weights_read(const char *w, const rt_json *meta, rt_weights_src *src, rt_tensorset *out,
                    char *err, size_t errlen);
/* diffusers' beta_schedule for a program's meta.schedule ("linear",
 * "squaredcos_cap_v2" for "cosine"); NULL for any other. */
const char *rt_beta_schedule_name(const char *schedule);

#endif
