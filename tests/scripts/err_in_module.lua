-- Shape error fixture: the failing op is built in a module beside this
-- script (mod_widen.lua, line 7); that module's line is the one reported.
local ddpm = require "ddpm"
local helper = require "mod_widen"
local x = ddpm.input("x", { 2, 3 })
local y = helper.widen(x)
ddpm.entry("forward", { y = y })
