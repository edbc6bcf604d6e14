-- ddpm.program: the entries of a complete diffusion program, built from a
-- model in one call so that model scripts stay short.
--
--   ddpm.program.diffusion {
--     model = unet, image = { 1, 28, 28 }, batch = 64,
--     schedule = "linear" | "cosine", timesteps = 1000,
--     beta_start = 1e-4, beta_end = 0.02,  (linear only: diffusers' betas)
--     prediction = "epsilon" | "v_prediction" | "sample",
--     precision = "fp32" | "bf16" | "fp16",
--     optimizer = { lr = 2e-4, warmup = 5000, clip = 1.0, ema = 0.9999, ... },
--     variance = "fixed_small" | "fixed_large",
--   }
--
-- Entries (tensors by name; B batch, C/H/W the image):
--   forward(x (B,C,H,W), t (B) i32) -> eps
--   train_step(x0) -> loss, grad_norm, lr, loss_scale, ema_decay (with EMA
--     weights); updates all state. The optimizer's hyperparameters are the
--     state tensors hp.NAME (lua/ddpm/optim.lua), the script's values their
--     initialisers.
--     t and the noise are drawn in the graph from Philox keyed by the
--     state rng.seed and train.iteration (which every call advances).
--   train_grads(x0, shard () i32) -> loss, then train_apply() -> grad_norm,
--     lr, loss_scale, ema_decay: train_step split where data-parallel
--     processes average their gradients (runtime/main/train.c under MPI):
--     train_grads adds this process's gradient to optim.grad_sum.NAME,
--     drawing t, noise and dropout masks from block `shard` (its rank; see
--     ddpm.rand) so that N processes of batch B draw what one of batch N*B
--     would; train_apply steps the optimizer from the (averaged) sums and
--     advances train.iteration.
--   train_step_fixed(x0, t, noise): the same step with t and noise given
--     (tests compare it with PyTorch; only with test_entries = true).
--   sample_ddpm(x (B,C,H,W), t () i32, s () i32, clip () f32) -> x_prev:
--     one ancestral step from t to s (the previous timestep of the
--     sequence, -1 after the last) with the model's weights, x0 clipped to
--     [-clip, clip] (+inf: not clipped); z drawn from rng.seed at step t.
--   sample_ddim(x, t, s, clip, eta () f32) -> x_prev: one DDIM step.
--   ddpm_step(x, t (B), s (B), out, z, clip) / ddim_step(..., eta): the
--     sampler math alone on a given model output, for tests against
--     diffusers (only with test_entries).
--   clip_sample = true, clip_sample_range = 1: the defaults of sample.clip
--   the executable passes (meta.clip_sample, meta.clip_sample_range).
--   features(features.x (M,1,28,28)) -> features (M, F): the shipped
--     Fashion-MNIST classifier's penultimate features (ddpm.classifier),
--     its weights compiled in, for the executable's FID and KID (`eval`).
--     With metric = "fashion-mnist", the default for 1x28x28 images;
--     metric = false leaves it out; M = metric_batch (default 100).
--
--   ddpm.program.classifier {
--     model = net, image = { 1, 28, 28 }, batch = 64, optimizer = { lr = 1e-3 },
--   }
-- Entries of a classifier (model(x) -> logits (B, K), model:features(x)):
--   train_step(x0 (B,C,H,W), labels (B) i32) -> loss (cross-entropy),
--     grad_norm, lr, loss_scale; updates all state.
--   classify(x (B,C,H,W)) -> logits (B, K), features (B, F).
local ddpm = require "ddpm"
local diffusion = require "ddpm.diffusion"
local optim = require "ddpm.optim"
local classifier = require "ddpm.classifier"
local F = require "ddpm.functional"

local program = {}

local STREAM_SAMPLE = 3

local KNOWN = {
  model = true, image = true, batch = true, schedule = true, timesteps = true,
  prediction = true, precision = true, optimizer = true, variance = true,
  clip_sample = true, clip_sample_range = true, test_entries = true, metric = true,
  beta_start = true, beta_end = true,
  metric_batch = true,
}

-- cfg's keys must be in `known`; model, image and batch must be given.
local function check_keys(cfg, known)
  for k in pairs(cfg) do
    if not known[k] then ddpm.fail("program", "unknown key '" .. tostring(k) .. "'") end
  end
  if not cfg.model or not cfg.image or not cfg.batch then
    ddpm.fail("program", "model, image and batch are required")
  end
end

local function schedule_of(cfg)
  local T = cfg.timesteps or 1000
  local kind = cfg.schedule or "linear"
  if kind ~= "linear" and (cfg.beta_start or cfg.beta_end) then
    ddpm.fail("program", "beta_start and beta_end go with schedule = 'linear'")
  end
  if kind == "linear" then
    return diffusion.Schedule(diffusion.linear_betas(T, cfg.beta_start, cfg.beta_end))
  end
  if kind == "cosine" then return diffusion.Schedule(diffusion.cosine_betas(T)) end
  ddpm.fail("program", "schedule must be 'linear' or 'cosine', got '" .. tostring(kind) .. "'")
end

local function image_shape(cfg, batch)
  local c, h, w = table.unpack(cfg.image)
  return { batch, c, h, w }
end

local function i32_scalar(name)
  return ddpm.input(name, {}, "i32")
end

-- An entry that steps the optimizer: its outputs (loss and what
-- minimize/apply report) and updates, with train.iteration advanced.
local function step_entry(name, loss, iteration, updates, info)
  updates["train.iteration"] = iteration + ddpm.fill(1, {}, "i32")
  ddpm.entry(name, { loss = loss, grad_norm = info.grad_norm, lr = info.lr,
                     loss_scale = info.loss_scale or ddpm.fill(1, {}, "f32"),
                     ema_decay = info.ema_decay }, updates)
end

-- train_step, train_step_fixed and the data-parallel pair share the
-- optimizer's state.
local function train_entries(cfg, sched, seed, iteration)
  local precision = cfg.precision or "fp32"
  local opt_cfg = {}
  for k, v in pairs(cfg.optimizer or {}) do opt_cfg[k] = v end
  if opt_cfg.loss_scaling == nil then opt_cfg.loss_scaling = precision == "fp16" end
  local opt = optim.Adam(cfg.model:parameters(), opt_cfg)
  local shape = image_shape(cfg, cfg.batch)
  local function loss_of(x0, t, noise, shard)
    return ddpm.autocast(precision, function()
      return diffusion.loss { model = cfg.model, schedule = sched, x0 = x0, t = t, noise = noise,
                              seed = seed, step = iteration, shard = shard, train = true,
                              prediction = cfg.prediction }
    end)
  end
  local function build(name, x0, t, noise)
    local loss = loss_of(x0, t, noise)
    step_entry(name, loss, iteration, opt:minimize(loss))
  end
  local x0 = ddpm.input("x0", shape)
  build("train_step", x0)
  local shard_loss = loss_of(x0, nil, nil, ddpm.input("shard", {}, "i32"))
  ddpm.entry("train_grads", { loss = shard_loss }, opt:accumulate(shard_loss))
  step_entry("train_apply", nil, iteration, opt:apply())
  if not cfg.test_entries then return end
  build("train_step_fixed", ddpm.input("fixed.x0", shape), ddpm.input("fixed.t", { cfg.batch }, "i32"),
        ddpm.input("fixed.noise", shape))
end

-- (B) copies of an i32 scalar t.
local function per_sample(t, batch)
  return t:reshape { 1 }:expand { batch }
end

-- The sampler entries' step options: the program's prediction and
-- variance, clip from the input `prefix.clip`.
local function step_opts(cfg, prefix)
  return { prediction = cfg.prediction, variance = cfg.variance,
           clip = ddpm.input(prefix .. ".clip", {}) }
end

local function sample_entries(cfg, sched, seed)
  local shape = image_shape(cfg, cfg.batch)
  local x, t, s = ddpm.input("sample.x", shape), i32_scalar("sample.t"), i32_scalar("sample.s")
  local tb, sb = per_sample(t, cfg.batch), per_sample(s, cfg.batch)
  local z = ddpm.randn(shape, seed, t, STREAM_SAMPLE)
  local opts = step_opts(cfg, "sample")
  ddpm.entry("sample_ddpm", { x_prev = diffusion.ddpm_step(sched, x, tb, sb, cfg.model(x, tb), z, opts) })
  opts.eta = ddpm.input("sample.eta", {})
  ddpm.entry("sample_ddim", { x_prev = diffusion.ddim_step(sched, x, tb, sb, cfg.model(x, tb), z, opts) })
end

local function math_entries(cfg, sched)
  local shape = image_shape(cfg, cfg.batch)
  local x, out, z = ddpm.input("step.x", shape), ddpm.input("step.out", shape), ddpm.input("step.z", shape)
  local t, s = ddpm.input("step.t", { cfg.batch }, "i32"), ddpm.input("step.s", { cfg.batch }, "i32")
  local opts = step_opts(cfg, "step")
  ddpm.entry("ddpm_step", { x_prev = diffusion.ddpm_step(sched, x, t, s, out, z, opts) })
  opts.eta = ddpm.input("step.eta", {})
  ddpm.entry("ddim_step", { x_prev = diffusion.ddim_step(sched, x, t, s, out, z, opts) })
end

-- The program's metric (see the header): "fashion-mnist" or false; the
-- image must be the classifier's.
local function metric_of(cfg)
  local c, h, w = table.unpack(cfg.image)
  local metric = cfg.metric
  if metric == nil then metric = c == 1 and h == 28 and w == 28 and "fashion-mnist" end
  if not metric then return false end
  if metric ~= "fashion-mnist" then
    ddpm.fail("program", "metric must be 'fashion-mnist' or false, got '" .. tostring(metric) .. "'")
  end
  if c ~= 1 or h ~= 28 or w ~= 28 then
    ddpm.fail("program", string.format("metric 'fashion-mnist' needs 1x28x28 images, the "
              .. "program's are %dx%dx%d", c, h, w))
  end
  return metric
end

-- The metric's features entry: the shipped classifier's weights compiled in.
local function metric_entries(cfg, metric)
  if not metric then return end
  local m = cfg.metric_batch or 100
  local net = classifier.fashion_mnist()
  ddpm.entry("features", { features = net:features(ddpm.input("features.x", { m, 1, 28, 28 })) })
  ddpm.meta("metric", metric)
end

function program.diffusion(cfg)
  check_keys(cfg, KNOWN)
  local metric = metric_of(cfg)
  local sched = schedule_of(cfg)
  ddpm.meta("image", cfg.image)
  ddpm.meta("batch", cfg.batch)
  ddpm.meta("timesteps", sched.T)
  ddpm.meta("schedule", cfg.schedule or "linear")
  -- only when given: checkpoints of programs without them keep resuming
  if cfg.beta_start then ddpm.meta("beta_start", cfg.beta_start) end
  if cfg.beta_end then ddpm.meta("beta_end", cfg.beta_end) end
  ddpm.meta("prediction", cfg.prediction or "epsilon")
  ddpm.meta("variance", cfg.variance or "fixed_small")
  ddpm.meta("clip_sample", cfg.clip_sample ~= false)
  ddpm.meta("clip_sample_range", cfg.clip_sample_range or 1.0)
  ddpm.meta("precision", cfg.precision or "fp32")
  if cfg.model.config then ddpm.meta("config", cfg.model.config) end
  local seed = ddpm.param("rng.seed", {}, { dtype = "i32", trainable = false })
  local iteration = ddpm.param("train.iteration", {}, { dtype = "i32", trainable = false })
  local shape = image_shape(cfg, cfg.batch)
  local x, t = ddpm.input("x", shape), ddpm.input("t", { cfg.batch }, "i32")
  ddpm.entry("forward", { eps = cfg.model(x, t) })
  train_entries(cfg, sched, seed, iteration)
  sample_entries(cfg, sched, seed)
  if cfg.test_entries then math_entries(cfg, sched) end
  metric_entries(cfg, metric)
  return sched
end

local CLASSIFIER_KEYS = { model = true, image = true, batch = true, optimizer = true }

-- program.classifier: the entries of a classifier trained with labels
-- (see the header). State: the model's parameters, the optimizer's,
-- train.iteration (the data position of a resumed run).
function program.classifier(cfg)
  check_keys(cfg, CLASSIFIER_KEYS)
  local shape = image_shape(cfg, cfg.batch)
  ddpm.meta("task", "classifier")
  ddpm.meta("image", cfg.image)
  ddpm.meta("batch", cfg.batch)
  if cfg.model.config then ddpm.meta("classifier", cfg.model.config) end
  local iteration = ddpm.param("train.iteration", {}, { dtype = "i32", trainable = false })
  local opt = optim.Adam(cfg.model:parameters(), cfg.optimizer or {})
  local loss = F.cross_entropy(cfg.model(ddpm.input("x0", shape)),
                               ddpm.input("labels", { cfg.batch }, "i32"))
  local updates, info = opt:minimize(loss)
  updates["train.iteration"] = iteration + ddpm.fill(1, {}, "i32")
  ddpm.entry("train_step", { loss = loss, grad_norm = info.grad_norm, lr = info.lr,
                             loss_scale = ddpm.fill(1, {}, "f32") }, updates)
  local x = ddpm.input("x", shape)
  ddpm.entry("classify", { logits = cfg.model(x), features = cfg.model:features(x) })
end

return program
