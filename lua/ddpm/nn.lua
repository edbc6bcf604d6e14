-- ddpm.nn: torch.nn-style modules whose parameters carry diffusers' names.
--
--   local nn = require "ddpm.nn"
--   local Block = nn.Module:extend("Block")
--   function Block:init(c)
--     self.norm = nn.GroupNorm(8, c)                  -- a child, named "norm"
--     self.conv = nn.Conv2d(c, c, 3, { padding = 1 })
--     self.gain = nn.Parameter({ c }, { init = "ones" })
--   end
--   function Block:forward(x)
--     return self.conv(nn.F.silu(self.norm(x))) * self.gain:reshape { 1, -1, 1, 1 }
--   end
--   local blocks = nn.ModuleList { Block(32), Block(32) }   -- children "0", "1"
--   local y = blocks[1](x)              -- Lua index 1 is torch's blocks[0]
--
-- Naming (how a parameter gets its graph name). Construction only records
-- what a module owns: assigning a module or an nn.Parameter spec to a field
-- registers it under that field name, in assignment order (parameters and
-- children in separate lists, as torch keeps them), and makes the module a
-- child of the one it was assigned to. Nothing is in the graph yet. The
-- first time any module of a tree is called (or asked for parameters()),
-- the tree's root names the whole tree at once: every parameter becomes a
-- graph param (ddpm.param) named by its torch attribute path, e.g.
-- `down_blocks.0.resnets.0.conv1.weight`, created in torch's
-- named_parameters() order (a module's own parameters, then each child's,
-- depth first). After that the fields hold tensors. A module or parameter
-- assigned to an already-named tree is named and created at once. So names
-- never need to be passed to constructors, the order of graph params is
-- torch's state_dict order, and a submodule can't be named twice: a module
-- belongs to one parent, and adopting an already-named root is an error.
-- root:name_parameters(prefix) names a tree explicitly, with an optional
-- prefix (e.g. "ema.") for a second copy of a model in one program.
--
-- Conventions. torch.nn modules take torch's positional arguments plus an
-- optional table of torch's keyword arguments: nn.Conv2d(3, 16, 3,
-- { stride = 2, padding = 1 }). diffusers modules take one table of
-- diffusers' keyword arguments with diffusers' defaults:
-- nn.ResnetBlock2D { in_channels = 32, out_channels = 64, temb_channels = 128 }.
-- Unknown keyword arguments are errors. `nn.None` stands for Python's None
-- where a table needs an explicit value (a key set to nil is simply absent).
--
-- Modes. Modules start in eval mode (training = false), unlike torch: the
-- "forward" entry is the inference graph. module:train() switches a tree to
-- training mode (Dropout then needs the random ops of the train step).
--
-- Initialisation is torch's default: Linear and Conv2d weight and bias
-- ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (kaiming_uniform(a = sqrt(5)) reduces
-- to that bound); GroupNorm weight ones, bias zeros.
--
-- Dimension legend: N batch, C channels, H, W height and width, L = H*W
-- tokens, T time-embedding features.
local core = require "ddpm.core"
local tensor = require "ddpm.tensor"
local F = require "ddpm.functional"

local nn = { F = F }

local function fail(what, msg)
  core.fail(what, msg)
end

-- nn.None (alias nn.null): Python's None where a table needs an explicit
-- value, e.g. attention_head_dim = nn.None, whose default is 8; a key set to
-- nil is just absent and takes the default. Configs hold it for JSON null.
nn.None = setmetatable({}, { __tostring = function() return "None" end,
                             __name = "nn.None" })
nn.null = nn.None

--- Keyword arguments ----------------------------------------------------

local REQUIRED, NONE = setmetatable({}, { __name = "required" }),
                       setmetatable({}, { __name = "None" })
nn.REQUIRED, nn.NONE = REQUIRED, NONE

