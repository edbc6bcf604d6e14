-- The OpenCL tests' model (test_opencl): a complete diffusion program with
-- the fewest kernels that still has every part of a U-Net: one level
-- (8 channels, one ResBlock each way, a skip connection), the mid block's
-- attention, the time embedding. 16x16x1, batch 4, 100 timesteps
-- (--set channels=3: 16x16x3, test_eval's RGB program, which has no metric).
local ddpm = require "ddpm"
local nn = ddpm.nn
local C = ddpm.option("channels", 1)
local unet = nn.UNet2DModel {
  sample_size = 16, in_channels = C, out_channels = C,
  block_out_channels = { 8 }, layers_per_block = 1,
  down_block_types = { "DownBlock2D" }, up_block_types = { "UpBlock2D" },
  norm_num_groups = 4, attention_head_dim = nn.None, dropout = 0.1,
  norm_eps = 1e-6, flip_sin_to_cos = false, freq_shift = 1, downsample_padding = 0,
}
ddpm.program.diffusion { model = unet, image = { C, 16, 16 }, batch = 4, timesteps = 100,
  optimizer = { lr = 1e-3, warmup = 10, clip = 1.0, ema = 0.99 } }
