-- Fixture for tests/test_loss_scale.c: two tiny params trained by Adam with
-- dynamic loss scaling (GradScaler semantics) and EMA. The gradient of w is
-- the input x itself, so an x holding inf, NaN or a value whose scaled
-- gradient overflows f32 (1e34 * 65536 > 3.4e38) forces a non-finite step.
local ddpm = require "ddpm"
local optim = require "ddpm.optim"

local w = ddpm.param("w", { 3 }, { init = "uniform", a = -1, b = 1 })
local b = ddpm.param("b", { 2 }, { init = "uniform", a = -1, b = 1 })
local x = ddpm.input("x", { 3 })
local y = ddpm.input("y", { 2 })
local loss = (w * x):sum() + (b * b * y):sum()

local opt = optim.Adam({ { name = "w", tensor = w }, { name = "b", tensor = b } },
                       { lr = 1e-2, loss_scaling = true, growth_interval = 2000, ema = 0.99 })
local updates, info = opt:minimize(loss)
ddpm.entry("train_step", { loss = loss, loss_scale = info.loss_scale, finite = info.finite,
                           grad_norm = info.grad_norm, lr = info.lr }, updates)
