-- Shape error fixture: a GroupNorm weight of 5 for 6 channels; the reshape
-- that fails is inside ddpm.F.group_norm, reported at line 6.
local ddpm = require "ddpm"
local x = ddpm.input("x", { 1, 6, 3, 3 })
local w = ddpm.param("w", { 5 }, { init = "ones" })
local y = ddpm.F.group_norm(x, 3, w, nil, 1e-5)
ddpm.entry("forward", { y = y })
