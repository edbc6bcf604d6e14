-- Shape error fixture: an unsupported power on line 4.
local ddpm = require "ddpm"
local x = ddpm.input("x", { 3 })
local y = x ^ 3
ddpm.entry("forward", { y = y })
