-- Shape error fixture: transpose of a dim beyond the rank on line 4.
local ddpm = require "ddpm"
local x = ddpm.input("x", { 2, 3 })
local y = x:transpose(0, 2)
ddpm.entry("forward", { y = y })
