-- A small DDPM U-Net for Fashion-MNIST that learns in minutes on a laptop
-- CPU: the default model's layout (28 -> 14 -> 7, attention at 7x7 and in
-- the middle) at a quarter of its width and one res block per level.
local ddpm = require "ddpm"
local nn = ddpm.nn

local unet = nn.UNet2DModel {
  sample_size = 28, in_channels = 1, out_channels = 1,
  block_out_channels = { 32, 64, 64 },                         -- 28, 14, 7
  layers_per_block = 1,
  down_block_types = { "DownBlock2D", "DownBlock2D", "AttnDownBlock2D" },
  up_block_types = { "AttnUpBlock2D", "UpBlock2D", "UpBlock2D" },
  norm_num_groups = 16, attention_head_dim = nn.None, dropout = ddpm.option("dropout", 0.1),
  norm_eps = 1e-6, flip_sin_to_cos = false, freq_shift = 1, downsample_padding = 0,
}

ddpm.program.diffusion {
  model = unet, image = { 1, 28, 28 }, batch = ddpm.option("batch", 32),
  schedule = "linear", timesteps = 1000,
  optimizer = { lr = ddpm.option("lr", 1e-3), warmup = ddpm.option("warmup", 200), clip = 1.0,
                ema = ddpm.option("ema", 0.999) },
}
