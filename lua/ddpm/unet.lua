-- ddpm.unet: diffusers' UNet2DModel and its blocks, added to ddpm.nn.
--
--   local unet = nn.UNet2DModel { sample_size = 32, block_out_channels = { 128, 256, 256, 256 },
--                                 down_block_types = { ... }, up_block_types = { ... }, ... }
--   local eps = unet(x, t)     -- x (N, C, H, W) f32, t (N) i32 -> (N, out_channels, H, W)
--
-- The structure, parameter names and registration order are diffusers'
-- (0.42.1, models/unets/unet_2d.py and unet_2d_blocks.py), so a diffusers
-- state_dict loads by name, and unet.config is the table diffusers writes
-- as config.json (nn.None for null). Every keyword takes diffusers' default
-- when absent; these differ from DDPM's and a DDPM model passes its own:
-- flip_sin_to_cos = true, freq_shift = 0, downsample_padding = 1,
-- norm_eps = 1e-5 and attention_head_dim = 8 (pass nn.None for one head). Settings this library
-- does not implement (fourier or learned time embeddings, class embeddings,
-- resnet down/upsamplers, "scale_shift" time conditioning) are rejected.
--
-- Down level i has layers_per_block resnets (each followed by an attention
-- in an Attn block) and, except the last level, a downsampler. Every resnet
-- output and downsampler output, after conv_in's, is kept as a skip. Up
-- level i has layers_per_block + 1 resnets whose input is cat([h, skip], 1),
-- the skips taken last-in-first-out, and an upsampler except the last level.
local nn = require "ddpm.nn"

local kwargs, REQUIRED, NONE = nn.kwargs, nn.REQUIRED, nn.NONE
local Module, ModuleList = nn.Module, nn.ModuleList

local tensor = require "ddpm.tensor"
local fail = require("ddpm.core").fail

-- The keyword arguments the down and up blocks share, with diffusers' defaults.
local function block_spec(extra)
  local spec = { in_channels = REQUIRED, out_channels = REQUIRED, temb_channels = REQUIRED,
                 dropout = 0, num_layers = 1, resnet_eps = 1e-6, resnet_act_fn = "swish",
                 resnet_groups = 32, output_scale_factor = 1 }
  for k, v in pairs(extra) do spec[k] = v end
  return spec
end

local function resnet(a, cin, cout)
  return nn.ResnetBlock2D { in_channels = cin, out_channels = cout,
                            temb_channels = a.temb_channels, eps = a.resnet_eps,
                            groups = a.resnet_groups, dropout = a.dropout,
                            non_linearity = a.resnet_act_fn,
                            output_scale_factor = a.output_scale_factor }
end

local function attention(a, c, head_dim, groups)
  return nn.Attention { channels = c, attention_head_dim = head_dim or c,
                        norm_num_groups = groups or a.resnet_groups, eps = a.resnet_eps,
                        rescale_output_factor = a.output_scale_factor }
end

--- Down blocks: forward(h, temb) -> h, {skips}. ---------------------------

-- DownBlock2D and AttnDownBlock2D share this body: the class decides
-- whether attentions exist (registered before resnets, as diffusers does).
local function init_down(self, a, with_attention)
  local resnets, attentions = {}, {}
  for i = 1, a.num_layers do
    resnets[i] = resnet(a, i == 1 and a.in_channels or a.out_channels, a.out_channels)
    if with_attention then attentions[i] = attention(a, a.out_channels, a.attention_head_dim) end
  end
  if with_attention then self.attentions = ModuleList(attentions) end
  self.resnets = ModuleList(resnets)
  if a.add_downsample then
    self.downsamplers = ModuleList { nn.Downsample2D { channels = a.out_channels,
                                                       padding = a.downsample_padding } }
  end
end

