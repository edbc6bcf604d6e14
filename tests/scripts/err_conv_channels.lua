-- Shape error fixture (test_shape_errors): a conv2d whose weight expects
-- 2 input channels while the input has 3; the error must name line 5.
local ddpm = require "ddpm"
local x, w = ddpm.input("x", { 2, 3, 9, 7 }), ddpm.param("w", { 4, 2, 3, 3 })
local y = ddpm.conv2d(x, w, { padding = 1 })
ddpm.entry("forward", { y = y })