-- kwargs(what, given, spec): given's keys checked against spec; spec maps
-- each allowed key to its default, REQUIRED, or NONE (None). An absent key
-- takes the default; nn.None given explicitly means None (nil in the result).
local function kwargs(what, given, spec)
  given = given or {}
  if type(given) ~= "table" then
    fail(what, "expected a table of keyword arguments, got a " .. type(given))
  end
  for k in pairs(given) do
    if spec[k] == nil then fail(what, "unknown argument '" .. tostring(k) .. "'") end
  end
  local out = {}
  for k, default in pairs(spec) do
    local v = given[k]
    if v == nil then
      if default == REQUIRED then fail(what, "argument '" .. k .. "' is required") end
      if default ~= NONE then v = default end
    elseif v == nn.null then
      if default == REQUIRED then fail(what, "argument '" .. k .. "' cannot be None") end
      v = nil
    end
    out[k] = v
  end
  return out
end
nn.kwargs = kwargs

--- Parameter specs --------------------------------------------------------

-- nn.Parameter(shape, {init = "uniform"|"normal"|"zeros"|"ones", a =, b =,
-- dtype = "f32", trainable = true}): what a graph param will be; a module
-- field holding one becomes that param's tensor when the tree is named.
local Parameter = { __name = "nn.Parameter" }
Parameter.__index = Parameter
nn.Parameter = setmetatable(Parameter, {
  __call = function(_, shape, opts)
    local o = kwargs("Parameter", opts, { init = "zeros", a = 0, b = 0, dtype = "f32",
                                          trainable = true })
    o.shape = shape
    return setmetatable(o, Parameter)
  end })

local function is_parameter(v)
  return getmetatable(v) == Parameter
end

-- U(-1/sqrt(fan_in), 1/sqrt(fan_in)): torch's default for Linear and Conv2d.
local function fan_in_uniform(shape, fan_in)
  local bound = 1 / math.sqrt(fan_in)
  return nn.Parameter(shape, { init = "uniform", a = -bound, b = bound })
end

--- Module -----------------------------------------------------------------

-- An instance's own fields: _members (registered modules and parameters by
-- key), _params and _children (their keys in registration order), _parent,
-- _key (its key in the parent), _path (the dotted prefix of its names, set
-- once the tree is named), training. Keys are field names, or 1, 2, ... in a
-- ModuleList, named "0", "1", ... as torch does.
local Module = { __name = "Module", _module_class = true }
nn.Module = Module

local function is_module(v)
  local mt = getmetatable(v)
  return type(v) == "table" and type(mt) == "table" and mt._module_class == true
end
nn.is_module = is_module

local function key_name(k)
  if math.type(k) == "integer" then return tostring(k - 1) end
  return k
end

local function remove_key(list, k)
  for i, v in ipairs(list) do
    if v == k then table.remove(list, i) return end
  end
end

local name_tree

-- The tensor standing for parameter spec p (named name): w, of p's shape.
local function fixed_weight(name, p, w)
  if not w then fail("use_weights", "no tensor '" .. name .. "' in the weights") end
  local shape = w:shape()
  local same = #shape == #p.shape
  for i = 1, #shape do same = same and shape[i] == p.shape[i] end
  if not same then
    fail("use_weights", string.format("'%s' is (%s) in the weights, the module's is (%s)", name,
         table.concat(shape, ", "), table.concat(p.shape, ", ")))
  end
  return w
end

