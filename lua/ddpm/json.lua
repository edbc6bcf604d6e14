-- ddpm.json: encodes Lua values as JSON text, for metadata the compiled
-- program carries (the model config diffusers reads, image size, ...).
-- Tables with keys 1..n are arrays, other tables objects with sorted keys;
-- ddpm.nn.None (any table whose tostring is "None") is null; integers
-- print without a decimal point, other numbers with 17 significant digits.
local json = {}

local function encode_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    local named = { ['"'] = '\\"', ['\\'] = '\\\\', ['\n'] = '\\n', ['\t'] = '\\t', ['\r'] = '\\r' }
    return named[c] or string.format("\\u%04x", c:byte())
  end) .. '"'
end

local function is_array(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n == #t and (n > 0 or next(t) == nil)
end

function json.encode(v)
  local t = type(v)
  if v == nil then return "null" end
  if t == "boolean" then return tostring(v) end
  if t == "number" then
    if math.type(v) == "integer" then return tostring(v) end
    if v ~= v or v == math.huge or v == -math.huge then error("json: cannot encode " .. tostring(v)) end
    if v == math.floor(v) and math.abs(v) < 2^53 then return string.format("%.1f", v) end
    return string.format("%.17g", v)
  end
  if t == "string" then return encode_string(v) end
  if t ~= "table" then error("json: cannot encode a " .. t) end
  if tostring(v) == "None" then return "null" end
  local parts = {}
  if is_array(v) and #v > 0 then
    for i, x in ipairs(v) do parts[i] = json.encode(x) end
    return "[" .. table.concat(parts, ", ") .. "]"
  end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = tostring(k) end
  table.sort(keys)
  for i, k in ipairs(keys) do
    local x = v[k]
    if x == nil then x = v[tonumber(k)] end
    parts[i] = encode_string(k) .. ": " .. json.encode(x)
  end
  return "{" .. table.concat(parts, ", ") .. "}"
end

return json
