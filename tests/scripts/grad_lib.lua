-- grad_lib: builds the entry pairs that tests/test_autodiff.c checks by
-- finite differences (required by the grad_*.lua fixtures).
--
-- For a case NAME:
--   entry "case.NAME" has one output "loss", an f32 scalar;
--   entry "grad.NAME" has one output "g.<param name>" per param checked,
--     holding d loss / d param by ddpm.grad.
-- The harness perturbs the params in the interpreter's state one element at
-- a time, reruns case.NAME and compares the central difference with grad.NAME.
-- A param whose name ends in ".zero" must get an exactly zero gradient
-- (unreached, or reached only through i32 or compare paths).
local ddpm = require "ddpm"

local M = {}

M.normal = { init = "normal", a = 0, b = 1 }

function M.uniform(a, b)
  return { init = "uniform", a = a, b = b }
end

local function numel(shape)
  local n = 1
  for _, d in ipairs(shape) do n = n * d end
  return n
end
M.numel = numel

-- A fixed tensor of `shape`, values in (-1, 1) scrambled and never 0, so a
-- gradient routed to the wrong element shows. `salt` varies the pattern.
function M.weights(shape, salt)
  local v = {}
  for i = 0, numel(shape) - 1 do
    v[i + 1] = ((i * 37 + (salt or 0) * 11 + 5) % 23 + 0.5) / 11.5 - 1
  end
  return ddpm.constant(v, shape)
end

-- Values spaced `gap` apart, in a scrambled order (k*7 mod n with n not a
-- multiple of 7), centred on 0: added to small params they keep every
-- maximum, minimum and sign away from ties by about `gap`.
function M.spread(shape, gap, salt)
  local n, v = numel(shape), {}
  local step = n % 7 == 0 and 5 or 7
  for i = 0, n - 1 do
    v[i + 1] = (((i * step + (salt or 0)) % n) - (n - 1) / 2) * gap
  end
  return ddpm.constant(v, shape)
end

-- A salt from the case name, so cases get different weight patterns.
local function salt_of(name)
  local s = 0
  for i = 1, #name do s = (s * 31 + name:byte(i)) % 1000 end
  return s
end

-- The two entries for a scalar `loss` and the params `list` named `names`.
function M.pair(name, loss, list, names)
  ddpm.entry("case." .. name, { loss = loss })
  local grads = ddpm.grad(loss, list)
  local outs = {}
  for i, n in ipairs(names) do outs["g." .. n] = grads[i] end
  ddpm.entry("grad." .. name, outs)
end

-- case(name, {{pname, shape, init}, ...}, build): creates params
-- "name.pname" (init defaults to N(0, 1)), y = build(p) with p[pname] the
-- param tensors, and checks loss = sum(y * weights).
function M.case(name, specs, build)
  local p, list, names = {}, {}, {}
  for i, s in ipairs(specs) do
    names[i] = name .. "." .. s[1]
    list[i] = ddpm.param(names[i], s[2], s[3] or M.normal)
    p[s[1]] = list[i]
  end
  local y = build(p)
  local weighted = y * M.weights(y:shape(), salt_of(name))
  local loss = y:dim() == 0 and weighted or weighted:sum()
  M.pair(name, loss, list, names)
end

return M
