-- Shape error fixture: ddpm.F.linear with 5 input features for a weight
-- expecting 4; raised inside lua/ddpm/functional.lua, reported at line 7.
local ddpm = require "ddpm"
local x = ddpm.input("x", { 2, 5 })
local w = ddpm.param("w", { 3, 4 })
local b = ddpm.param("b", { 3 })
local y = ddpm.F.linear(x, w, b)
ddpm.entry("forward", { y = y })
