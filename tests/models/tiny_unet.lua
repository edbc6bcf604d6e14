-- A very small U-Net for fast tests: 16x16x1, two levels (8, 16 channels),
-- attention at 8x8 with 2 heads of 8, 4 groups, batch 2.
local ddpm = require "ddpm"
local nn = ddpm.nn

local unet = nn.UNet2DModel {
  sample_size = 16, in_channels = 1, out_channels = 1,
  block_out_channels = { 8, 16 }, layers_per_block = 1,
  down_block_types = { "DownBlock2D", "AttnDownBlock2D" },
  up_block_types = { "AttnUpBlock2D", "UpBlock2D" },
  norm_num_groups = 4, attention_head_dim = 8,
  norm_eps = 1e-6, flip_sin_to_cos = false, freq_shift = 1, downsample_padding = 0,
}

local batch = ddpm.option("batch", 2)
local x = ddpm.input("x", { batch, 1, 16, 16 })
local t = ddpm.input("t", { batch }, "i32")
ddpm.entry("forward", { eps = unet(x, t) })
