-- The executable-level tests' model (test_cli_resume): the smallest complete
-- diffusion program at Fashion-MNIST's size, so that `ddpmc compile` stays
-- short. 28x28x1, two levels (8, 16 channels), one-head attention at 14x14,
-- batch 4 (--set batch=B), 100 timesteps.
local ddpm = require "ddpm"
local nn = ddpm.nn
local unet = nn.UNet2DModel {
  sample_size = 28, in_channels = 1, out_channels = 1,
  block_out_channels = { 8, 16 }, layers_per_block = 1,
  down_block_types = { "DownBlock2D", "AttnDownBlock2D" },
  up_block_types = { "AttnUpBlock2D", "UpBlock2D" },
  norm_num_groups = 4, attention_head_dim = nn.None, dropout = 0.1,
  norm_eps = 1e-6, flip_sin_to_cos = false, freq_shift = 1, downsample_padding = 0,
}
ddpm.program.diffusion { model = unet, image = { 1, 28, 28 }, batch = ddpm.option("batch", 4), timesteps = 100,
  optimizer = { lr = 1e-3, warmup = 10, clip = 1.0, ema = 0.99 } }
