-- A small model built from the library's composites (test_graph): one
-- conv2d, GroupNorm, SiLU, a linear layer and a softmax, odd sizes.
local ddpm = require "ddpm"
local F = ddpm.F
local x = ddpm.input("x", { 2, 3, 5, 7 })
local w = ddpm.param("conv.weight", { 4, 3, 3, 3 }, { init = "uniform", a = -0.2, b = 0.2 })
local b = ddpm.param("conv.bias", { 4 })
local gw = ddpm.param("norm.weight", { 4 }, { init = "ones" })
local gb = ddpm.param("norm.bias", { 4 })
local lw = ddpm.param("proj.weight", { 5, 4 }, { init = "normal", a = 0, b = 0.1 })
local h = F.conv2d(x, w, b, { stride = 2, padding = { 1, 0, 0, 1 } })
h = F.silu(F.group_norm(h, 2, gw, gb, 1e-5))
local pooled = h:mean({ 2, 3 })
local y = F.softmax(F.linear(pooled, lw), 1)
ddpm.entry("forward", { y = y, features = h })