local function forward_down(self, h, temb)
  local skips = {}
  for i, r in ipairs(self.resnets) do
    h = r(h, temb)
    if self.attentions then h = self.attentions[i](h) end
    skips[#skips + 1] = h
  end
  if self.downsamplers then
    h = self.downsamplers[1](h)
    skips[#skips + 1] = h
  end
  return h, skips
end

local DownBlock2D = Module:extend("DownBlock2D")
nn.DownBlock2D = DownBlock2D
function DownBlock2D:init(args)
  init_down(self, kwargs("DownBlock2D", args, block_spec {
    add_downsample = true, downsample_padding = 1 }), false)
end
DownBlock2D.forward = forward_down

-- attention_head_dim defaults to 1 as in diffusers; None means one head.
local AttnDownBlock2D = Module:extend("AttnDownBlock2D")
nn.AttnDownBlock2D = AttnDownBlock2D
function AttnDownBlock2D:init(args)
  local a = kwargs("AttnDownBlock2D", args, block_spec {
    add_downsample = true, downsample_padding = 1, attention_head_dim = 1,
    downsample_type = "conv" })
  if a.downsample_type ~= "conv" then a.add_downsample = false end
  init_down(self, a, true)
end
AttnDownBlock2D.forward = forward_down

--- Up blocks: forward(h, {skips}, temb) -> h. -----------------------------

-- Resnet i takes cat([h, skip]): h has prev_output_channel channels for the
-- first resnet, out_channels after; the last resnet's skip has in_channels.
local function init_up(self, a, with_attention)
  local resnets, attentions = {}, {}
  for i = 1, a.num_layers do
    local skip = i == a.num_layers and a.in_channels or a.out_channels
    local hin = i == 1 and a.prev_output_channel or a.out_channels
    resnets[i] = resnet(a, hin + skip, a.out_channels)
    if with_attention then attentions[i] = attention(a, a.out_channels, a.attention_head_dim) end
  end
  if with_attention then self.attentions = ModuleList(attentions) end
  self.resnets = ModuleList(resnets)
  if a.add_upsample then
    self.upsamplers = ModuleList { nn.Upsample2D { channels = a.out_channels } }
  end
end

-- skips: this block's #resnets skips, in the order they were made; the
-- last is consumed first.
local function forward_up(self, h, skips, temb)
  for i, r in ipairs(self.resnets) do
    h = r(tensor.cat({ h, skips[#skips - i + 1] }, 1), temb)
    if self.attentions then h = self.attentions[i](h) end
  end
  if self.upsamplers then h = self.upsamplers[1](h) end
  return h
end

local up_spec = { prev_output_channel = REQUIRED, add_upsample = true }

local UpBlock2D = Module:extend("UpBlock2D")
nn.UpBlock2D = UpBlock2D
function UpBlock2D:init(args)
  init_up(self, kwargs("UpBlock2D", args, block_spec(up_spec)), false)
end
UpBlock2D.forward = forward_up

local AttnUpBlock2D = Module:extend("AttnUpBlock2D")
nn.AttnUpBlock2D = AttnUpBlock2D
function AttnUpBlock2D:init(args)
  local spec = block_spec(up_spec)
  spec.attention_head_dim, spec.upsample_type = 1, "conv"
  local a = kwargs("AttnUpBlock2D", args, spec)
  if a.upsample_type ~= "conv" then a.add_upsample = false end
  init_up(self, a, true)
end
AttnUpBlock2D.forward = forward_up

--- Mid block --------------------------------------------------------------

-- UNetMidBlock2D: resnets.0, then per layer attentions.i and resnets.i+1,
-- all C -> C. attn_groups None means resnet_groups.
local UNetMidBlock2D = Module:extend("UNetMidBlock2D")
nn.UNetMidBlock2D = UNetMidBlock2D

function UNetMidBlock2D:init(args)
  local a = kwargs("UNetMidBlock2D", args, {
    in_channels = REQUIRED, temb_channels = REQUIRED, dropout = 0, num_layers = 1,
    resnet_eps = 1e-6, resnet_act_fn = "swish", resnet_groups = 32, attn_groups = NONE,
    add_attention = true, attention_head_dim = 1, output_scale_factor = 1 })
  local c = a.in_channels
  a.resnet_groups = a.resnet_groups or math.min(c // 4, 32)
  local resnets, attentions = { resnet(a, c, c) }, {}
  for i = 1, a.num_layers do
    if a.add_attention then
      attentions[i] = attention(a, c, a.attention_head_dim, a.attn_groups)
    end
    resnets[i + 1] = resnet(a, c, c)
  end
  self.attentions = ModuleList(attentions)
  self.resnets = ModuleList(resnets)
end

function UNetMidBlock2D:forward(h, temb)
  h = self.resnets[1](h, temb)
  for i = 2, #self.resnets do
    if self.attentions[i - 1] then h = self.attentions[i - 1](h) end
    h = self.resnets[i](h, temb)
  end
  return h
end

--- UNet2DModel ------------------------------------------------------------

local DOWN = { DownBlock2D = DownBlock2D, AttnDownBlock2D = AttnDownBlock2D }
local UP = { UpBlock2D = UpBlock2D, AttnUpBlock2D = AttnUpBlock2D }

-- diffusers' UNet2DModel keywords and defaults, in its own order.
local CONFIG_SPEC = {
  sample_size = NONE, in_channels = 3, out_channels = 3, center_input_sample = false,
  time_embedding_type = "positional", time_embedding_dim = NONE, freq_shift = 0,
  flip_sin_to_cos = true,
  down_block_types = { "DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D" },
  mid_block_type = "UNetMidBlock2D",
  up_block_types = { "AttnUpBlock2D", "AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D" },
  block_out_channels = { 224, 448, 672, 896 }, layers_per_block = 2,
  mid_block_scale_factor = 1, downsample_padding = 1, downsample_type = "conv",
  upsample_type = "conv", dropout = 0.0, act_fn = "silu", attention_head_dim = 8,
  norm_num_groups = 32, attn_norm_num_groups = NONE, norm_eps = 1e-5,
  resnet_time_scale_shift = "default", add_attention = true, class_embed_type = NONE,
  num_class_embeds = NONE, num_train_timesteps = NONE,
}

-- The settings this implementation supports; anything else fails by name.
local SUPPORTED = {
  time_embedding_type = "positional", downsample_type = "conv", upsample_type = "conv",
  resnet_time_scale_shift = "default",
}

local function check_config(c)
  for k, v in pairs(SUPPORTED) do
    if c[k] ~= v then
      fail("UNet2DModel", string.format("%s = %q is not supported (only %q)", k, tostring(c[k]), v))
    end
  end
  for _, k in ipairs { "class_embed_type", "num_class_embeds" } do
    if c[k] ~= nil then fail("UNet2DModel", k .. " is not supported (class conditioning)") end
  end
  if c.mid_block_type ~= nil and c.mid_block_type ~= "UNetMidBlock2D" then
    fail("UNet2DModel", "unknown mid_block_type '" .. tostring(c.mid_block_type) .. "'")
  end
  if c.norm_num_groups == nil then fail("UNet2DModel", "norm_num_groups None is not supported") end
  local nd, nu, nb = #c.down_block_types, #c.up_block_types, #c.block_out_channels
  if nd ~= nu then
    fail("UNet2DModel", string.format("%d down_block_types but %d up_block_types", nd, nu))
  end
  if nb ~= nd then
    fail("UNet2DModel", string.format("%d block_out_channels but %d down_block_types", nb, nd))
  end
end

-- get_down_block / get_up_block: a type name ("UNetRes" prefix allowed, as
-- diffusers strips it) to its class.
local function block_class(kind, types, name)
  local cls = types[(name:gsub("^UNetRes", ""))]
  if not cls then
    local known = {}
    for k in pairs(types) do known[#known + 1] = k end
    table.sort(known)
    fail("UNet2DModel", string.format("unknown %s block type '%s' (known: %s)", kind, name,
                                      table.concat(known, ", ")))
  end
  return cls
end

-- config as diffusers writes it: every key, None as nn.None.
local function diffusers_config(c)
  local out = { _class_name = "UNet2DModel", _diffusers_version = "0.42.1" }
  for k in pairs(CONFIG_SPEC) do
    local v = c[k]
    if v == nil then v = nn.None end
    out[k] = v
  end
  return out
end

local UNet2DModel = Module:extend("UNet2DModel")
nn.UNet2DModel = UNet2DModel

-- UNet2DModel{...}: diffusers' keywords (CONFIG_SPEC). Keys starting with
-- "_" (a loaded config.json's _class_name, _diffusers_version) are ignored.
function UNet2DModel:init(args)
  local given = {}
  for k, v in pairs(args or {}) do
    if type(k) ~= "string" or k:sub(1, 1) ~= "_" then given[k] = v end
  end
  local c = kwargs("UNet2DModel", given, CONFIG_SPEC)
  check_config(c)
  self.config = diffusers_config(c)
  self.center_input_sample = c.center_input_sample
  local boc, levels = c.block_out_channels, #c.block_out_channels
  local temb = c.time_embedding_dim or boc[1] * 4
  local common = { temb_channels = temb, resnet_eps = c.norm_eps, resnet_act_fn = c.act_fn,
                   resnet_groups = c.norm_num_groups, dropout = c.dropout }
  local function block_args(extra, head_dim)
    local t = {}
    for k, v in pairs(common) do t[k] = v end
    for k, v in pairs(extra) do t[k] = v end
    if head_dim then t.attention_head_dim = head_dim end
    return t
  end

  self.conv_in = nn.Conv2d(c.in_channels, boc[1], 3, { padding = 1 })
  self.time_proj = nn.Timesteps { num_channels = boc[1], flip_sin_to_cos = c.flip_sin_to_cos,
                                  downscale_freq_shift = c.freq_shift }
  self.time_embedding = nn.TimestepEmbedding { in_channels = boc[1], time_embed_dim = temb }
  self.down_blocks = ModuleList {}
  self.up_blocks = ModuleList {}        -- registered before mid_block, as diffusers does

  for i, name in ipairs(c.down_block_types) do
    local cls = block_class("down", DOWN, name)
    local out = boc[i]
    self.down_blocks:append(cls(block_args({
      in_channels = boc[math.max(i - 1, 1)], out_channels = out,
      num_layers = c.layers_per_block, add_downsample = i < levels,
      downsample_padding = c.downsample_padding,
    }, cls == AttnDownBlock2D and (c.attention_head_dim or out))))
  end

  if c.mid_block_type then
    self.mid_block = UNetMidBlock2D(block_args({
      in_channels = boc[levels], output_scale_factor = c.mid_block_scale_factor,
      attention_head_dim = c.attention_head_dim or boc[levels],
      attn_groups = c.attn_norm_num_groups or nn.None, add_attention = c.add_attention,
    }))
  end

  for i, name in ipairs(c.up_block_types) do
    local cls = block_class("up", UP, name)
    local out = boc[levels - i + 1]
    self.up_blocks:append(cls(block_args({
      in_channels = boc[math.max(levels - i, 1)], out_channels = out,
      prev_output_channel = boc[math.min(levels - i + 2, levels)],
      num_layers = c.layers_per_block + 1, add_upsample = i < levels,
    }, cls == AttnUpBlock2D and (c.attention_head_dim or out))))
  end

  self.conv_norm_out = nn.GroupNorm(c.norm_num_groups, boc[1], { eps = c.norm_eps })
  self.conv_act = nn.SiLU()                   -- diffusers: SiLU whatever act_fn says
  self.conv_out = nn.Conv2d(boc[1], c.out_channels, 3, { padding = 1 })
end

-- Checks x (N, in_channels, H, W) with H, W divisible by 2^(levels-1), and
-- broadcasts a rank-0 or one-element t to (N).
function UNet2DModel:_check_inputs(x, t)
  local cin, levels = self.conv_in.in_channels, #self.down_blocks
  local shape = x:shape()
  if #shape ~= 4 or shape[2] ~= cin then
    fail("UNet2DModel", string.format("x must be (N, %d, H, W), got (%s)", cin,
                                      table.concat(shape, ", ")))
  end
  local m = 1 << (levels - 1)
  if shape[3] % m ~= 0 or shape[4] % m ~= 0 then
    fail("UNet2DModel", string.format("H and W (%d, %d) must be multiples of %d for %d levels",
                                      shape[3], shape[4], m, levels))
  end
  local n = shape[1]
  if t:dim() == 0 then t = t:reshape { 1 } end
  if t:dim() ~= 1 or (t:size(0) ~= n and t:size(0) ~= 1) then
    fail("UNet2DModel", string.format("t must be (%d) or (1), got (%s)", n,
                                      table.concat(t:shape(), ", ")))
  end
  if t:size(0) ~= n then t = t:expand { n } end
  return x, t
end

-- x (N, in_channels, H, W) f32, t (N) integer timesteps -> (N, out_channels, H, W).
function UNet2DModel:forward(x, t)
  x, t = self:_check_inputs(x, t)
  if self.center_input_sample then x = x * 2 - 1 end
  local emb = self.time_embedding(self.time_proj(t))           -- (N, T)
  local h = self.conv_in(x)
  local skips = { h }
  for _, block in ipairs(self.down_blocks) do
    local s
    h, s = block(h, emb)
    table.move(s, 1, #s, #skips + 1, skips)
  end
  if self.mid_block then h = self.mid_block(h, emb) end
  for _, block in ipairs(self.up_blocks) do
    local k = #block.resnets
    h = block(h, table.move(skips, #skips - k + 1, #skips, 1, {}), emb)
    for _ = 1, k do skips[#skips] = nil end
  end
  return self.conv_out(self.conv_act(self.conv_norm_out(h)))
end

return nn
