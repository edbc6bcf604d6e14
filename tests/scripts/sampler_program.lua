-- Fixture for tests/test_samplers.c: ddpm.program.diffusion on a one-param
-- model (out = 0.5 x, so the model's output is known), batch 4 of 1x2x3
-- images. Options (fe_load's --set): variance, schedule, prediction,
-- clip_sample. The extra entry "schedule" exposes the schedule's tables
-- as the f32 constants the sampler steps gather from.
local ddpm = require "ddpm"
local nn = ddpm.nn

local Tiny = nn.Module:extend("Tiny")
function Tiny:init()
  self.gain = nn.Parameter({ 1 }, { init = "uniform", a = 0.5, b = 0.5 })
end
function Tiny:forward(x, t)
  return x * self.gain
end

local sched = ddpm.program.diffusion {
  test_entries = true,
  model = Tiny(), image = { 1, 2, 3 }, batch = 4,
  schedule = ddpm.option("schedule", "linear"),
  variance = ddpm.option("variance", "fixed_small"),
  prediction = ddpm.option("prediction", "epsilon"),
  clip_sample = ddpm.option("clip_sample", true),
}
ddpm.entry("schedule", { betas = ddpm.constant(sched.betas),
                         alphas_cumprod = ddpm.constant(sched.alphas_cumprod) })
