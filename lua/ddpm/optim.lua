-- ddpm.optim: the optimizer step as graph nodes, with torch's semantics.
--
--   local opt = optim.Adam(unet:parameters(), { lr = 2e-4, warmup = 5000,
--                          clip = 1.0, ema = 0.9999, loss_scaling = true })
--   local updates, info = opt:minimize(loss)
--   ddpm.entry("train_step", { loss = loss }, updates)
--
-- minimize() differentiates loss (scaled by the dynamic loss scale when
-- loss scaling is on), adds the gradients to their sums over the
-- micro-batches, and on the last micro-batch of an optimizer step unscales
-- and averages them, checks them for inf/NaN, clips by global norm,
-- applies Adam or AdamW, updates the EMA weights and the step counter. A
-- step whose gradients are not all finite changes nothing but the loss
-- scale (halved), exactly as torch's GradScaler skips optimizer.step().
-- All of it is graph nodes: the host never sees a gradient. The returned
-- `updates` map every state param to its next value.
--
-- Data parallelism splits minimize() in two entries at the one point where
-- the host must step in: accumulate(loss) only adds the gradient to the
-- sums optim.grad_sum.NAME; the host averages the sums over the processes
-- (MPI_Allreduce, runtime/main/train.c); apply() then does everything else
-- from the sums alone, still in the optimizer's two kernels. Averaging the
-- sums at every micro-batch is right: the mean over processes of (a mean
-- already shared + a process's gradient) is that mean + the gradients' mean.
--
-- Hyperparameters are run-time values: each is a scalar state param
-- hp.NAME (f32, not trainable) whose initialiser is the option's value, and
-- the compiled step reads it like any other state. The executable's train
-- flags (--lr, --warmup, ...) overwrite them before the first step, so
-- changing one needs no recompile, and a checkpoint records the values its
-- run used. The options (defaults in HYPER), with t = 1, 2, ... the Adam
-- step being taken (optim.step after it):
--   lr, warmup, lr_schedule, total_steps: lr_t = lr * f(t), f the lambda of
--     diffusers' get_scheduler evaluated at t (W = warmup, N = total_steps):
--     t < W: t / max(1, W); else "constant" 1, "linear" max(0, (N - t) /
--     max(1, N - W)), "cosine" max(0, (1 + cos(pi (t - W) / max(1, N - W))) / 2);
--     N <= 0 means no decay (the train command sets N, docs/cli.md).
--   clip: global-norm clipping, coef = min(clip / (||g|| + 1e-6), 1); 0: off.
--   grad_accum: N micro-batches per optimizer step. Every call adds its
--     (loss-scaled) gradient to optim.grad_sum.NAME and counts optim.accum;
--     the N-th applies the mean sum / N and zeroes the sums; the calls before
--     it change nothing else (their outputs report the last step's lr).
--   weight_decay: Adam's L2 term (g += wd theta) or AdamW's decoupled decay.
--   ema (the largest decay), ema_warmup, ema_inv_gamma, ema_power,
--     ema_min_decay: the EMA weights after every applied step,
--     ema = d ema + (1 - d) theta, d as diffusers' EMAModel.get_decay with
--     s = t - 1: "none" d = ema at every step (Ho et al.); otherwise d = 0
--     when s = 0 and else clamp(w(s), ema_min_decay, ema) with w(s) =
--     1 - (1 + s / ema_inv_gamma)^-ema_power ("power", use_ema_warmup=True)
--     or (1 + s) / (10 + s) ("ratio", use_ema_warmup=False). ema = nil: no
--     EMA weights (and no hp.ema*). ema_warmup = true means "power".
-- lr_schedule and ema_warmup are names in the script and codes in hp.*
-- (CODES below; runtime/main/hyper.c has the same order).
--
-- State params (not trainable): optim.step (i32, Adam's t), optim.accum
-- (i32, micro-batches summed), per parameter optim.exp_avg.NAME,
-- optim.exp_avg_sq.NAME and optim.grad_sum.NAME, ema.NAME (when ema is set)
-- and optim.ema_init_share (the product of the decays applied so far: the
-- weight the EMA still gives the initial parameters; the sampler uses the
-- EMA weights only once it is small), with loss scaling optim.loss_scale (f32) and optim.growth_tracker (i32),
-- and the hp.NAME.
local ddpm = require "ddpm"

local optim = {}

local Adam = {}
Adam.__index = Adam

local DEFAULTS = {
  betas = { 0.9, 0.999 }, eps = 1e-8, decoupled_weight_decay = false,
  loss_scaling = false, init_scale = 65536.0, growth_factor = 2.0,
  backoff_factor = 0.5, growth_interval = 2000,
}

-- The run-time hyperparameters and their defaults (ema: none, no EMA).
local HYPER = {
  { "lr", 2e-4 }, { "warmup", 0 }, { "lr_schedule", "constant" }, { "total_steps", 0 },
  { "clip", 0 }, { "weight_decay", 0 }, { "grad_accum", 1 },
  { "ema" }, { "ema_warmup", "none" }, { "ema_inv_gamma", 1.0 }, { "ema_power", 2 / 3 },
  { "ema_min_decay", 0.0 },
}
local CODES = {
  lr_schedule = { constant = 0, linear = 1, cosine = 2 },
  ema_warmup = { none = 0, power = 1, ratio = 2 },
}

local function state(name, shape, dtype, init, value)
  return ddpm.param(name, shape, { dtype = dtype or "f32", init = init or "zeros",
                                    a = value, b = value, trainable = false })
end

local function known_option(k)
  if DEFAULTS[k] ~= nil then return true end
  for _, h in ipairs(HYPER) do if h[1] == k then return true end end
  return false
end

-- The number hp.NAME holds for option `name` = v (a name's code).
local function hyper_value(name, v)
  if name == "ema_warmup" and type(v) == "boolean" then v = v and "power" or "none" end
  if name == "clip" and v == false then v = 0 end
  local codes = CODES[name]
  if codes then
    if codes[v] == nil then
      local names = {}
      for k in pairs(codes) do names[#names + 1] = "'" .. k .. "'" end
      table.sort(names)
      ddpm.fail("optim", name .. " must be one of " .. table.concat(names, ", ") .. ", got '" ..
                tostring(v) .. "'")
    end
    return codes[v], v
  end
  if type(v) ~= "number" or v < 0 then
    ddpm.fail("optim", name .. " must be a number >= 0, got " .. tostring(v))
  end
  return v, v
end

-- hp.NAME for every hyperparameter (no hp.ema* without ema): self.hp maps
-- names to those tensors; the meta "optimizer" records the script's values.
function Adam:_hyperparameters(opts)
  local values = {}
  self.hp = {}
  for _, h in ipairs(HYPER) do
    local name, v = h[1], opts[h[1]]
    if v == nil then v = h[2] end
    if v ~= nil and (name:sub(1, 3) ~= "ema" or opts.ema) then
      local code, shown = hyper_value(name, v)
      self.hp[name] = state("hp." .. name, {}, "f32", "uniform", code)
      values[name] = shown
    end
  end
  ddpm.meta("optimizer", values)
end

-- Adam(params, opts): params is a list of {name =, tensor =} (Module:parameters()).
function optim.Adam(params, opts)
  opts = opts or {}
  local self = setmetatable({ params = params }, Adam)
  for k in pairs(opts) do
    if not known_option(k) then ddpm.fail("optim", "unknown option '" .. tostring(k) .. "'") end
  end
  for k, v in pairs(DEFAULTS) do self[k] = v end
  for k, v in pairs(opts) do if DEFAULTS[k] ~= nil then self[k] = v end end
  self:_hyperparameters(opts)
  self.step = state("optim.step", {}, "i32")
  self.accum = state("optim.accum", {}, "i32")
  for _, p in ipairs(params) do
    local shape = p.tensor:shape()
    p.exp_avg = state("optim.exp_avg." .. p.name, shape)
    p.exp_avg_sq = state("optim.exp_avg_sq." .. p.name, shape)
    p.grad_sum = state("optim.grad_sum." .. p.name, shape)
    if opts.ema then
      p.ema = ddpm.param("ema." .. p.name, shape, { init = "copy", from = p.tensor, trainable = false })
    end
  end
  if opts.ema then self.ema_share = state("optim.ema_init_share", {}, "f32", "uniform", 1) end
  if self.loss_scaling then
    self.scale = ddpm.param("optim.loss_scale", {}, { init = "uniform", a = self.init_scale,
                                                       b = self.init_scale, trainable = false })
    self.growth = state("optim.growth_tracker", {}, "i32")
  end
  return self
end

-- AdamW: decoupled weight decay (default 1e-2, as torch.optim.AdamW).
function optim.AdamW(params, opts)
  opts = opts or {}
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  o.decoupled_weight_decay = true
  if o.weight_decay == nil then o.weight_decay = 1e-2 end
  return optim.Adam(params, o)
end

-- The sum of f(g) over every element of every gradient: one sum over
-- the gradients joined end to end, which the compiler makes one kernel
-- (a joint reduction) however many parameters there are.
local function sum_over(grads, f)
  local pieces = {}
  for i, g in ipairs(grads) do pieces[i] = f(g):reshape { -1 } end
  return ddpm.cat(pieces, 0):sum()
end

-- 1 when every gradient element is finite: the sum of g * 0 is 0 then and
-- NaN otherwise (inf * 0 and NaN * 0 are NaN).
local function all_finite(grads)
  return ddpm.eq(sum_over(grads, function(g) return g * 0 end), 0)
end

-- x^t for an f32 scalar tensor t, as exp(t ln x).
local function power(x, t)
  return (t * math.log(x)):exp()
end

-- The gradients of loss (f32), loss-scaled when loss scaling is on.
function Adam:_fresh(loss)
  local wrt = {}
  for i, p in ipairs(self.params) do wrt[i] = p.tensor end
  local objective = self.scale and loss * self.scale or loss
  local fresh = ddpm.grad(objective, wrt)
  for i, g in ipairs(fresh) do fresh[i] = g:cast("f32") end
  return fresh
end

-- The gradients handed to the optimizer: the fresh ones (nil: none, the
-- sums hold them already) added to the sums of the micro-batches so far
-- (sums[i], also returned; loss-scaled, as torch's .grad accumulates them
-- under a GradScaler), unscaled, averaged, checked, clipped.
function Adam:_gradients(fresh)
  local unscale = self.scale and 1 / self.scale
  local sums, grads = {}, {}
  for i, p in ipairs(self.params) do
    sums[i] = fresh and p.grad_sum + fresh[i] or p.grad_sum
  end
  -- The mean is sum / N; its norm is taken as ||sum / scale|| / N. (A sum is
  -- finite exactly when it is once unscaled.)
  local inv_n = 1 / self.hp.grad_accum
  local norm = sum_over(sums, function(s)
    if unscale then s = s * unscale end
    return s * s
  end):sqrt()
  local info = { finite = all_finite(sums), grad_norm = norm * inv_n }
  -- Adam gets g * f + sum_before * f, f = 1/scale * 1/N * coef: the scalars
  -- multiplied first (torch rounds g * (1/scale) first: an ulp apart), and
  -- the fresh gradient g read apart from the sum, so that it is stored in
  -- the layout its kernel computes it in (a weight gradient's, channels
  -- last) rather than as the sum in the parameter's.
  local clip = self.hp.clip
  local coef = ddpm.where(ddpm.lt(0, clip), ddpm.minimum(clip / (info.grad_norm + 1e-6), 1), 1)
  local factor = inv_n * coef
  if unscale then factor = unscale * factor end
  for i, p in ipairs(self.params) do
    grads[i] = fresh and fresh[i] * factor + p.grad_sum * factor or p.grad_sum * factor
  end
  return grads, sums, info
end

-- GradScaler.update: halve on a skipped step; double after growth_interval
-- clean steps in a row. Only the N-th micro-batch (apply) counts.
function Adam:_scale_updates(ok, apply, updates)
  local grown = self.growth + ddpm.fill(1, {}, "i32")
  local full = ddpm.eq(grown, ddpm.fill(self.growth_interval, {}, "i32"))
  local zero = ddpm.fill(0, {}, "i32")
  local tracker = ddpm.where(ok, ddpm.where(full, zero, grown), zero)
  updates["optim.growth_tracker"] = ddpm.where(apply, tracker, self.growth)
  local up = ddpm.where(full, self.scale * self.growth_factor, self.scale)
  local scale = ddpm.where(ok, up, self.scale * self.backoff_factor)
  updates["optim.loss_scale"] = ddpm.where(apply, scale, self.scale)
end

-- lr_t: the lr of Adam step t (f32 scalar), get_scheduler's lambdas at t.
function Adam:_learning_rate(t)
  local hp = self.hp
  local w, n = hp.warmup, hp.total_steps
  local span = ddpm.maximum(n - w, 1)
  local linear = ddpm.maximum((n - t) / span, 0)
  local cosine = ddpm.maximum(((t - w) / span * math.pi):cos() * 0.5 + 0.5, 0)
  local kind = hp.lr_schedule
  local decay = ddpm.where(ddpm.eq(kind, CODES.lr_schedule.linear), linear,
                           ddpm.where(ddpm.eq(kind, CODES.lr_schedule.cosine), cosine, 1))
  decay = ddpm.where(ddpm.lt(0, n), decay, 1)
  return ddpm.where(ddpm.lt(t, w), t / ddpm.maximum(w, 1), decay) * hp.lr
end

-- The EMA decay at Adam step t (diffusers' EMAModel.get_decay, s = t - 1).
function Adam:_ema_decay(t)
  local hp, codes = self.hp, CODES.ema_warmup
  local s = t - 1
  local power_w = 1 - (-hp.ema_power * (s / hp.ema_inv_gamma + 1):log()):exp()
  local ratio_w = (s + 1) / (s + 10)
  local w = ddpm.where(ddpm.eq(hp.ema_warmup, codes.power), power_w, ratio_w)
  w = ddpm.maximum(ddpm.minimum(w, hp.ema), hp.ema_min_decay)
  w = ddpm.where(ddpm.lt(0, s), w, 0)
  return ddpm.where(ddpm.eq(hp.ema_warmup, codes.none), hp.ema, w)
end

-- One Adam update of parameter p with gradient g at step t (f32 scalar).
function Adam:_update(p, g, t, lr_t, decay, ok, updates)
  local b1, b2 = self.betas[1], self.betas[2]
  local theta, wd = p.tensor, self.hp.weight_decay
  if self.decoupled_weight_decay then theta = theta * (1 - lr_t * wd)
  else g = g + theta * wd end
  local m = p.exp_avg * b1 + g * (1 - b1)
  local v = p.exp_avg_sq * b2 + g * g * (1 - b2)
  local bc1 = 1 - power(b1, t)
  local bc2 = 1 - power(b2, t)
  local denom = v:sqrt() / bc2:sqrt() + self.eps
  local new = theta - m / denom * (lr_t / bc1)
  local function keep(next_value, old) return ddpm.where(ok, next_value, old) end
  updates[p.name] = keep(new, p.tensor)
  updates["optim.exp_avg." .. p.name] = keep(m, p.exp_avg)
  updates["optim.exp_avg_sq." .. p.name] = keep(v, p.exp_avg_sq)
  if p.ema then
    updates["ema." .. p.name] = keep(p.ema * decay + new * (1 - decay), p.ema)
  end
end

-- The step from the fresh gradients (nil: from the sums alone): the
-- updates of every state param, and info tensors {grad_norm, finite (1 or
-- 0), lr, loss_scale, ema_decay (with ema)} worth reporting. Each sum's
-- next value is made right after its parameter's update, so that the
-- compiled step keeps the optimizer in two kernels (a joint reduction,
-- then one batch writing every state tensor).
function Adam:_step(fresh)
  local grads, sums, info = self:_gradients(fresh)
  -- apply: this call is the N-th micro-batch of an optimizer step.
  local counted = self.accum + ddpm.fill(1, {}, "i32")
  local apply = ddpm.le(self.hp.grad_accum, counted:cast("f32"))
  local ok = self.scale and info.finite * apply or apply
  local step = self.step + ddpm.fill(1, {}, "i32")
  local updates = { ["optim.step"] = ddpm.where(ok, step, self.step) }
  -- t from the step's next value: the same on every applied step (a skipped
  -- one keeps no result), and the compiled program then reads the counter
  -- after its update, so the update kernel does not wait on the others.
  local t = updates["optim.step"]:cast("f32")
  local lr_t = self:_learning_rate(t)
  local decay = self.hp.ema and self:_ema_decay(t)
  for i, p in ipairs(self.params) do
    self:_update(p, grads[i], t, lr_t, decay, ok, updates)
    updates["optim.grad_sum." .. p.name] = ddpm.where(apply, 0, sums[i])
  end
  if self.scale then self:_scale_updates(ok, apply, updates) end
  if decay then
    updates["optim.ema_init_share"] = ddpm.where(ok, self.ema_share * decay, self.ema_share)
  end
  updates["optim.accum"] = ddpm.where(apply, ddpm.fill(0, {}, "i32"), counted)
  info.lr, info.loss_scale, info.ema_decay = lr_t, self.scale, decay
  return updates, info
end

-- minimize(loss): the whole step, updates and info as _step's.
function Adam:minimize(loss)
  return self:_step(self:_fresh(loss))
end

-- accumulate(loss): the updates that add loss's gradient to the sums (a
-- data-parallel process's first entry; see the header).
function Adam:accumulate(loss)
  local updates = {}
  for i, g in ipairs(self:_fresh(loss)) do
    local p = self.params[i]
    updates["optim.grad_sum." .. p.name] = p.grad_sum + g
  end
  return updates
end

-- apply(): the step from the sums alone (the second entry), as _step's.
function Adam:apply()
  return self:_step(nil)
end

return optim
