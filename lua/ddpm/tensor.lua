-- ddpm.tensor: tensor values with operators, over the node ids of ddpm.core.
--
-- A tensor is a graph node: a dtype and a static shape. Methods read like
-- torch's: dims are 0-based and may be negative (-1 is the last). Numbers
-- mix with tensors (`x * 2`, `1 - a`) and take the tensor's dtype. Every
-- node records the model script's file:line; shape errors name it.
local core = require "ddpm.core"

local Tensor = {}
Tensor.__index = Tensor

local M = { Tensor = Tensor }

local function wrap(id)
  return setmetatable({ id = id }, Tensor)
end
M.wrap = wrap

function M.is_tensor(v)
  return getmetatable(v) == Tensor
end

function Tensor:shape()
  return core.shape(self.id)
end

function Tensor:dtype()
  return core.dtype(self.id)
end

function Tensor:dim()
  return #core.shape(self.id)
end

-- size(k): the length of dim k; size(): the whole shape.
function Tensor:size(k)
  local s = core.shape(self.id)
  if k == nil then return s end
  return s[self:_axis(k) + 1]
end

function Tensor:numel()
  local n = 1
  for _, d in ipairs(core.shape(self.id)) do n = n * d end
  return n
end

function Tensor:__tostring()
  return string.format("tensor %%%d %s (%s)", self.id, self:dtype(),
                       table.concat(self:shape(), ", "))
end

-- A 0-based dim, negative counted from the end, checked against the rank.
function Tensor:_axis(k, rank)
  rank = rank or self:dim()
  local a = k < 0 and k + rank or k
  if math.type(a) ~= "integer" or a < 0 or a >= rank then
    core.fail("tensor", string.format("dim %s is out of range for rank %d", tostring(k), rank))
  end
  return a
end

-- Numbers become rank-0 fills of `like`'s dtype; they broadcast anywhere.
local function lift(v, like)
  if M.is_tensor(v) then return v end
  if type(v) ~= "number" then
    core.fail("tensor", "expected a tensor or a number, got a " .. type(v))
  end
  return wrap(core.fill(v, {}, like:dtype()))
end

local function op(name, inputs, attrs)
  local ids = {}
  for i, t in ipairs(inputs) do ids[i] = t.id end
  return wrap(core.op(name, ids, attrs))
end
M.op = op

local function binary(name)
  return function(a, b)
    local like = M.is_tensor(a) and a or b
    return op(name, { lift(a, like), lift(b, like) })
  end
end

Tensor.__add = binary("add")
Tensor.__sub = binary("sub")
Tensor.__mul = binary("mul")
Tensor.__div = binary("div")
Tensor.__unm = function(a) return op("neg", { a }) end
Tensor.__pow = function(a, p)
  if p == 2 then return a * a end
  if p == 0.5 then return a:sqrt() end
  if p == -0.5 then return a:rsqrt() end
  core.fail("pow", "only the powers 2, 0.5 and -0.5 are supported, got " .. tostring(p))
end

M.maximum = binary("max")
M.minimum = binary("min")
M.lt = binary("lt")
M.le = binary("le")
M.eq = binary("eq")
function M.gt(a, b) return M.lt(b, a) end
function M.ge(a, b) return M.le(b, a) end

-- where(c, a, b): a where c is non-zero, else b.
function M.where(c, a, b)
  local like = M.is_tensor(a) and a or b
  return op("select", { c, lift(a, like), lift(b, like) })
end

for _, name in ipairs { "exp", "log", "sqrt", "rsqrt", "sin", "cos", "tanh", "sigmoid", "abs" } do
  Tensor[name] = function(x) return op(name, { x }) end
end

function Tensor:neg() return -self end
function Tensor:relu() return M.maximum(self, 0) end
function Tensor:cast(dtype)
  if dtype == self:dtype() then return self end
  return op("cast", { self }, { dtype = dtype })
end

