-- Shape error fixture: inner dimensions of matmul differ (line 5).
local ddpm = require "ddpm"
local a = ddpm.input("a", { 2, 3 })
local b = ddpm.param("b", { 4, 5 })
local c = a:matmul(b)
ddpm.entry("forward", { c = c })
