-- A tiny complete diffusion program (train, sample, math entries) for fast
-- tests of the train step: 16x16x1, two levels, one-head attention at 8x8.
local ddpm = require "ddpm"
local nn = ddpm.nn
local unet = nn.UNet2DModel {
  sample_size = 16, in_channels = 1, out_channels = 1,
  block_out_channels = { 8, 16 }, layers_per_block = 1,
  down_block_types = { "DownBlock2D", "AttnDownBlock2D" },
  up_block_types = { "AttnUpBlock2D", "UpBlock2D" },
  norm_num_groups = 4, attention_head_dim = nn.None, dropout = 0.1,
  norm_eps = 1e-6, flip_sin_to_cos = false, freq_shift = 1, downsample_padding = 0,
}
ddpm.program.diffusion { model = unet, image = { 1, 16, 16 }, batch = 2,
  precision = ddpm.option("precision", "fp32"),
  optimizer = { lr = 1e-3, warmup = 10, clip = 1.0, ema = 0.999 } }
