-- Gradient-check fixture (tests/test_autodiff.c): tests/models/tiny_unet.lua's
-- U-Net end to end (two levels of 8 and 16 channels, attention at the
-- second with 2 heads of 8, 4 groups), with batch 1 and 8x8 images to keep
-- the ~900 forward passes of the check fast. loss = mean((unet(x, t) -
-- target)^2) with x, t and target constants; every parameter is checked.
local ddpm = require "ddpm"
local L = require "grad_lib"
local nn = ddpm.nn

local unet = nn.UNet2DModel {
  sample_size = 8, in_channels = 1, out_channels = 1,
  block_out_channels = { 8, 16 }, layers_per_block = 1,
  down_block_types = { "DownBlock2D", "AttnDownBlock2D" },
  up_block_types = { "AttnUpBlock2D", "UpBlock2D" },
  norm_num_groups = 4, attention_head_dim = 8,
  norm_eps = 1e-6, flip_sin_to_cos = false, freq_shift = 1, downsample_padding = 0,
}

local function pattern(n, a, b)
  local v = {}
  for i = 0, n - 1 do v[i + 1] = math.sin(i * a + b) * 1.5 end
  return v
end
local x = ddpm.constant(pattern(64, 0.37, 0.1), { 1, 1, 8, 8 })
local target = ddpm.constant(pattern(64, 1.91, 0.7), { 1, 1, 8, 8 })
local t = ddpm.constant({ 37 }, { 1 }, "i32")

local loss = ((unet(x, t) - target) ^ 2):mean()
local list, names = {}, {}
for i, p in ipairs(unet:parameters()) do
  list[i], names[i] = p.tensor, p.name
end
L.pair("unet", loss, list, names)
