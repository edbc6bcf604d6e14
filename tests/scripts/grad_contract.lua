-- Gradient-check fixture (tests/test_autodiff.c): matmul, conv2d (w.r.t.
-- input and weight), gather and scatter_add.
local ddpm = require "ddpm"
local tensor = require "ddpm.tensor"
local L = require "grad_lib"
local case = L.case

case("matmul", { { "a", { 3, 4 } }, { "b", { 4, 2 } } }, function(p)
  return p.a:matmul(p.b)
end)
case("matmul_batched", { { "a", { 2, 3, 4 } }, { "b", { 2, 4, 5 } } }, function(p)
  return p.a:matmul(p.b):tanh()
end)
case("matmul_rank4", { { "a", { 2, 2, 3, 2 } }, { "b", { 2, 2, 2, 3 } } }, function(p)
  return p.a:matmul(p.b)
end)
case("matmul_self", { { "a", { 2, 3, 3 } } }, function(p)
  return p.a:matmul(p.a:transpose(1, 2))          -- both operands from one param
end)

-- conv2d: opts as ddpm.conv2d takes them (pad: top, bottom, left, right).
-- (A list, not pairs(): params are numbered, and so initialised, in the
-- order the cases run, which must not depend on Lua's hash order.)
local convs = {
  { "s1_p1", x = { 2, 3, 5, 6 }, w = { 4, 3, 3, 3 }, opts = { stride = 1, padding = 1 } },
  -- out 3x3: the last input column is never read (its gradient is zero)
  { "s2_asym", x = { 1, 2, 7, 6 }, w = { 3, 2, 3, 2 }, opts = { stride = 2, padding = { 1, 0, 0, 1 } } },
  { "s21_asym", x = { 1, 2, 6, 5 }, w = { 2, 2, 2, 3 }, opts = { stride = { 2, 1 }, padding = { 0, 1, 1, 0 } } },
  { "k1", x = { 2, 4, 3, 3 }, w = { 5, 4, 1, 1 }, opts = {} },
}
for _, c in ipairs(convs) do
  case("conv2d_" .. c[1], { { "x", c.x }, { "w", c.w, L.uniform(-0.5, 0.5) } }, function(p)
    return ddpm.conv2d(p.x, p.w, c.opts)
  end)
end
case("conv2d_chain", { { "x", { 1, 2, 6, 6 } }, { "w1", { 3, 2, 3, 3 }, L.uniform(-0.5, 0.5) },
                       { "w2", { 2, 3, 3, 3 }, L.uniform(-0.5, 0.5) } }, function(p)
  local h = ddpm.conv2d(p.x, p.w1, { stride = 2, padding = 1 }):tanh()
  return ddpm.conv2d(h, p.w2, { padding = 1 })
end)

-- gather w.r.t. the table: rows 0 and 2 repeat, rows 1 and 3 are never read.
local idx = ddpm.constant({ 0, 2, 2, 4, 0, 0 }, { 2, 3 }, "i32")
case("gather", { { "t", { 5, 3 } } }, function(p)
  return ddpm.gather(p.t, idx)
end)
case("gather_rank1", { { "t", { 5 } } }, function(p)
  return ddpm.gather(p.t:sin(), idx)
end)
case("scatter_add", { { "a", { 4, 3 } } }, function(p)
  local at = ddpm.constant({ 1, 1, 3, 0 }, { 4 }, "i32")
  return tensor.op("scatter_add", { p.a, at }, { shape = { 5, 3 } }):exp()
end)

-- Autocast: operands cast to f16, the product rounded to f16, cast back.
-- The loss is linear in each single element, so the harness takes a large
-- step; the tolerance covers the f16 roundings.
case("autocast_matmul_f16", { { "a", { 2, 3, 4 } }, { "b", { 2, 4, 3 } } }, function(p)
  return ddpm.autocast("f16", function() return p.a:matmul(p.b) end)
end)
case("autocast_conv2d_f16", { { "x", { 1, 2, 5, 5 } }, { "w", { 3, 2, 3, 3 }, L.uniform(-0.5, 0.5) } },
     function(p)
  return ddpm.autocast("f16", function() return ddpm.conv2d(p.x, p.w, { stride = 2, padding = 1 }) end)
end)
