-- ddpm: the library model scripts require.
--
--   local ddpm = require "ddpm"
--   local x = ddpm.input("x", {8, 1, 28, 28})        -- f32 unless a dtype is given
--   local t = ddpm.input("t", {8}, "i32")
--   ddpm.entry("forward", { eps = unet(x, t) })
--
-- Tensors (ddpm.tensor), composites (ddpm.F), modules (ddpm.nn) and the
-- UNet2DModel builder (ddpm.nn.UNet2DModel) are reachable from here.
local core = require "ddpm.core"
local tensor = require "ddpm.tensor"

local ddpm = {}

ddpm.Tensor = tensor.Tensor
ddpm.is_tensor = tensor.is_tensor
for _, name in ipairs { "cat", "where", "maximum", "minimum", "lt", "le", "eq", "gt", "ge",
                        "conv2d", "gather" } do
  ddpm[name] = tensor[name]
end

function ddpm.input(name, shape, dtype)
  return tensor.wrap(core.input(name, shape, dtype or "f32"))
end

-- param(name, shape, {init = "uniform"|"normal"|"zeros"|"ones"|"copy",
-- a =, b =, from =, dtype =, trainable =}): a named parameter or state
-- tensor. uniform draws from (a, b], normal has mean a and std b, copy
-- starts as the initial value of param `from` (EMA weights).
function ddpm.param(name, shape, opts)
  opts = opts or {}
  local a = opts.init == "copy" and opts.from.id or opts.a
  return tensor.wrap(core.param(name, shape, opts.dtype or "f32", opts.init or "zeros",
                                a, opts.b, opts.trainable ~= false))
end

function ddpm.fill(value, shape, dtype)
  return tensor.wrap(core.fill(value, shape, dtype or "f32"))
end

-- constant(values, shape, dtype): values are Lua numbers (float64), rounded
-- once to dtype.
function ddpm.constant(values, shape, dtype)
  return tensor.wrap(core.constant(values, shape or { #values }, dtype or "f32"))
end

-- load(file): the tensors of a safetensors file as f32 constants, by
-- name: weights fixed when the script runs, compiled into the program
-- (not parameters, not in checkpoints). file is a relative name, found
-- beside the script, else in the library folder (lua/).
function ddpm.load(file)
  local out = {}
  for name, id in pairs(core.load(file)) do out[name] = tensor.wrap(id) end
  return out
end

-- The node ids of {name = tensor, ...}; `what` names such a value in the
-- error raised at the script's line when one is not a tensor.
local function ids_of(tensors, what)
  local ids = {}
  for k, v in pairs(tensors or {}) do
    if not tensor.is_tensor(v) then
      core.fail("entry", string.format("%s '%s' is a %s, not a tensor", what, tostring(k), type(v)))
    end
    ids[k] = v.id
  end
  return ids
end

-- entry(name, {out = tensor, ...}, {param_name = new_value, ...})
function ddpm.entry(name, outputs, updates)
  core.entry(name, ids_of(outputs, "output"), ids_of(updates, "update"))
end

-- option(name, default): a value given on the command line as --set name=v,
-- converted to the type of default.
function ddpm.option(name, default)
  local v = core.option(name)
  if v == nil then return default end
  if type(default) == "number" then
    local n = math.tointeger(tonumber(v)) or tonumber(v)
    if n == nil then core.fail("option", name .. " must be a number, got '" .. v .. "'") end
    return n
  end
  if type(default) == "boolean" then return v == "true" or v == "1" end
  return v
end

-- grad(y, {p1, p2, ...}, seed): tensors holding d(sum(seed * y))/dp_i, by
-- reverse-mode autodiff in the graph (seed defaults to ones).
function ddpm.grad(y, wrt, seed)
  local ids = {}
  for i, p in ipairs(wrt) do ids[i] = p.id end
  local grads = core.grad(y.id, ids, seed and seed.id)
  for i, id in ipairs(grads) do grads[i] = tensor.wrap(id) end
  return grads
end

-- Random draws inside the graph (Philox, runtime/philox.h): seed and step
-- are i32 scalar tensors, stream tells apart the draws of one step. shard
-- (an i32 scalar tensor, default 0) takes block `shard` of the stream's
-- elements: data-parallel processes drawing shards 0..N-1 of a (B, ...)
-- tensor draw together what one process draws for (N*B, ...).
local function draw(op, shape, seed, step, stream, shard)
  shard = shard or ddpm.fill(0, {}, "i32")
  return tensor.op(op, { seed, step, shard }, { shape = shape, stream = stream, dtype = "f32" })
end

function ddpm.rand(shape, seed, step, stream, shard)
  return draw("rng_uniform", shape, seed, step, stream, shard)
end

function ddpm.randn(shape, seed, step, stream, shard)
  return draw("rng_normal", shape, seed, step, stream, shard)
end

-- autocast(dtype, fn): runs fn with matmuls and convolutions computed in
-- dtype ("bf16", "f16"; "fp32" or nil for none) and everything else in f32.
function ddpm.autocast(dtype, fn)
  local names = { fp32 = false, f32 = false, bf16 = "bf16", fp16 = "f16", f16 = "f16" }
  local low = names[dtype or "fp32"]
  if low == nil then core.fail("autocast", "precision must be fp32, bf16 or fp16, got " .. tostring(dtype)) end
  local saved = tensor.autocast_dtype
  tensor.autocast_dtype = low or nil
  local ok, result = pcall(fn)
  tensor.autocast_dtype = saved
  if not ok then error(result, 0) end
  return result
end

-- meta(key, value): metadata the compiled program carries (JSON-encoded):
-- program.diffusion records the image shape, batch, schedule and the model
-- config there for the train, sample and export commands.
function ddpm.meta(key, value)
  core.meta(key, require("ddpm.json").encode(value))
end

ddpm.fail = core.fail
ddpm.F = require "ddpm.functional"
ddpm.nn = require "ddpm.nn"

-- ddpm.diffusion, ddpm.optim and ddpm.program load on first use (they
-- require ddpm themselves).
return setmetatable(ddpm, { __index = function(_, k)
  if k == "diffusion" or k == "optim" or k == "program" then return require("ddpm." .. k) end
end })
