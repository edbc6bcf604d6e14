-- The "attn" golden U-Net (tests/golden/unet_attn_config.json): two levels,
-- attention at 4x4 and in the mid block, one head.
local ddpm = require "ddpm"
local nn = ddpm.nn

local unet = nn.UNet2DModel {
  sample_size = 8, in_channels = 3, out_channels = 3,
  block_out_channels = { 16, 32 }, layers_per_block = 1,
  down_block_types = { "DownBlock2D", "AttnDownBlock2D" },
  up_block_types = { "AttnUpBlock2D", "UpBlock2D" },
  norm_num_groups = 8, norm_eps = 1e-6, attention_head_dim = nn.None,
  flip_sin_to_cos = false, freq_shift = 1, downsample_padding = 0,
}

local batch = ddpm.option("batch", 2)
local x = ddpm.input("x", { batch, 3, 8, 8 })
local t = ddpm.input("t", { batch }, "i32")
ddpm.entry("forward", { eps = unet(x, t) })
