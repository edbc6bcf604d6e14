-- Shape error fixture: adding shapes that do not broadcast (line 6).
local ddpm = require "ddpm"
local a = ddpm.input("a", { 2, 3 })
local b = ddpm.input("b", { 4 })
local c = a * 2
local d = c + b
ddpm.entry("forward", { d = d })
