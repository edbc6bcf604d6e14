-- Fixture: a second entry named "forward" on line 5.
local ddpm = require "ddpm"
local x = ddpm.input("x", { 2 })
ddpm.entry("forward", { y = x * 2 })
ddpm.entry("forward", { y = x * 3 })
