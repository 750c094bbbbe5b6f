-- The environment a script sees, as Redis 7.0 sets it up: Redis's pcall and read-only
-- globals (the `redis` API itself is built in Rust: a function that raises an error must be
-- a C function, or a tail call to it would hide the script line the error reports). Run
-- once per interpreter with the private table the host uses (`hidden`).
local hidden = ...
local G = _G
local raw_next, raw_rawget, raw_setmetatable, raw_pcall = next, rawget, setmetatable, pcall
local error, type, tostring = error, type, tostring
local ipairs, getmetatable = ipairs, getmetatable

-- Functions Redis never loads, or removes from Lua's base library.
G.print, G.dofile, G.loadfile = nil, nil, nil
G.getfenv, G.setfenv, G.newproxy = nil, nil, nil

local redis = G.redis
local unwrap = hidden.unwrap
-- redis.call is a Rust function (run.rs: it reaches the run's host); pcall's version only catches it.
function redis.pcall(...)
  local ok, v = raw_pcall(redis.call, ...)
  if ok then return v end
  if type(v) == 'userdata' then v = unwrap(v) end
  return v
end
function redis.replicate_commands() return true end
function redis.breakpoint() return false end
function redis.debug() end

-- Redis 7.0's pcall returns the message of an error table, as older versions returned the
-- error string.
local function pcall_result(ok, ...)
  if ok then return ok, ... end
  local e = ...
  if type(e) == 'userdata' then e = hidden.unwrap(e) end
  if type(e) == 'table' then
    local m = e.err
    if type(m) == 'string' or type(m) == 'number' then return false, m end
  end
  return false, e
end
function G.pcall(...)
  return pcall_result(raw_pcall(...))
end

-- Read-only globals. Every table a script reaches from the globals is an empty proxy
-- whose reads fall through to the real table and whose writes fail with Redis's error;
-- the raw functions and next/pairs see through proxies.
local real_of = hidden.real_of
local function readonly_error()
  error('Attempt to modify a readonly table', 2)
end
local function protect(real)
  local proxy = {}
  real_of[proxy] = real
  raw_setmetatable(proxy, {__index = real, __newindex = readonly_error, __metatable = false})
  return proxy
end

local H = {}
for k, v in raw_next, G do H[k] = v end
for k in raw_next, H do G[k] = nil end
for _, name in ipairs({'string', 'table', 'math', 'coroutine', 'redis', 'cjson', 'bit',
                       'struct', 'cmsgpack'}) do
  if H[name] ~= nil then H[name] = protect(H[name]) end
end
getmetatable('').__index = H.string

function H.rawget(t, k)
  return raw_rawget(real_of[t] or t, k)
end
H.rawset = hidden.guarded_rawset
H.setmetatable = hidden.guarded_setmetatable
local function next_of(t, k)
  return raw_next(real_of[t] or t, k)
end
H.next = next_of
function H.pairs(t)
  return next_of, t, nil
end

real_of[G] = H
raw_setmetatable(H, {__index = function(_, k)
  error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
end})
hidden.globals_meta = {__index = H, __newindex = readonly_error, __metatable = false}
raw_setmetatable(G, hidden.globals_meta)
H._G = G
H.__redis__err__handler = hidden.handler
hidden.globals = H

-- Runners: the script under the error handler, so a failure carries its line.
local xpcall = xpcall
function hidden.run_eval(f, handler)
  return xpcall(f, handler)
end
function hidden.run_function(f, handler, keys, args)
  return xpcall(function() return f(keys, args) end, handler)
end
