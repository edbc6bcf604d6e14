-- Shape error fixture: an input of 2^80 elements on line 4 (its count
-- would overflow int64).
local ddpm = require "ddpm"
local x = ddpm.input("x", { 1 << 40, 1 << 40 })
ddpm.entry("forward", { y = x })
