-- ddpm.optim: the optimizer step as graph nodes, with torch's semantics.
--
--   local opt = optim.Adam(unet:parameters(), { lr = 2e-4, warmup = 5000,
--                          clip = 1.0, ema = 0.9999, loss_scaling = true })
--   local updates, info = opt:minimize(loss)
--   ddpm.entry("train_step", { loss = loss }, updates)
--
-- minimize() differentiates loss (scaled by the dynamic loss scale when
-- loss scaling is on), unscales, checks every gradient for inf/NaN, clips by
-- global norm, applies Adam or AdamW, updates the EMA weights and the step
-- counter. A step whose gradients are not all finite changes nothing but
-- the loss scale (halved), exactly as torch's GradScaler skips
-- optimizer.step(). All of it is graph nodes: the host never sees a
-- gradient. The returned `updates` map every state param to its next value.
--
-- State params (not trainable): optim.step (i32, Adam's t), per parameter
-- optim.exp_avg.NAME and optim.exp_avg_sq.NAME, ema.NAME (when ema is set),
-- and with loss scaling optim.loss_scale (f32) and optim.growth_tracker (i32).
--
-- The learning rate at Adam step t (1-based) is lr * min(t / warmup, 1).
local ddpm = require "ddpm"

local optim = {}

local Adam = {}
Adam.__index = Adam

local DEFAULTS = {
  lr = 2e-4, betas = { 0.9, 0.999 }, eps = 1e-8, weight_decay = 0,
  decoupled_weight_decay = false, warmup = 0, clip = nil, ema = nil,
  loss_scaling = false, init_scale = 65536.0, growth_factor = 2.0,
  backoff_factor = 0.5, growth_interval = 2000,
}

local function state(name, shape, dtype, init, value)
  return ddpm.param(name, shape, { dtype = dtype or "f32", init = init or "zeros",
                                    a = value, b = value, trainable = false })
end

-- Adam(params, opts): params is a list of {name =, tensor =} (Module:parameters()).
function optim.Adam(params, opts)
  local self = setmetatable({ params = params }, Adam)
  for k in pairs(opts or {}) do
    if DEFAULTS[k] == nil and k ~= "clip" and k ~= "ema" then
      ddpm.fail("optim", "unknown option '" .. tostring(k) .. "'")
    end
  end
  for k, v in pairs(DEFAULTS) do self[k] = v end
  for k, v in pairs(opts or {}) do self[k] = v end
  self.step = state("optim.step", {}, "i32")
  for _, p in ipairs(params) do
    local shape = p.tensor:shape()
    p.exp_avg = state("optim.exp_avg." .. p.name, shape)
    p.exp_avg_sq = state("optim.exp_avg_sq." .. p.name, shape)
    if self.ema then
      p.ema = ddpm.param("ema." .. p.name, shape, { init = "copy", from = p.tensor, trainable = false })
    end
  end
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

local function global_norm(grads)
  return sum_over(grads, function(g) return g * g end):sqrt()
end

-- x^t for an f32 scalar tensor t, as exp(t ln x).
local function power(x, t)
  return (t * math.log(x)):exp()
end

-- The gradients handed to the optimizer: unscaled, checked, clipped.
function Adam:_gradients(loss)
  local wrt = {}
  for i, p in ipairs(self.params) do wrt[i] = p.tensor end
  local objective = self.scale and loss * self.scale or loss
  local grads = ddpm.grad(objective, wrt)
  local unscale = self.scale and 1 / self.scale
  local unscaled = {}
  for i, g in ipairs(grads) do
    unscaled[i] = g:cast("f32")
    if unscale then unscaled[i] = unscaled[i] * unscale end
  end
  local info = { finite = all_finite(unscaled), grad_norm = global_norm(unscaled) }
  -- Adam gets g * (1/scale * coef): the scalars multiplied first, one
  -- multiply per element (torch rounds g * (1/scale) first: an ulp apart).
  local factor = unscale
  if self.clip then
    local coef = ddpm.minimum(self.clip / (info.grad_norm + 1e-6), 1)
    factor = factor and factor * coef or coef
  end
  for i, g in ipairs(grads) do
    grads[i] = g:cast("f32")
    if factor then grads[i] = grads[i] * factor end
  end
  return grads, info
end

-- GradScaler.update: halve on a skipped step; double after growth_interval
-- clean steps in a row.
function Adam:_scale_updates(ok, updates)
  local grown = self.growth + ddpm.fill(1, {}, "i32")
  local full = ddpm.eq(grown, ddpm.fill(self.growth_interval, {}, "i32"))
  local zero = ddpm.fill(0, {}, "i32")
  updates["optim.growth_tracker"] = ddpm.where(ok, ddpm.where(full, zero, grown), zero)
  local up = ddpm.where(full, self.scale * self.growth_factor, self.scale)
  updates["optim.loss_scale"] = ddpm.where(ok, up, self.scale * self.backoff_factor)
end

-- One Adam update of parameter p with gradient g at step t (f32 scalar).
function Adam:_update(p, g, t, lr_t, ok, updates)
  local b1, b2 = self.betas[1], self.betas[2]
  local theta = p.tensor
  if self.weight_decay ~= 0 then
    if self.decoupled_weight_decay then theta = theta * (1 - lr_t * self.weight_decay)
    else g = g + theta * self.weight_decay end
  end
  local m = p.exp_avg * b1 + g * (1 - b1)
  local v = p.exp_avg_sq * b2 + g * g * (1 - b2)
  local bc1 = 1 - power(b1, t)
  local bc2 = 1 - power(b2, t)
  local denom = v:sqrt() / bc2:sqrt() + self.eps
  local new = theta - m / denom * (lr_t / bc1)
  local function keep(next_value, old)          -- only a scaled step can be skipped
    if not self.scale then return next_value end
    return ddpm.where(ok, next_value, old)
  end
  updates[p.name] = keep(new, p.tensor)
  updates["optim.exp_avg." .. p.name] = keep(m, p.exp_avg)
  updates["optim.exp_avg_sq." .. p.name] = keep(v, p.exp_avg_sq)
  if p.ema then
    updates["ema." .. p.name] = keep(p.ema * self.ema + new * (1 - self.ema), p.ema)
  end
end

-- minimize(loss): the updates of every state param, and info tensors
-- {grad_norm, finite (1 or 0), lr, loss_scale} worth reporting.
function Adam:minimize(loss)
  local grads, info = self:_gradients(loss)
  local ok = self.scale and info.finite or ddpm.fill(1, {}, "f32")
  local step = self.step + ddpm.fill(1, {}, "i32")
  local updates = { ["optim.step"] = self.scale and ddpm.where(ok, step, self.step) or step }
  -- t from the step's next value: the same on every applied step (a skipped
  -- one keeps no result), and the compiled program then reads the counter
  -- after its update, so the update kernel does not wait on the others.
  local t = updates["optim.step"]:cast("f32")
  local lr_t = self.warmup > 0 and ddpm.minimum(t * (1 / self.warmup), 1) * self.lr
               or ddpm.fill(self.lr, {}, "f32")
  for i, p in ipairs(self.params) do self:_update(p, grads[i], t, lr_t, ok, updates) end
  if self.scale then self:_scale_updates(ok, updates) end
  info.lr, info.loss_scale = lr_t, self.scale
  return updates, info
end

return optim
