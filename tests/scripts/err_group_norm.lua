-- Shape error fixture: 6 channels do not split into 4 groups (line 6).
local ddpm = require "ddpm"
local x = ddpm.input("x", { 1, 6, 3, 3 })
local w = ddpm.param("w", { 6 }, { init = "ones" })
local b = ddpm.param("b", { 6 })
local y = ddpm.F.group_norm(x, 4, w, b, 1e-5)
ddpm.entry("forward", { y = y })
