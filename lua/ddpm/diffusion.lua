-- ddpm.diffusion: noise schedules, the training objective and the sampler
-- steps of Ho et al. (2020) and Song et al. (DDIM), as graph builders.
--
-- Schedules are computed in float64 (Lua numbers) and rounded once to f32
-- when they become graph constants. Per-sample lookups (alpha_bar[t]) are
-- gathers from those constants. Randomness is drawn inside the graph from
-- Philox keyed by the run's seed and a step counter (ddpm.rand/randn), so
-- the host never supplies noise; tests may pass t and noise explicitly.
local ddpm = require "ddpm"

local diffusion = {}

-- Random streams of one training step (see ddpm.randn). Dropout modules
-- take streams from DROPOUT_STREAM_BASE upward.
diffusion.STREAM_T, diffusion.STREAM_NOISE, diffusion.DROPOUT_STREAM_BASE = 1, 2, 16

-- beta_i = linspace(beta_start, beta_end, T), in float64.
function diffusion.linear_betas(T, beta_start, beta_end)
  beta_start, beta_end = beta_start or 1e-4, beta_end or 0.02
  local betas = {}
  for i = 0, T - 1 do
    betas[i + 1] = beta_start + (beta_end - beta_start) * i / (T - 1)
  end
  return betas
end

-- Nichol & Dhariwal's cosine schedule: f(u) = cos^2((u + s)/(1 + s) * pi/2),
-- beta_i = min(1 - f((i+1)/T) / f(i/T), max_beta).
function diffusion.cosine_betas(T, s, max_beta)
  s, max_beta = s or 0.008, max_beta or 0.999
  local function f(u) return math.cos((u + s) / (1 + s) * math.pi / 2) ^ 2 end
  local betas = {}
  for i = 0, T - 1 do
    betas[i + 1] = math.min(1 - f((i + 1) / T) / f(i / T), max_beta)
  end
  return betas
end

