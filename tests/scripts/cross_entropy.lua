-- test_classifier's closed-form fixture: F.cross_entropy and F.log_softmax
-- on fixed logits (4 rows of 5 classes, one row with large values to show
-- the max subtraction) and labels 3, 0, 4, 1.
local ddpm = require "ddpm"
local F = ddpm.F
local v = { 0.5, -1.25, 2.0, 0.75, -0.5,
            3.0, 1.0, -2.0, 0.0, 0.25,
            -0.75, 0.5, 1.5, -1.0, 2.25,
            80.0, 81.5, 79.0, 80.5, 78.0 }
local logits = ddpm.constant(v, { 4, 5 })
local labels = ddpm.constant({ 3, 0, 4, 1 }, { 4 }, "i32")
ddpm.entry("ce", { loss = F.cross_entropy(logits, labels), logp = F.log_softmax(logits, 1) })
