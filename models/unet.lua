-- The default model: a DDPM U-Net for Fashion-MNIST (28x28x1). Three levels
-- 28 -> 14 -> 7 with 64, 128, 128 channels, two res blocks per level,
-- one-head attention at 7x7 and in the mid block, dropout 0.1.
local ddpm = require "ddpm"
local nn = ddpm.nn

-- --set width=W --set layers=L --set groups=G shrink it for quick runs
-- (the demo uses width 32, one res block, 16 groups).
local width = ddpm.option("width", 64)
local unet = nn.UNet2DModel {
  sample_size = 28, in_channels = 1, out_channels = 1,
  block_out_channels = { width, 2 * width, 2 * width },        -- 28, 14, 7
  layers_per_block = ddpm.option("layers", 2),
  norm_num_groups = ddpm.option("groups", 32),
  down_block_types = { "DownBlock2D", "DownBlock2D", "AttnDownBlock2D" },
  up_block_types = { "AttnUpBlock2D", "UpBlock2D", "UpBlock2D" },
  attention_head_dim = nn.None,                                -- one head
  dropout = ddpm.option("dropout", 0.1),
  -- DDPM's settings where diffusers' defaults differ:
  norm_eps = 1e-6, flip_sin_to_cos = false, freq_shift = 1, downsample_padding = 0,
}

-- The program: forward, train_step, the DDPM and DDIM sampler steps
-- (lua/ddpm/program.lua). Ho et al. trained 800k steps at batch 128 with
-- lr 2e-4 after 5000 warm-up steps and EMA 0.9999; these defaults are for
-- runs of a few thousand steps on a CPU: batch 32, lr 1e-3 after 200
-- warm-up steps, and diffusers' EMA warm-up (decay 1 - (1 + s)^-3/4, at
-- most 0.9999), so the EMA weights follow the training from the start.
-- Every optimizer value is also a train flag (--lr, --warmup, --ema, ...).
ddpm.program.diffusion {
  model = unet, image = { 1, 28, 28 }, batch = ddpm.option("batch", 32),
  schedule = "linear", timesteps = 1000, precision = ddpm.option("precision", "fp32"),
  optimizer = { lr = ddpm.option("lr", 1e-3), warmup = ddpm.option("warmup", 200), clip = 1.0,
                ema = ddpm.option("ema", 0.9999), ema_warmup = ddpm.option("ema_warmup", "power"),
                ema_power = 3 / 4 },
}
