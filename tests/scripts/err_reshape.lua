-- Shape error fixture: reshape to a different element count on line 4.
local ddpm = require "ddpm"
local x = ddpm.input("x", { 2, 3, 5 })
local y = x:reshape { 6, 4 }
ddpm.entry("forward", { y = y })
