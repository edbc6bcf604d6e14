-- Ho et al. (2020), the CIFAR-10 model: 32x32x3, 128 base channels with
-- multipliers (1, 2, 2, 2), two res blocks per level, one-head attention at
-- 16x16, dropout 0.1. In diffusers' terms this is google/ddpm-cifar10-32:
-- 35,746,307 parameters with the same names and shapes.
local ddpm = require "ddpm"
local nn = ddpm.nn

local unet = nn.UNet2DModel {
  sample_size = 32, in_channels = 3, out_channels = 3,
  block_out_channels = { 128, 256, 256, 256 },                 -- 32, 16, 8, 4
  layers_per_block = 2,
  down_block_types = { "DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D" },
  up_block_types = { "UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D" },
  attention_head_dim = nn.None,                                -- one head
  dropout = 0.1,
  -- DDPM's settings where diffusers' defaults differ:
  norm_eps = 1e-6, flip_sin_to_cos = false, freq_shift = 1, downsample_padding = 0,
}

-- The program: forward, train_step, the DDPM and DDIM sampler steps
-- (lua/ddpm/program.lua), with Ho et al.'s training settings.
ddpm.program.diffusion {
  model = unet, image = { 3, 32, 32 }, batch = ddpm.option("batch", 8),
  schedule = "linear", timesteps = 1000, precision = ddpm.option("precision", "fp32"),
  optimizer = { lr = 2e-4, warmup = 5000, clip = 1.0, ema = 0.9999 },
}