-- Registers modules and parameter specs under their key; other values are
-- plain fields.
local function newindex(m, k, v)
  local members = rawget(m, "_members")
  local old = members[k]
  if not (is_module(v) or is_parameter(v)) then
    if old == nil then rawset(m, k, v) return end
    if v ~= nil then
      fail(tostring(m), "cannot replace registered member '" .. tostring(k) .. "' by a " .. type(v))
    end
    remove_key(rawget(m, is_module(old) and "_children" or "_params"), k)
    members[k] = nil
    return
  end
  if old ~= nil and is_module(old) ~= is_module(v) then
    fail(tostring(m), "member '" .. tostring(k) .. "' cannot change between module and parameter")
  end
  if is_module(v) then
    local why = rawget(v, "_parent") and "it is a child of " .. tostring(rawget(v, "_parent"))
                or rawget(v, "_path") and "it is the root of a named tree"
    if why then
      fail(tostring(m), "cannot adopt " .. tostring(v) .. " as '" .. tostring(key_name(k))
           .. "': " .. why)
    end
    if old ~= nil then rawset(old, "_parent", nil) end
    rawset(v, "_parent", m)
    rawset(v, "_key", k)
  end
  if old == nil then
    local list = rawget(m, is_module(v) and "_children" or "_params")
    list[#list + 1] = k
  end
  members[k] = v
  local path = rawget(m, "_path")
  if path then                      -- the tree is named: name the newcomer now
    if is_module(v) then name_tree(v, path .. key_name(k) .. ".") else name_tree(m, path) end
  end
end

-- Creates the graph params of m's tree that are still specs, with names
-- prefix .. dotted path, parameters before children, in registration order.
-- With `weights` (a table of tensors by name, e.g. ddpm.load's), every
-- parameter becomes weights[its name] instead of a graph param.
function name_tree(m, prefix, weights)
  rawset(m, "_path", prefix)
  local members = rawget(m, "_members")
  for _, k in ipairs(rawget(m, "_params")) do
    local p, name = members[k], prefix .. key_name(k)
    if is_parameter(p) and weights then
      members[k] = fixed_weight(name, p, weights[name])
    elseif is_parameter(p) then
      members[k] = tensor.wrap(core.param(name, p.shape, p.dtype, p.init,
                                          p.a, p.b, p.trainable))
    end
  end
  for _, k in ipairs(rawget(m, "_children")) do
    name_tree(members[k], prefix .. key_name(k) .. ".", weights)
  end
end

local function root_of(m)
  while rawget(m, "_parent") do m = rawget(m, "_parent") end
  return m
end

local function ensure_named(m)
  if not rawget(m, "_path") then name_tree(root_of(m), "") end
end

-- Class machinery: a class is the metatable of its instances; calling the
-- class constructs (init), calling an instance runs forward.
local function construct(cls, ...)
  local m = setmetatable({ _members = {}, _params = {}, _children = {}, training = false }, cls)
  m:init(...)
  return m
end

local function call_instance(m, ...)
  ensure_named(m)
  return m:forward(...)
end

local function instance_tostring(m)
  local path = rawget(m, "_path")
  local cls = getmetatable(m).__name
  if path and path ~= "" then return cls .. " '" .. path:sub(1, -2) .. "'" end
  local parent, key = rawget(m, "_parent"), rawget(m, "_key")
  if parent then return cls .. " '" .. tostring(key_name(key)) .. "'" end
  return cls
end

-- Module:extend(name): a subclass; define init(self, ...) and forward(self, ...).
function Module:extend(name)
  local cls = { __name = name, super = self, __call = call_instance,
                __newindex = newindex, __tostring = instance_tostring,
                __len = rawget(self, "__len") }
  cls.__index = function(m, k)
    local v = rawget(m, "_members")[k]
    if v ~= nil then return v end
    return cls[k]
  end
  return setmetatable(cls, { __index = self, __call = construct })
end

function Module:init() end

function Module:forward()
  fail(tostring(self), "has no forward")
end

-- Names the tree rooted at m (an unnamed root) now.
local function name_root(m, prefix, weights)
  if rawget(m, "_parent") then
    fail(tostring(m), "only a root module names its tree")
  end
  if rawget(m, "_path") then fail(tostring(m), "is already named") end
  name_tree(m, prefix, weights)
  return m
end

-- name_parameters(prefix): names the tree rooted here now (see the header);
-- prefix defaults to "".
function Module:name_parameters(prefix)
  return name_root(self, prefix or "")
end

-- use_weights(weights): names the tree rooted here, as name_parameters,
-- but with fixed tensors instead of graph params: each parameter becomes
-- weights[its torch name] (e.g. ddpm.load's constants), which must have
-- the parameter's shape. The module then computes with those weights;
-- nothing of it is trained or checkpointed.
function Module:use_weights(weights)
  return name_root(self, "", weights)
end

-- parameters(): {name =, tensor =, shape =} for each parameter of this
-- subtree in torch's named_parameters() order. name is the graph name (the
-- full path from the root, which is torch's name when called on the root).
-- Names the tree first if needed.
function Module:parameters()
  ensure_named(self)
  local out = {}
  local function walk(m)
    local members = rawget(m, "_members")
    for _, k in ipairs(rawget(m, "_params")) do
      local t = members[k]
      out[#out + 1] = { name = rawget(m, "_path") .. key_name(k), tensor = t, shape = t:shape() }
    end
    for _, k in ipairs(rawget(m, "_children")) do walk(members[k]) end
  end
  walk(self)
  return out
end

-- num_parameters(): the element count of this subtree's trainable params.
function Module:num_parameters()
  local n = 0
  for _, p in ipairs(self:parameters()) do n = n + p.tensor:numel() end
  return n
end

-- children(): {key, module} pairs in registration order.
function Module:children()
  local out, members = {}, rawget(self, "_members")
  for _, k in ipairs(rawget(self, "_children")) do out[#out + 1] = { key_name(k), members[k] } end
  return out
end

-- train(on): sets training mode (default true) on the whole subtree;
-- eval() is train(false).
function Module:train(on)
  if on == nil then on = true end
  rawset(self, "training", on)
  for _, c in ipairs(self:children()) do c[2]:train(on) end
  return self
end

function Module:eval()
  return self:train(false)
end

--- Containers -------------------------------------------------------------

-- ModuleList{m1, m2, ...}: children named "0", "1", ...; list[1] is torch's
-- list[0]; # and ipairs work.
local ModuleList = Module:extend("ModuleList")
ModuleList.__len = function(m) return #rawget(m, "_children") end
nn.ModuleList = ModuleList

function ModuleList:init(list)
  for i, m in ipairs(list or {}) do self[i] = m end
end

function ModuleList:append(m)
  self[#self + 1] = m
  return self
end

function ModuleList:forward()
  fail(tostring(self), "a ModuleList is not callable; call its members")
end

--- Layers (torch.nn) ----------------------------------------------------

local function pair(v)
  if type(v) == "number" then return { v, v } end
  return v
end

-- Linear(in_features, out_features, {bias = true}): y = x W^T + b over the
-- last dim; weight (out, in), bias (out).
local Linear = Module:extend("Linear")
nn.Linear = Linear

function Linear:init(cin, cout, opts)
  local o = kwargs("Linear", opts, { bias = true })
  self.in_features, self.out_features = cin, cout
  self.weight = fan_in_uniform({ cout, cin }, cin)
  if o.bias then self.bias = fan_in_uniform({ cout }, cin) end
end

function Linear:forward(x)
  return F.linear(x, self.weight, self.bias)
end

-- Conv2d(in, out, kernel_size, {stride = 1, padding = 0, bias = true}):
-- kernel_size and stride a number or {h, w}; padding a number, {ph, pw} or
-- {top, bottom, left, right}. weight (out, in, kh, kw), bias (out).
local Conv2d = Module:extend("Conv2d")
nn.Conv2d = Conv2d

function Conv2d:init(cin, cout, k, opts)
  local o = kwargs("Conv2d", opts, { stride = 1, padding = 0, bias = true })
  k = pair(k)
  self.in_channels, self.out_channels, self.kernel_size = cin, cout, k
  self.stride, self.padding = o.stride, o.padding
  local fan_in = cin * k[1] * k[2]
  self.weight = fan_in_uniform({ cout, cin, k[1], k[2] }, fan_in)
  if o.bias then self.bias = fan_in_uniform({ cout }, fan_in) end
end

function Conv2d:forward(x)
  return F.conv2d(x, self.weight, self.bias, { stride = self.stride, padding = self.padding })
end

-- GroupNorm(num_groups, num_channels, {eps = 1e-5, affine = true}).
local GroupNorm = Module:extend("GroupNorm")
nn.GroupNorm = GroupNorm

function GroupNorm:init(groups, channels, opts)
  local o = kwargs("GroupNorm", opts, { eps = 1e-5, affine = true })
  if channels % groups ~= 0 then
    fail("GroupNorm", string.format("%d channels do not split into %d groups", channels, groups))
  end
  self.num_groups, self.num_channels, self.eps = groups, channels, o.eps
  if o.affine then
    self.weight = nn.Parameter({ channels }, { init = "ones" })
    self.bias = nn.Parameter({ channels }, { init = "zeros" })
  end
end

function GroupNorm:forward(x)
  return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)
end

local SiLU = Module:extend("SiLU")
nn.SiLU = SiLU
function SiLU:forward(x) return F.silu(x) end

-- Random draws while building a training graph: nn.with_random(key, fn)
-- runs fn with key = { seed =, step =, shard = } (i32 scalar tensors; shard
-- may be nil, see ddpm.rand) as the key of every random draw a module makes
-- (Dropout). Each Dropout gets its own Philox stream when constructed, so
-- masks differ between modules and steps.
local random_key
local next_stream = 16                       -- diffusion.DROPOUT_STREAM_BASE

function nn.with_random(key, fn)
  local saved = random_key
  random_key = key
  local ok, result = pcall(fn)
  random_key = saved
  if not ok then error(result, 0) end
  return result
end

-- Dropout(p): identity in eval mode; in training mode zeroes each element
-- with probability p (u <= p for u uniform in (0, 1]) and scales the rest
-- by 1/(1-p), as torch.nn.Dropout.
local Dropout = Module:extend("Dropout")
nn.Dropout = Dropout

function Dropout:init(p)
  self.p = p or 0.5
  self.stream = next_stream
  next_stream = next_stream + 1
end

function Dropout:forward(x)
  if not self.training or self.p == 0 then return x end
  if not random_key then
    fail("dropout", "training-mode dropout must be built inside nn.with_random(seed, step, fn)")
  end
  local k = random_key
  local u = require("ddpm").rand(x:shape(), k.seed, k.step, self.stream, k.shard)
  local keep = tensor.lt(tensor.wrap(core.fill(self.p, {}, "f32")), u)
  return x * keep:cast(x:dtype()) * (1 / (1 - self.p))
end

-- get_activation(name): diffusers' activation names; silu (= swish) only.
function nn.get_activation(name)
  if name == "silu" or name == "swish" then return SiLU() end
  fail("activation", "act_fn '" .. tostring(name) .. "' is not supported (silu, swish)")
end

--- diffusers building blocks ---------------------------------------------

-- Upsample2D{channels, out_channels = channels}: nearest x2, then a 3x3
-- conv (pad 1) named `conv` (diffusers' use_conv = True).
local Upsample2D = Module:extend("Upsample2D")
nn.Upsample2D = Upsample2D

function Upsample2D:init(args)
  local a = kwargs("Upsample2D", args, { channels = REQUIRED, out_channels = NONE })
  self.conv = Conv2d(a.channels, a.out_channels or a.channels, 3, { padding = 1 })
end

function Upsample2D:forward(x)
  return self.conv(x:upsample_nearest(2))
end

-- Downsample2D{channels, out_channels = channels, padding = 1}: a 3x3
-- stride-2 conv named `conv`. padding = 0 is DDPM's: zero-pad right and
-- bottom by one, then no padding (here one asymmetric conv padding);
-- padding = p > 0 pads p on every side.
local Downsample2D = Module:extend("Downsample2D")
nn.Downsample2D = Downsample2D

function Downsample2D:init(args)
  local a = kwargs("Downsample2D", args, { channels = REQUIRED, out_channels = NONE, padding = 1 })
  local pad = a.padding
  if pad == 0 then pad = { 0, 1, 0, 1 } end       -- top, bottom, left, right
  self.conv = Conv2d(a.channels, a.out_channels or a.channels, 3, { stride = 2, padding = pad })
end

function Downsample2D:forward(x)
  return self.conv(x)
end

-- Attention{channels, attention_head_dim = nil, norm_num_groups = 32,
-- eps = 1e-5, rescale_output_factor = 1}: diffusers' deprecated attention
-- block over (N, C, H, W). heads = C // attention_head_dim, d =
-- attention_head_dim (one head of d = C when nil). Tokens are the H*W
-- pixels (token h*W + w); head j reads channels [j*d, (j+1)*d) of q, k, v.
--   y = GN(x); q, k, v = to_q(y), to_k(y), to_v(y)
--   o = to_out.0(concat_j softmax(q_j k_j^T / sqrt(d)) v_j)
--   out = (o + x) / rescale_output_factor
-- to_out.1 is torch's Dropout(0), kept so the names match.
local Attention = Module:extend("Attention")
nn.Attention = Attention

function Attention:init(args)
  local a = kwargs("Attention", args, { channels = REQUIRED, attention_head_dim = NONE,
                                        norm_num_groups = 32, eps = 1e-5,
                                        rescale_output_factor = 1 })
  local c = a.channels
  local d = a.attention_head_dim or c
  local heads = c // d
  if heads < 1 then
    fail("Attention", string.format("attention_head_dim %d exceeds the %d channels", d, c))
  end
  local inner = heads * d
  self.heads, self.head_dim, self.rescale_output_factor = heads, d, a.rescale_output_factor
  self.group_norm = GroupNorm(a.norm_num_groups, c, { eps = a.eps })
  self.to_q = Linear(c, inner)
  self.to_k = Linear(c, inner)
  self.to_v = Linear(c, inner)
  self.to_out = ModuleList { Linear(inner, c), Dropout(0) }
end

function Attention:forward(x)
  local n, c, h, w = table.unpack(x:shape())
  local l, heads, d = h * w, self.heads, self.head_dim
  local y = self.group_norm(x):reshape { n, c, l }:transpose(1, 2)     -- (N, L, C)
  local function split(t)                                              -- (N, heads, L, d)
    return t:reshape { n, l, heads, d }:permute { 0, 2, 1, 3 }
  end
  local q, k, v = split(self.to_q(y)), split(self.to_k(y)), split(self.to_v(y))
  local scores = q:matmul(k:transpose(2, 3)) * (1 / math.sqrt(d))       -- (N, heads, L, L)
  local o = F.softmax(scores, -1):matmul(v)                            -- (N, heads, L, d)
  o = o:permute { 0, 2, 1, 3 }:reshape { n, l, heads * d }
  o = self.to_out[1](o):transpose(1, 2):reshape { n, c, h, w }
  o = o + x
  if self.rescale_output_factor ~= 1 then o = o / self.rescale_output_factor end
  return o
end

-- ResnetBlock2D{in_channels, out_channels = in_channels, temb_channels =
-- 512, groups = 32, groups_out = groups, eps = 1e-6, dropout = 0,
-- non_linearity = "swish", output_scale_factor = 1}: diffusers' default
-- (pre-norm, time_embedding_norm "default") block.
--   h = conv1(act(norm1(x))) + time_emb_proj(act(temb))[:, :, None, None]
--   h = conv2(dropout(act(norm2(h))))
--   out = (conv_shortcut(x) or x + h) / output_scale_factor
-- conv_shortcut (1x1) exists iff in_channels ~= out_channels.
local ResnetBlock2D = Module:extend("ResnetBlock2D")
nn.ResnetBlock2D = ResnetBlock2D

function ResnetBlock2D:init(args)
  local a = kwargs("ResnetBlock2D", args, {
    in_channels = REQUIRED, out_channels = NONE, temb_channels = 512, groups = 32,
    groups_out = NONE, eps = 1e-6, dropout = 0, non_linearity = "swish",
    output_scale_factor = 1 })
  local cin = a.in_channels
  local cout = a.out_channels or cin
  self.output_scale_factor = a.output_scale_factor
  self.norm1 = GroupNorm(a.groups, cin, { eps = a.eps })
  self.conv1 = Conv2d(cin, cout, 3, { padding = 1 })
  if a.temb_channels then self.time_emb_proj = Linear(a.temb_channels, cout) end
  self.norm2 = GroupNorm(a.groups_out or a.groups, cout, { eps = a.eps })
  self.dropout = Dropout(a.dropout)
  self.conv2 = Conv2d(cout, cout, 3, { padding = 1 })
  self.nonlinearity = nn.get_activation(a.non_linearity)
  if cin ~= cout then self.conv_shortcut = Conv2d(cin, cout, 1) end
end

-- x (N, Cin, H, W), temb (N, T) -> (N, Cout, H, W)
function ResnetBlock2D:forward(x, temb)
  local act = self.nonlinearity
  local h = self.conv1(act(self.norm1(x)))
  if self.time_emb_proj and temb then
    h = h + self.time_emb_proj(act(temb)):reshape { temb:size(0), -1, 1, 1 }
  end
  h = self.conv2(self.dropout(act(self.norm2(h))))
  local s = self.conv_shortcut and self.conv_shortcut(x) or x
  local out = s + h
  if self.output_scale_factor ~= 1 then out = out / self.output_scale_factor end
  return out
end

-- Timesteps{num_channels, flip_sin_to_cos, downscale_freq_shift, scale = 1}:
-- the sinusoidal projection of integer timesteps t (N) -> (N, num_channels);
-- no parameters. See F.timestep_embedding.
local Timesteps = Module:extend("Timesteps")
nn.Timesteps = Timesteps

function Timesteps:init(args)
  local a = kwargs("Timesteps", args, { num_channels = REQUIRED, flip_sin_to_cos = REQUIRED,
                                        downscale_freq_shift = REQUIRED, scale = 1 })
  self.num_channels, self.flip_sin_to_cos = a.num_channels, a.flip_sin_to_cos
  self.downscale_freq_shift, self.scale = a.downscale_freq_shift, a.scale
end

function Timesteps:forward(t)
  return F.timestep_embedding(t, self.num_channels, {
    flip_sin_to_cos = self.flip_sin_to_cos, freq_shift = self.downscale_freq_shift,
    scale = self.scale })
end

-- TimestepEmbedding{in_channels, time_embed_dim, act_fn = "silu"}:
-- linear_2(act(linear_1(e))), (N, in) -> (N, time_embed_dim).
local TimestepEmbedding = Module:extend("TimestepEmbedding")
nn.TimestepEmbedding = TimestepEmbedding

function TimestepEmbedding:init(args)
  local a = kwargs("TimestepEmbedding", args, { in_channels = REQUIRED,
                                                time_embed_dim = REQUIRED, act_fn = "silu" })
  self.linear_1 = Linear(a.in_channels, a.time_embed_dim)
  self.act = nn.get_activation(a.act_fn)
  self.linear_2 = Linear(a.time_embed_dim, a.time_embed_dim)
end

function TimestepEmbedding:forward(e)
  return self.linear_2(self.act(self.linear_1(e)))
end

-- The U-Net blocks and UNet2DModel (lua/ddpm/unet.lua) add themselves to nn.
package.loaded["ddpm.nn"] = nn
require "ddpm.unet"

return nn
