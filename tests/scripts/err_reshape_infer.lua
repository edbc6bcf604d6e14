-- Shape error fixture: a -1 in reshape that cannot be inferred (line 5),
-- raised by lua/ddpm/tensor.lua but reported at this line.
local ddpm = require "ddpm"
local x = ddpm.input("x", { 2, 3, 5 })
local y = x:reshape { -1, 7 }
ddpm.entry("forward", { y = y })
