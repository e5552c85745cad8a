-- Shared Lua: hit(key, window, limit) counts one hit in the fixed window counted at key (INCR,
-- and PEXPIRE window ms on the window's first hit, in this same atomic script, so the counter
-- always has an expiry). window is the ARGV string (passed to Redis as is, no number
-- formatting). Returns the count (this hit included) and the ms until the window resets. With
-- a limit, the reset is read (PTTL) only for a hit over it and is 0 otherwise: callers that
-- report the reset only on a refusal save a command per hit. A counter found without an
-- expiry (written by something else) gets the window again when its reset is read.
-- Callers reply with the count and the reset as they are (Redis sends a Lua number as an integer
-- reply, the store reads either as text; the reset may be the window's ARGV string): a
-- tostring() per number would format it through printf's %.14g on every request.
local function hit(key, window, limit)
  local n = redis.call('INCR', key)
  if n == 1 then
    redis.call('PEXPIRE', key, window)
    return n, window
  end
  if limit and n <= limit then return n, 0 end
  local ttl = redis.call('PTTL', key)
  if ttl < 0 then
    redis.call('PEXPIRE', key, window)
    ttl = window
  end
  return n, ttl
end
