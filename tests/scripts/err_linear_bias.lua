-- Shape error fixture: a bias of the wrong length; the add that fails is a
-- builder call inside ddpm.F.linear, reported at line 8.
local ddpm = require "ddpm"
local x = ddpm.input("x", { 2, 5 })
local w = ddpm.param("w", { 3, 5 })
local b = ddpm.param("b", { 4 })
local unused = 1
local y = ddpm.F.linear(x, w, b)
ddpm.entry("forward", { y = y })
