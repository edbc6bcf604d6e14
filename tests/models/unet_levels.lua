-- The "levels" golden U-Net (tests/golden/unet_levels_config.json): three
-- levels 12 -> 6 -> 3, attention at 3x3 with 3 heads of 8 channels.
local ddpm = require "ddpm"
local nn = ddpm.nn

local unet = nn.UNet2DModel {
  sample_size = 12, in_channels = 1, out_channels = 1,
  block_out_channels = { 8, 16, 24 }, layers_per_block = 2,
  down_block_types = { "DownBlock2D", "DownBlock2D", "AttnDownBlock2D" },
  up_block_types = { "AttnUpBlock2D", "UpBlock2D", "UpBlock2D" },
  norm_num_groups = 4, norm_eps = 1e-6, attention_head_dim = 8,
  flip_sin_to_cos = false, freq_shift = 1, downsample_padding = 0,
}

local batch = ddpm.option("batch", 3)
local x = ddpm.input("x", { batch, 1, 12, 12 })
local t = ddpm.input("t", { batch }, "i32")
ddpm.entry("forward", { eps = unet(x, t) })
