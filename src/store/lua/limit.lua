-- Shared Lua: hit(key, window) counts one hit in the fixed window counted at key (INCR, and
-- PEXPIRE window ms on the window's first hit). Returns the count (this hit included) and the
-- ms until the window resets.
local function hit(key, window)
  local n = redis.call('INCR', key)
  local ttl = redis.call('PTTL', key)
  if n == 1 or ttl < 0 then
    redis.call('PEXPIRE', key, window)
    ttl = window
  end
  return n, ttl
end
