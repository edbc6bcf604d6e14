-- ddpm.functional: composite operations (torch.nn.functional's role).
--
-- Each composite is written in core ops, so autodiff, fusion and both code
-- generators see only the op table; fusion gets the speed back. The math
-- follows torch exactly (biased variance in GroupNorm, max-subtracted
-- softmax, the diffusers timestep embedding).
local tensor = require "ddpm.tensor"
local core = require "ddpm.core"

local F = {}

function F.silu(x)
  return x * x:sigmoid()
end

-- softmax over dim, stabilised by the maximum as torch does.
function F.softmax(x, dim)
  local e = (x - x:max(dim, true)):exp()
  return e / e:sum(dim, true)
end

-- log_softmax over dim: x - max - log(sum(exp(x - max))), as torch.
function F.log_softmax(x, dim)
  local shifted = x - x:max(dim, true)
  return shifted - shifted:exp():sum(dim, true):log()
end

-- cross_entropy(logits (N, K), labels (N) i32) -> () the mean over the batch
-- of -log softmax(logits)[label], as torch.nn.functional.cross_entropy; the
-- label's entry is picked by a one-hot mask (labels compared with 0..K-1).
function F.cross_entropy(logits, labels)
  local n, k = logits:size(0), logits:size(1)
  if labels:dim() ~= 1 or labels:size(0) ~= n then
    core.fail("cross_entropy", string.format("%d rows of logits, labels of shape %s",
              n, tostring(labels)))
  end
  local classes = {}
  for i = 1, k do classes[i] = i - 1 end
  local onehot = tensor.eq(labels:cast(logits:dtype()):reshape { n, 1 },
                           tensor.wrap(core.constant(classes, { 1, k }, logits:dtype())))
  return -(F.log_softmax(logits, 1) * onehot):sum() / n
end

-- linear(x, w, b): x (.., in), w (out, in), b (out) or nil -> (.., out).
function F.linear(x, w, b)
  local shape = x:shape()
  local cin, cout = w:size(1), w:size(0)
  if shape[#shape] ~= cin then
    core.fail("linear", string.format("input has %d features, weight (%d, %d) expects %d",
              shape[#shape], cout, cin, cin))
  end
  local y = x:reshape { -1, cin }:matmul(w:transpose(0, 1))
  shape[#shape] = cout
  y = y:reshape(shape)
  if b then y = y + b end
  return y
end

-- conv2d with an optional bias (O).
function F.conv2d(x, w, b, opts)
  local y = tensor.conv2d(x, w, opts)
  if b then y = y + b:reshape { 1, -1, 1, 1 } end
  return y
end

-- group_norm as torch.nn.GroupNorm: x (N, C, ..) in G groups of C/G channels,
-- normalised by the biased variance, then scaled by w (C) and shifted by b (C).
function F.group_norm(x, groups, w, b, eps)
  local shape = x:shape()
  local n, c = shape[1], shape[2]
  if c % groups ~= 0 then
    core.fail("group_norm", string.format("%d channels do not split into %d groups", c, groups))
  end
  -- (N, G, C/G, ...): only the channel dim splits, so kernels index the
  -- spatial dims directly.
  local split, axes = { n, groups, c // groups }, { 2 }
  for d = 3, #shape do
    split[#split + 1] = shape[d]
    axes[#axes + 1] = d
  end
  local g = x:reshape(split)
  local centred = g - g:mean(axes, true)
  local var = (centred * centred):mean(axes, true)
  local y = (centred * (var + eps):rsqrt()):reshape(shape)
  local affine = { 1, c }
  for _ = 3, #shape do affine[#affine + 1] = 1 end
  if w then y = y * w:reshape(affine) end
  if b then y = y + b:reshape(affine) end
  return y
end

-- Rounds a Lua number (float64) to float32, to compute a constant exactly as
-- torch does in float32.
local function f32(v)
  return (string.unpack("f", string.pack("f", v)))
end
F.f32 = f32

-- timestep_embedding(t, dim, opts): diffusers' get_timestep_embedding.
-- t (N) integer timesteps -> (N, dim). freq_i = exp(-ln(max_period) * i /
-- (half - freq_shift)) computed in float32 as torch does; [sin, cos] halves,
-- swapped when flip_sin_to_cos.
function F.timestep_embedding(t, dim, opts)
  opts = opts or {}
  local half = dim // 2
  local shift = opts.freq_shift or 1
  local max_period = opts.max_period or 10000
  local freqs = {}
  for i = 0, half - 1 do
    local exponent = f32(f32(-math.log(max_period)) * i)
    freqs[i + 1] = f32(math.exp(f32(exponent / (half - shift))))
  end
  local n = t:size(0)
  local arg = t:cast("f32"):reshape { n, 1 } * tensor.wrap(core.constant(freqs, { 1, half }, "f32"))
  if opts.scale and opts.scale ~= 1 then arg = arg * opts.scale end
  local sin, cos = arg:sin(), arg:cos()
  local emb = opts.flip_sin_to_cos and tensor.cat({ cos, sin }, 1) or tensor.cat({ sin, cos }, 1)
  if dim % 2 == 1 then emb = emb:pad { 0, 1 } end
  return emb
end

return F
