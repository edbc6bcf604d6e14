-- Fixture: an entry updates param "w" (3) with a (4) value built on line 5;
-- the entry is declared on line 6.
local ddpm = require "ddpm"
local w = ddpm.param("w", { 3 })
local v = ddpm.fill(0, { 4 })
ddpm.entry("step", { w = w }, { w = v })
