-- Gradient-check fixture (tests/test_autodiff.c): elementwise ops,
-- reductions and movement ops, one case per rule and broadcast pattern.
-- Every point is smooth: log/sqrt/rsqrt/div see args in (0.5, 2]; abs,
-- max, min, select conditions and reduce_max see values at least ~0.06
-- from a tie or a sign change (small params plus a spread constant).
local ddpm = require "ddpm"
local tensor = require "ddpm.tensor"
local L = require "grad_lib"
local case, N, U, spread = L.case, L.normal, L.uniform, L.spread

local POS = U(0.5, 2)          -- away from 0 for log, sqrt, rsqrt, div
local SMALL = U(-0.02, 0.02)   -- added to a spread constant: no ties

-- Unary ops.
for _, op in ipairs { "neg", "exp", "sin", "cos", "tanh", "sigmoid" } do
  case(op, { { "x", { 3, 4 } } }, function(p) return p.x[op](p.x) end)
end
for _, op in ipairs { "log", "sqrt", "rsqrt" } do
  case(op, { { "x", { 3, 4 }, POS } }, function(p) return p.x[op](p.x) end)
end
case("abs", { { "x", { 3, 4 }, SMALL } }, function(p)
  return (p.x + spread({ 3, 4 }, 0.2, 1)):abs()
end)

-- Casts: the gradient passes through the rounding unchanged (the harness
-- uses a large step here: the loss is linear in x and the rounding noise of
-- f16/bf16 would swamp a small one).
case("cast_f16", { { "x", { 3, 4 } } }, function(p)
  return p.x:cast("f16"):cast("f32")
end)
case("cast_bf16", { { "x", { 3, 4 } } }, function(p)
  return p.x:cast("bf16"):cast("f32")
end)
case("cast_f16_math", { { "x", { 3, 4 } }, { "y", { 4 } } }, function(p)
  local h = p.x:cast("f16") * p.y:cast("f16") + 1
  return (h * 0.5):cast("f32")
end)

