-- Fixture: a second input named "x" on line 4.
local ddpm = require "ddpm"
local a = ddpm.input("x", { 2 })
local b = ddpm.input("x", { 2 })
ddpm.entry("forward", { y = a + b })
