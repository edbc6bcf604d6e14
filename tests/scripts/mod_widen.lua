-- A module required by err_in_module.lua (a fixture); widen() fails on
-- line 7. (Not a tail call: Lua drops the frame of a function that ends in
-- `return f(...)`, and the error would then name the caller's line.)
local ddpm = require "ddpm"
local M = {}
function M.widen(x)
  local y = x:matmul(ddpm.fill(1, { 4, 4 }))
  return y
end
return M
