-- Gradient-check fixture (tests/test_autodiff.c): the composites of
-- ddpm.F and Tensor (silu, softmax, group_norm with affine, linear, conv2d
-- with bias, mean, var, log_softmax, cross_entropy), differentiated through their core ops.
local ddpm = require "ddpm"
local L = require "grad_lib"
local case, F = L.case, ddpm.F

case("silu", { { "x", { 3, 4 } } }, function(p) return F.silu(p.x) end)
case("softmax_last", { { "x", { 2, 5 } } }, function(p) return F.softmax(p.x, -1) end)
case("softmax_mid", { { "x", { 2, 3, 4 } } }, function(p) return F.softmax(p.x, 1) end)
case("group_norm", { { "x", { 2, 4, 3, 3 } }, { "w", { 4 }, { init = "normal", a = 1, b = 0.5 } },
                     { "b", { 4 } } }, function(p)
  return F.group_norm(p.x, 2, p.w, p.b, 1e-5)
end)
case("group_norm_rank3", { { "x", { 2, 6, 5 } } }, function(p)
  return F.group_norm(p.x, 3, nil, nil, 1e-5)
end)
case("linear", { { "x", { 2, 3, 4 } }, { "w", { 5, 4 } }, { "b", { 5 } } }, function(p)
  return F.linear(p.x, p.w, p.b)
end)
case("conv2d_bias", { { "x", { 1, 2, 4, 4 } }, { "w", { 3, 2, 3, 3 }, L.uniform(-0.5, 0.5) },
                      { "b", { 3 } } }, function(p)
  return F.silu(F.conv2d(p.x, p.w, p.b, { padding = 1 }))
end)
case("mean_var", { { "x", { 3, 4 } } }, function(p)
  return p.x:mean(1) * p.x:var(1) + p.x:var(0, true):sqrt():sum()
end)
case("log_softmax", { { "x", { 3, 5 } } }, function(p)
  return F.log_softmax(p.x, 1)
end)
-- labels 2, 0, 4: each row's loss reads another column
case("cross_entropy", { { "x", { 3, 5 } } }, function(p)
  return F.cross_entropy(p.x * 3, ddpm.constant({ 2, 0, 4 }, { 3 }, "i32"))
end)
case("mse", { { "x", { 2, 3 } } }, function(p)
  return ((p.x - L.weights({ 2, 3 }, 9)) ^ 2):mean()
end)
