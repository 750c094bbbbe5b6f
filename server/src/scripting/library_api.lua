-- The globals a library's body sees while it loads, as Redis 7.0 sets them up: only
-- `redis`, holding register_function, log, the log levels and the version. Any other name
-- is an error, and nothing can be changed. Run once per interpreter, after sandbox.lua,
-- with the sandbox's private table and register_function.
local hidden, register_function = ...
local real_of = hidden.real_of
local error, tostring, setmetatable, ipairs = error, tostring, setmetatable, ipairs

local function missing(_, k)
  error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
end
local function readonly()
  error('Attempt to modify a readonly table', 2)
end
local function protect(real)
  setmetatable(real, {__index = missing})
  local proxy = setmetatable({}, {__index = real, __newindex = readonly, __metatable = false})
  real_of[proxy] = real
  return proxy
end

local runtime = real_of[hidden.globals.redis]
local redis = {register_function = register_function, log = runtime.log}
for _, k in ipairs({'LOG_DEBUG', 'LOG_VERBOSE', 'LOG_NOTICE', 'LOG_WARNING', 'REDIS_VERSION',
                    'REDIS_VERSION_NUM'}) do
  redis[k] = runtime[k]
end
hidden.library_api = protect({redis = protect(redis)})