-- A schedule: the float64 tables every formula below reads, 1-based
-- (entry t+1 belongs to timestep t).
function diffusion.Schedule(betas)
  local sched = { T = #betas, betas = betas, alphas = {}, alphas_cumprod = {} }
  local prod = 1.0
  for i, b in ipairs(betas) do
    sched.alphas[i] = 1 - b
    prod = prod * (1 - b)
    sched.alphas_cumprod[i] = prod
  end
  return sched
end

-- Lua-side map over a schedule's timesteps, for building constant tables.
local function table_of(sched, fn)
  local out = {}
  for i = 1, sched.T do out[i] = fn(i) end
  return out
end

-- values[t] for a (B) i32 tensor t, as (B, 1, 1, 1) to scale images.
local function lookup(values, t)
  local tbl = ddpm.constant(values, { #values })
  return ddpm.gather(tbl, t):reshape { t:size(0), 1, 1, 1 }
end
diffusion.lookup = lookup

-- t ~ U{0 .. T-1} per sample, drawn in the graph (shard: see ddpm.rand).
function diffusion.sample_timesteps(sched, batch, seed, step, shard)
  local u = ddpm.rand({ batch }, seed, step, diffusion.STREAM_T, shard)
  local t = (u * sched.T):cast("i32")          -- u in (0, 1]: u*T truncates to 0..T
  return ddpm.minimum(t, ddpm.fill(sched.T - 1, {}, "i32"))
end

-- x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps.
function diffusion.add_noise(sched, x0, noise, t)
  local ab = sched.alphas_cumprod
  local a = lookup(table_of(sched, function(i) return math.sqrt(ab[i]) end), t)
  local s = lookup(table_of(sched, function(i) return math.sqrt(1 - ab[i]) end), t)
  return x0 * a + noise * s
end

-- The regression target of each prediction type (diffusers' names):
-- eps, v = sqrt(abar) eps - sqrt(1 - abar) x0, or x0 itself ("sample").
function diffusion.target(sched, prediction, x0, noise, t)
  if prediction == "epsilon" then return noise end
  if prediction == "sample" then return x0 end
  if prediction ~= "v_prediction" then
    ddpm.fail("diffusion", "prediction must be 'epsilon', 'v_prediction' or 'sample', got "
              .. tostring(prediction))
  end
  local ab = sched.alphas_cumprod
  local a = lookup(table_of(sched, function(i) return math.sqrt(ab[i]) end), t)
  local s = lookup(table_of(sched, function(i) return math.sqrt(1 - ab[i]) end), t)
  return noise * a - x0 * s
end

-- loss(opts): the DDPM objective, mean over all elements of
-- (target - model(x_t, t))^2, in f32.
--   opts.model, opts.schedule, opts.x0 (B, C, H, W)
--   opts.seed, opts.step: i32 scalars keying the draws of t and noise
--   opts.shard: i32 scalar, this process's block of every draw (default 0;
--     see ddpm.rand): data-parallel processes draw the t, noise and dropout
--     masks of their rows of one global batch
--   opts.t, opts.noise: given tensors instead of draws (tests)
--   opts.prediction: "epsilon" (default), "v_prediction" or "sample"
--   opts.train: build the model in training mode (dropout on)
function diffusion.loss(opts)
  local sched, x0 = opts.schedule, opts.x0
  local batch = x0:size(0)
  local t = opts.t or diffusion.sample_timesteps(sched, batch, opts.seed, opts.step, opts.shard)
  local noise = opts.noise or ddpm.randn(x0:shape(), opts.seed, opts.step, diffusion.STREAM_NOISE,
                                         opts.shard)
  local xt = diffusion.add_noise(sched, x0, noise, t)
  local pred
  if opts.train then
    opts.model:train(true)
    local key = { seed = opts.seed, step = opts.step, shard = opts.shard }
    pred = ddpm.nn.with_random(key, function() return opts.model(xt, t) end)
    opts.model:eval()
  else
    pred = opts.model(xt, t)
  end
  local err = pred:cast("f32") - diffusion.target(sched, opts.prediction or "epsilon", x0, noise, t)
  return (err * err):mean()
end

-- The sampler steps, as diffusers' DDPMScheduler.step and DDIMScheduler.step
-- compute them. A step goes from timestep t to s, the previous timestep of
-- the sampler's sequence (s = -1 after the last: alpha_bar = 1, diffusers'
-- `one` and set_alpha_to_one). t and s are (B) i32 tensors, so one step
-- serves any number of inference steps and any timestep spacing: the host
-- only chooses the sequence. With
--   a_t = abar_t, b_t = 1 - abar_t, a_s, b_s likewise,
--   beta = 1 - a_t / a_s   (diffusers' current_beta_t; beta_t when s = t - 1)
-- the model's output out gives, by prediction type,
--   epsilon:      x0 = (x - sqrt(b_t) out) / sqrt(a_t),  eps = out
--   v_prediction: x0 = sqrt(a_t) x - sqrt(b_t) out,      eps = sqrt(a_t) out + sqrt(b_t) x
--   sample:       x0 = out,                              eps = (x - sqrt(a_t) out) / sqrt(b_t)
-- and x0 is clipped to [-r, r] (clip_sample; r = +inf leaves it as is).

-- A table over the timesteps -1 .. T-1 (entry t + 2), fn(abar) of each
-- (abar_-1 = 1), computed in float64 and rounded once.
local function table_by_abar(sched, fn)
  local out = { fn(1.0) }
  for i = 1, sched.T do out[i + 1] = fn(sched.alphas_cumprod[i]) end
  return out
end

-- values[t + 1] for a (B) i32 t in -1 .. T-1, as (B, 1, 1, 1).
local function lookup_from_minus1(values, t)
  return lookup(values, t + ddpm.fill(1, {}, "i32"))
end

-- The per-sample schedule terms of a step t -> s. a and b come from
-- float64 tables, so 1 - abar keeps its digits when abar is near 1. beta is
-- (a_s - a_t) / a_s with the difference taken where it does not cancel:
-- from the b table while abar_s >= 1/2, else from the a table.
local function step_terms(sched, t, s)
  local function at(i, fn) return lookup_from_minus1(table_by_abar(sched, fn), i) end
  local function abar(a) return a end
  local function one_minus(a) return 1 - a end
  local c = { a_t = at(t, abar), b_t = at(t, one_minus), a_s = at(s, abar), b_s = at(s, one_minus) }
  local near_one = at(s, function(a) return a >= 0.5 and 1 or 0 end)
  local diff = ddpm.where(near_one, c.b_t - c.b_s, c.a_s - c.a_t)
  c.beta = diff / c.a_s
  return c
end

-- x0 and eps from the model's output (see above).
local function split_prediction(prediction, x, out, c)
  local sa, sb = c.a_t:sqrt(), c.b_t:sqrt()
  if prediction == "epsilon" then return (x - out * sb) / sa, out end
  if prediction == "v_prediction" then return x * sa - out * sb, out * sa + x * sb end
  if prediction == "sample" then return out, (x - out * sa) / sb end
  ddpm.fail("diffusion", "prediction must be 'epsilon', 'v_prediction' or 'sample', got "
            .. tostring(prediction))
end

-- x0 clipped to [-r, r]; r a scalar tensor (+inf: no clipping) or nil.
local function clip_x0(x0, r)
  if r == nil then return x0 end
  return ddpm.minimum(ddpm.maximum(x0, -r), r)
end

-- One DDPM ancestral step x_t -> x_s (DDPMScheduler.step):
--   mu = sqrt(a_s) beta / b_t x0 + sqrt(a_t / a_s) b_s / b_t x
--   x_s = mu + [t > 0] sigma z,  sigma^2 = max(b_s / b_t beta, 1e-20)
--   ("fixed_small") or beta ("fixed_large").
-- x, out, z (B, C, H, W); t, s (B) i32.
-- opts: prediction, variance, clip (scalar tensor r, see clip_x0).
function diffusion.ddpm_step(sched, x, t, s, out, z, opts)
  local c = step_terms(sched, t, s)
  local x0 = clip_x0(split_prediction(opts.prediction or "epsilon", x, out, c), opts.clip)
  local mu = x0 * (c.a_s:sqrt() * c.beta / c.b_t) + x * ((c.a_t / c.a_s):sqrt() * c.b_s / c.b_t)
  local variance = opts.variance or "fixed_small"
  local var
  if variance == "fixed_small" then var = ddpm.maximum(c.b_s / c.b_t * c.beta, 1e-20)
  elseif variance == "fixed_large" then var = c.beta
  else ddpm.fail("diffusion", "variance must be 'fixed_small' or 'fixed_large', got '"
                 .. tostring(variance) .. "'") end
  local noisy = lookup(table_of(sched, function(i) return i > 1 and 1 or 0 end), t)
  return mu + z * (var:sqrt() * noisy)
end

-- One DDIM step x_t -> x_s (DDIMScheduler.step, use_clipped_model_output
-- off: eps stays the unclipped one):
--   sigma = eta sqrt(b_s / b_t beta)
--   x_s = sqrt(a_s) x0 + sqrt(b_s - sigma^2) eps + sigma z.
-- opts: prediction, clip, eta (a scalar tensor).
function diffusion.ddim_step(sched, x, t, s, out, z, opts)
  local c = step_terms(sched, t, s)
  local x0, eps = split_prediction(opts.prediction or "epsilon", x, out, c)
  x0 = clip_x0(x0, opts.clip)
  local sigma = (c.b_s / c.b_t * c.beta):sqrt() * opts.eta
  local dir = ddpm.maximum(c.b_s - sigma * sigma, 0):sqrt()
  return c.a_s:sqrt() * x0 + dir * eps + sigma * z
end

return diffusion