-- Binary ops: same shape, (2,3) op (3), (3) op (2,3), (2,1) op (1,3), and a
-- rank-0 operand. Denominators are positive.
-- (Lists, not pairs(): params are numbered, and so initialised, in the
-- order the cases run, which must not depend on Lua's hash order.)
local shapes = {
  { "same", { 2, 3 }, { 2, 3 } },
  { "row", { 2, 3 }, { 3 } },
  { "row_first", { 3 }, { 2, 3 } },
  { "outer", { 2, 1 }, { 1, 3 } },
  { "scalar", {}, { 2, 3 } },
}
for _, op in ipairs { "add", "sub", "mul", "div" } do
  for _, s in ipairs(shapes) do
    case(op .. "_" .. s[1], { { "a", s[2] }, { "b", s[3], op == "div" and POS or N } },
         function(p) return tensor.op(op, { p.a, p.b }) end)
  end
end
case("mul_self", { { "x", { 2, 3 } } }, function(p) return p.x * p.x end)
case("reuse", { { "x", { 2, 3 } } }, function(p)
  local e = p.x:exp()
  return e * p.x + e - p.x:sin() * e
end)

-- max and min: a and b lie on grids offset by 0.1 (b's values are multiples of
-- 0.2, a's are odd multiples of 0.1), so |a - b| >= 0.06 everywhere.
local function grid(shape, odd, salt)
  local n, v = L.numel(shape), {}
  for i = 0, n - 1 do v[i + 1] = ((i * 7 + salt) % n - n // 2) * 0.2 + (odd and 0.1 or 0) end
  return ddpm.constant(v, shape)
end
for _, op in ipairs { "max", "min" } do
  for _, s in ipairs(shapes) do
    case(op .. "_" .. s[1], { { "a", s[2], SMALL }, { "b", s[3], SMALL } }, function(p)
      return tensor.op(op, { p.a + grid(s[2], true, 3), p.b + grid(s[3], false, 5) })
    end)
  end
end
case("relu", { { "x", { 3, 4 }, SMALL } }, function(p)
  return (p.x + spread({ 3, 4 }, 0.2, 2)):relu()
end)

-- select: the conditions come from compares of params c.zero and d.zero
-- (whose gradients must be zero); a and b broadcast against them; a number
-- as one branch.
case("select", { { "c.zero", { 2, 3 }, SMALL }, { "a", { 2, 3 } }, { "b", { 1, 3 } },
                  { "d.zero", { 2, 3 }, SMALL } }, function(p)
  local cond = ddpm.lt(p["c.zero"] + spread({ 2, 3 }, 0.2, 1), 0)
  local cond2 = ddpm.gt(p["d.zero"] + spread({ 2, 3 }, 0.2, 4), 0)
  return ddpm.where(cond, p.a, p.b) + ddpm.where(cond2, p.a:exp(), 0.5)
end)
case("select_scalar_branch", { { "a", { 3 } }, { "b", {} } }, function(p)
  return ddpm.where(ddpm.constant({ 1, 0, 1, 0, 0, 1 }, { 2, 3 }), p.a, p.b)
end)

-- Reductions over several axis sets, with and without keepdim.
local sums = { { "d1", { 1 } }, { "d02", { 0, 2 } }, { "last_keep", { -1 }, true } }
for _, r in ipairs(sums) do
  case("reduce_sum_" .. r[1], { { "x", { 2, 3, 4 } } }, function(p)
    return p.x:sin():sum(r[2], r[3])
  end)
end
case("reduce_sum_all", { { "x", { 2, 3, 4 } } }, function(p)
  return p.x:sin():sum() + p.x:sum({ 0, 1, 2 }, true):reshape {}
end)
local maxes = { { "d2", { 2 } }, { "d01", { 0, 1 } }, { "d1_keep", { 1 }, true } }
for _, r in ipairs(maxes) do
  case("reduce_max_" .. r[1], { { "x", { 2, 3, 4 }, SMALL } }, function(p)
    return (p.x + spread({ 2, 3, 4 }, 0.1, 3)):max(r[2], r[3])
  end)
end
case("reduce_max_all", { { "x", { 3, 5 }, SMALL } }, function(p)
  local y = p.x + spread({ 3, 5 }, 0.1, 1)
  return y:max() * 2 + y:max(0):sum()
end)

-- Movement ops.
case("reshape", { { "x", { 2, 3, 4 } } }, function(p)
  return p.x:reshape { 4, 6 }:exp():reshape { 3, 8 }
end)
case("permute", { { "x", { 2, 3, 4 } } }, function(p)
  return p.x:permute { 2, 0, 1 }:tanh() * L.weights({ 4, 2, 3 }, 7)
end)
case("transpose", { { "x", { 2, 3, 4 } } }, function(p)
  return p.x:transpose(0, 2) * p.x:permute { 2, 1, 0 }:sin()
end)
case("expand", { { "x", { 3, 1 } }, { "y", { 4 } }, { "s", {} } }, function(p)
  return p.x:expand { 2, 3, 4 }:exp() + p.y:expand { 3, 4 } * p.s:expand { 2, 3, 4 }
end)
case("slice_step2", { { "x", { 2, 7, 3 } } }, function(p)
  return p.x:slice(1, 1, 7, 2):exp()                  -- rows 1, 3, 5
end)
case("slice_step2_stop", { { "x", { 2, 7, 3 } } }, function(p)
  return p.x:slice(1, 1, 5, 2):exp()                  -- rows 1, 3
end)
case("slice_step3", { { "x", { 2, 8 } } }, function(p)
  -- columns 0, 3, 6 | 2, 5 (stops short of the end) | 1, 4, 7
  return ddpm.cat({ p.x:slice(1, 0, 8, 3):sin(), p.x:slice(1, 2, 8, 3):exp(),
                    p.x:slice(1, 1, 8, 3):tanh() }, 1)
end)
case("slice_offset", { { "x", { 5, 4 } } }, function(p)
  return p.x:slice(0, 2, 5):sin():slice(1, 1, 3)      -- a plain window
end)
case("slice_two_axes", { { "x", { 7, 8 } } }, function(p)
  -- one node strided on both axes: rows 1, 4; columns 2, 4, 6
  return tensor.op("slice", { p.x }, { start = { 1, 2 }, step = { 3, 2 }, shape = { 2, 3 } }):exp()
end)
case("concat", { { "a", { 2, 1, 3 } }, { "b", { 2, 2, 3 } }, { "c", { 2, 3, 3 } } }, function(p)
  return ddpm.cat({ p.a:exp(), p.b, p.c:sin() }, 1)
end)
case("concat_reuse", { { "a", { 2, 3 } }, { "b", { 1, 3 } } }, function(p)
  return ddpm.cat({ p.a, p.b, p.a:sin() }, 0)
end)
case("pad", { { "x", { 2, 3, 4 } } }, function(p)
  return p.x:exp():pad({ 1, 2, 0, 1 }, 0.5)
end)
case("pad_first_dim", { { "x", { 2, 3 } } }, function(p)
  return p.x:sin():pad { 0, 0, 2, 1 }:pad { 1, 0 }
end)
case("upsample2", { { "x", { 1, 2, 3, 2 } } }, function(p)
  return p.x:sin():upsample_nearest(2)
end)
case("upsample3", { { "x", { 2, 1, 2, 3 } } }, function(p)
  return p.x:upsample_nearest(3):tanh()
end)
