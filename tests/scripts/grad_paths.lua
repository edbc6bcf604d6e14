-- Gradient-check fixture (tests/test_autodiff.c): paths that carry no
-- gradient. Params named *.zero must get exactly zero: they reach the loss
-- only through i32 values or compares, or not at all.
local ddpm = require "ddpm"
local L = require "grad_lib"
local case, U = L.case, L.uniform

-- b rounds to 10 (i32) whatever the step: d loss/d a = 10 * weights.
case("int_cast", { { "a", { 2, 3 } }, { "b.zero", { 2, 3 }, U(10.1, 10.4) } }, function(p)
  return p.a * p["b.zero"]:cast("i32"):cast("f32")
end)

-- An index computed from a param: only the table gets a gradient.
case("int_index", { { "t", { 4, 2 } }, { "i.zero", { 3 }, U(1.01, 1.2) } }, function(p)
  local at = (p["i.zero"] * 2):cast("i32")             -- 2 everywhere
  return ddpm.gather(p.t, at) * p["i.zero"]:cast("i32"):cast("f32"):reshape { 3, 1 }
end)

-- A compare as a value: a 0/1 mask times a.
case("compare", { { "a", { 2, 3 } }, { "c.zero", { 2, 3 }, U(-0.5, 0.5) } }, function(p)
  return ddpm.lt(p["c.zero"] + L.spread({ 2, 3 }, 2, 1), 0) * p.a
end)

-- u does not reach the loss at all; it is asked for anyway.
case("unreached", { { "a", { 3 } }, { "u.zero", { 2, 2 } } }, function(p)
  local _ = p["u.zero"]:exp()
  return p.a:sin()
end)

-- A param created after the loss node (its id is larger than the loss's).
do
  local a = ddpm.param("late.a", { 3 }, L.normal)
  local loss = (a:exp() * L.weights({ 3 }, 1)):sum()
  local late = ddpm.param("late.b.zero", { 2 }, L.normal)
  L.pair("late", loss, { a, late }, { "late.a", "late.b.zero" })
end

-- Self-checks of the harness: gradients that are wrong on purpose, 3% too
-- large, or right values at the wrong elements. The test expects the
-- harness to reject both (these are not "case." entries).
do
  local x = ddpm.param("selfcheck.x", { 2, 3 }, L.normal)
  local loss = (x:exp() * L.weights({ 2, 3 }, 2)):sum()
  local g = ddpm.grad(loss, { x })[1]
  ddpm.entry("selfcheck.loss", { loss = loss })
  ddpm.entry("selfcheck.scaled", { ["g.selfcheck.x"] = g * 1.03 })
  local swapped = ddpm.cat({ g:slice(0, 1, 2), g:slice(0, 0, 1) }, 0)
  ddpm.entry("selfcheck.swapped", { ["g.selfcheck.x"] = swapped })
end
