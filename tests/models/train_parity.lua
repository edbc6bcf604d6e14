-- The train-step parity model (tests/test_train_parity.c, goldens from
-- tests/golden/make_train_golden.py): a tiny diffusers UNet2DModel, 8x8x3,
-- two levels (4, 8 channels; 2 groups), one-head attention at 4x4 and in the
-- mid block, dropout 0 so that torch and we compute the same function.
-- Channels are small so that the goldens (initial weights, gradients, and
-- after three steps the weights, EMA and both Adam moments) stay ~300 KB.
--
-- Entries: those of ddpm.program.diffusion (train_step_fixed is the one the
-- test runs), plus
--   gradients(g.x0 (B,C,H,W), g.t (B) i32, g.noise (B,C,H,W))
--     -> loss, grad.<name> for every trainable parameter (diffusers names).
local ddpm = require "ddpm"
local nn = ddpm.nn

local B, C, H = 2, 3, 8

local unet = nn.UNet2DModel {
  sample_size = H, in_channels = C, out_channels = C,
  block_out_channels = { 4, 8 }, layers_per_block = 1,
  down_block_types = { "DownBlock2D", "AttnDownBlock2D" },
  up_block_types = { "AttnUpBlock2D", "UpBlock2D" },
  norm_num_groups = 2, norm_eps = 1e-6, attention_head_dim = nn.None, dropout = 0.0,
  flip_sin_to_cos = false, freq_shift = 1, downsample_padding = 0,
}

local sched = ddpm.program.diffusion {
  test_entries = true,
  model = unet, image = { C, H, H }, batch = B,
  schedule = "linear", timesteps = 1000, prediction = "epsilon",
  precision = "fp32",
  optimizer = { lr = 1e-3, warmup = 2, clip = 1.5, ema = 0.9 },
}

local shape = { B, C, H, H }
local x0 = ddpm.input("g.x0", shape)
local t = ddpm.input("g.t", { B }, "i32")
local noise = ddpm.input("g.noise", shape)
local loss = ddpm.diffusion.loss { model = unet, schedule = sched, x0 = x0, t = t, noise = noise }
local params = unet:parameters()
local wrt = {}
for i, p in ipairs(params) do wrt[i] = p.tensor end
local grads = ddpm.grad(loss, wrt)
local outputs = { loss = loss }
for i, p in ipairs(params) do outputs["grad." .. p.name] = grads[i] end
ddpm.entry("gradients", outputs)
