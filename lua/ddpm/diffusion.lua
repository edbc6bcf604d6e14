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

-- t ~ U{0 .. T-1} per sample, drawn in the graph.
function diffusion.sample_timesteps(sched, batch, seed, step)
  local u = ddpm.rand({ batch }, seed, step, diffusion.STREAM_T)
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

-- The regression target: eps, or v = sqrt(abar) eps - sqrt(1 - abar) x0.
function diffusion.target(sched, prediction, x0, noise, t)
  if prediction == "epsilon" then return noise end
  if prediction ~= "v_prediction" then
    ddpm.fail("diffusion", "prediction must be 'epsilon' or 'v_prediction', got " .. tostring(prediction))
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
--   opts.t, opts.noise: given tensors instead of draws (tests)
--   opts.prediction: "epsilon" (default) or "v_prediction"
--   opts.train: build the model in training mode (dropout on)
function diffusion.loss(opts)
  local sched, x0 = opts.schedule, opts.x0
  local batch = x0:size(0)
  local t = opts.t or diffusion.sample_timesteps(sched, batch, opts.seed, opts.step)
  local noise = opts.noise or ddpm.randn(x0:shape(), opts.seed, opts.step, diffusion.STREAM_NOISE)
  local xt = diffusion.add_noise(sched, x0, noise, t)
  local pred
  if opts.train then
    opts.model:train(true)
    pred = ddpm.nn.with_random(opts.seed, opts.step, function() return opts.model(xt, t) end)
    opts.model:eval()
  else
    pred = opts.model(xt, t)
  end
  local err = pred:cast("f32") - diffusion.target(sched, opts.prediction or "epsilon", x0, noise, t)
  return (err * err):mean()
end

-- One DDPM ancestral step x_t -> x_{t-1} (Ho et al. eq. 7 with x0 clipping):
--   x0_hat = clip(sqrt(1/abar_t) x_t - sqrt(1/abar_t - 1) eps, -1, 1)
--   mu = beta_t sqrt(abar_{t-1}) / (1 - abar_t) x0_hat
--      + (1 - abar_{t-1}) sqrt(alpha_t) / (1 - abar_t) x_t
--   x_{t-1} = mu + [t > 0] sigma_t z,  sigma_t^2 = beta_t ("fixed_large")
--   or beta_t (1 - abar_{t-1}) / (1 - abar_t) ("fixed_small").
-- x (B, C, H, W), t (B) i32, eps and z like x.
function diffusion.ddpm_step(sched, x, t, eps, z, opts)
  opts = opts or {}
  local ab, al, be = sched.alphas_cumprod, sched.alphas, sched.betas
  local function prev(i) return i > 1 and ab[i - 1] or 1.0 end
  local function L(fn) return lookup(table_of(sched, fn), t) end
  local x0 = x * L(function(i) return math.sqrt(1 / ab[i]) end)
           - eps * L(function(i) return math.sqrt(1 / ab[i] - 1) end)
  if opts.clip_sample ~= false then x0 = ddpm.minimum(ddpm.maximum(x0, -1), 1) end
  local mu = x0 * L(function(i) return be[i] * math.sqrt(prev(i)) / (1 - ab[i]) end)
           + x * L(function(i) return (1 - prev(i)) * math.sqrt(al[i]) / (1 - ab[i]) end)
  local variance = opts.variance or "fixed_small"
  local sigma = L(function(i)
    if i == 1 then return 0 end
    if variance == "fixed_large" then return math.sqrt(be[i]) end
    return math.sqrt(be[i] * (1 - prev(i)) / (1 - ab[i]))
  end)
  return mu + z * sigma
end

-- One DDIM step x_t -> x_s, s the previous timestep of the subsequence
-- (s = -1 after the last: abar = 1):
--   x0_hat = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)   (clipped if asked)
--   sigma = eta sqrt((1 - abar_s)/(1 - abar_t)) sqrt(1 - abar_t/abar_s)
--   x_s = sqrt(abar_s) x0_hat + sqrt(1 - abar_s - sigma^2) eps + sigma z
-- t, s (B) i32.
function diffusion.ddim_step(sched, x, t, s, eps, z, opts)
  opts = opts or {}
  local ab = sched.alphas_cumprod
  local eta = opts.eta or 0
  local ab_ext = { 1.0 }                      -- index s + 1: s = -1 is entry 1
  for i = 1, sched.T do ab_ext[i + 1] = ab[i] end
  local function at_t(fn) return lookup(table_of(sched, fn), t) end
  local a_t = at_t(function(i) return ab[i] end)
  local sqrt_1m_t = at_t(function(i) return math.sqrt(1 - ab[i]) end)
  local a_s = lookup(ab_ext, s + ddpm.fill(1, {}, "i32"))
  local x0 = (x - eps * sqrt_1m_t) / a_t:sqrt()
  if opts.clip_sample then x0 = ddpm.minimum(ddpm.maximum(x0, -1), 1) end
  local sigma = ((1 - a_s) / (1 - a_t)):sqrt() * (1 - a_t / a_s):sqrt() * eta
  local dir = ddpm.maximum(1 - a_s - sigma * sigma, 0):sqrt()
  return a_s:sqrt() * x0 + dir * eps + sigma * z
end

return diffusion
