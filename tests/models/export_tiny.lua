-- A tiny complete diffusion program for the export tests (tests/test_export.c,
-- tests/golden/check_export.py): 28x28x1 like Fashion-MNIST, two levels
-- (8, 16 channels) with one-head attention at 14x14 and in the mid block,
-- 4 groups, dropout 0 (so forward is deterministic), batch 2, linear betas
-- from 1e-4 to 0.012.
local ddpm = require "ddpm"
local nn = ddpm.nn
local unet = nn.UNet2DModel {
  sample_size = 28, in_channels = 1, out_channels = 1,
  block_out_channels = { 8, 16 }, layers_per_block = 1,
  down_block_types = { "DownBlock2D", "AttnDownBlock2D" },
  up_block_types = { "AttnUpBlock2D", "UpBlock2D" },
  norm_num_groups = 4, attention_head_dim = nn.None, dropout = 0,
  norm_eps = 1e-6, flip_sin_to_cos = false, freq_shift = 1, downsample_padding = 0,
}
local schedule = ddpm.option("schedule", "linear")
ddpm.program.diffusion { model = unet, image = { 1, 28, 28 }, batch = 2,
  schedule = schedule, timesteps = 1000,
  beta_end = schedule == "linear" and 0.012 or nil,     -- not diffusers' 0.02: export carries it
  optimizer = { lr = 1e-3, warmup = 1, clip = 1.0, ema = 0.5 } }
