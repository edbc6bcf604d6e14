-- Shape error fixture: a core reduction over axis 40 on line 5 (the axes
-- mask has a bit per dim; 1 << 40 would have reduced another axis).
local ddpm = require "ddpm"
local core = require "ddpm.core"
local s = core.op("reduce_sum", { ddpm.input("x", { 2, 3 }).id }, { axes = { 40 } })
ddpm.entry("forward", { y = s })