-- The dims a reduction names, as a 0-based list; nil means all.
function Tensor:_axes(dims)
  local axes = {}
  if dims == nil then
    for i = 0, self:dim() - 1 do axes[#axes + 1] = i end
  elseif type(dims) == "number" then
    axes[1] = self:_axis(dims)
  else
    for i, d in ipairs(dims) do axes[i] = self:_axis(d) end
  end
  return axes
end

-- Drops the reduced (size-1) dims unless keepdim.
local function squeeze_reduced(r, axes, keepdim)
  if keepdim then return r end
  local drop, shape = {}, {}
  for _, a in ipairs(axes) do drop[a] = true end
  for i, d in ipairs(r:shape()) do
    if not drop[i - 1] then shape[#shape + 1] = d end
  end
  return r:reshape(shape)
end

local function reduction(name)
  return function(x, dims, keepdim)
    local axes = x:_axes(dims)
    return squeeze_reduced(op(name, { x }, { axes = axes }), axes, keepdim)
  end
end

Tensor.sum = reduction("reduce_sum")
Tensor.max = reduction("reduce_max")

function Tensor:mean(dims, keepdim)
  local axes, n, shape = self:_axes(dims), 1, self:shape()
  for _, a in ipairs(axes) do n = n * shape[a + 1] end
  return self:sum(axes, keepdim) * (1 / n)
end

-- Biased variance (torch's var(unbiased=False), what GroupNorm uses).
function Tensor:var(dims, keepdim)
  local axes = self:_axes(dims)
  local centred = self - self:mean(axes, true)
  return (centred * centred):mean(axes, keepdim)
end

-- reshape{...}: one entry may be -1, inferred from the element count.
function Tensor:reshape(shape)
  local known, hole = 1, nil
  local s = {}
  for i, d in ipairs(shape) do
    s[i] = d
    if d == -1 then hole = i else known = known * d end
  end
  if hole then
    if known == 0 or self:numel() % known ~= 0 then
      core.fail("reshape", string.format("cannot infer -1 in {%s} for %d elements",
                table.concat(shape, ", "), self:numel()))
    end
    s[hole] = self:numel() // known
  end
  return op("reshape", { self }, { shape = s })
end
Tensor.view = Tensor.reshape

function Tensor:permute(perm)
  local p = {}
  for i, d in ipairs(perm) do p[i] = self:_axis(d) end
  return op("permute", { self }, { perm = p })
end

function Tensor:transpose(a, b)
  local perm = {}
  for i = 0, self:dim() - 1 do perm[i + 1] = i end
  a, b = self:_axis(a), self:_axis(b)
  perm[a + 1], perm[b + 1] = b, a
  return self:permute(perm)
end

-- expand{...}: numpy broadcasting to the given shape (-1 keeps a dim).
function Tensor:expand(shape)
  local s, mine = {}, self:shape()
  for i, d in ipairs(shape) do
    s[i] = d == -1 and mine[i - (#shape - #mine)] or d
  end
  return op("broadcast", { self }, { shape = s })
end

-- slice(dim, start, stop, step): Python's x[start:stop:step] along dim.
function Tensor:slice(dim, start, stop, step)
  local shape = self:shape()
  local a = self:_axis(dim)
  local len = shape[a + 1]
  step = step or 1
  start = start or 0
  stop = stop or len
  if start < 0 then start = start + len end
  if stop < 0 then stop = stop + len end
  if stop > len then stop = len end
  local starts, steps, counts = {}, {}, {}
  for i, d in ipairs(shape) do starts[i], steps[i], counts[i] = 0, 1, d end
  starts[a + 1], steps[a + 1] = start, step
  counts[a + 1] = (stop - start + step - 1) // step
  return op("slice", { self }, { start = starts, step = steps, shape = counts })
end

-- chunk(n, dim): n equal pieces along dim, as torch.chunk when it divides.
function Tensor:chunk(n, dim)
  local a = self:_axis(dim)
  local len = self:shape()[a + 1]
  if len % n ~= 0 then
    core.fail("chunk", string.format("%d does not divide dim %d of length %d", n, a, len))
  end
  local parts, step = {}, len // n
  for i = 0, n - 1 do parts[i + 1] = self:slice(a, i * step, (i + 1) * step) end
  return table.unpack(parts)
end

function M.cat(list, dim)
  return op("concat", list, { axis = list[1]:_axis(dim or 0) })
end

-- pad{l, r, t, b, ...}: torch.nn.functional.pad order (last dim first).
function Tensor:pad(pads, value)
  local rank = self:dim()
  local lo, hi = {}, {}
  for i = 1, rank do lo[i], hi[i] = 0, 0 end
  for k = 1, #pads // 2 do
    lo[rank - k + 1], hi[rank - k + 1] = pads[2 * k - 1], pads[2 * k]
  end
  return op("pad", { self }, { lo = lo, hi = hi, value = value or 0 })
end

function Tensor:upsample_nearest(scale)
  return op("upsample2d", { self }, { scale = scale or 2 })
end

-- Autocast (torch.autocast's role): while M.autocast_dtype is "bf16" or
-- "f16", matmul and conv2d cast their operands to it, multiply with f32
-- accumulation, and hand back f32, so that everything else (GroupNorm
-- statistics, softmax, the loss, reductions) stays f32. Set it through
-- ddpm.autocast(dtype, fn).
M.autocast_dtype = nil

local function contract(name, a, b, attrs)
  local low = M.autocast_dtype
  if not low then return op(name, { a, b }, attrs) end
  return op(name, { a:cast(low), b:cast(low) }, attrs):cast("f32")
end

function Tensor:matmul(b)
  return contract("matmul", self, b)
end

-- conv2d(x, w, {stride=, padding=}): padding a number, {ph, pw} or
-- {top, bottom, left, right}; no bias (add it).
function M.conv2d(x, w, opts)
  opts = opts or {}
  local s = opts.stride or 1
  local p = opts.padding or 0
  if type(s) == "number" then s = { s, s } end
  if type(p) == "number" then p = { p, p, p, p }
  elseif #p == 2 then p = { p[1], p[1], p[2], p[2] } end
  return contract("conv2d", x, w, { stride = s, pad = p })
end

-- gather(table, idx): table[idx[i]] along the first dim of table.
function M.gather(tbl, idx)
  return op("gather", { tbl, idx })
end

return M
