-- ARGV[1] member, ARGV[2] token, ARGV[3] op (done|renew|retry|fail|bury), ARGV[4] delay ms,
-- ARGV[5] reason, ARGV[6] lease ms, ARGV[7] queue ttl, ARGV[8] max failures.
-- Returns 'ok' | 'buried' | 'lost'.
local m = ARGV[1]
local v = redis.call('HGET', KEYS[2], m)
if not v then return 'lost' end
local e = envelope(v)
if not e or e.k ~= ARGV[2] then return 'lost' end
local op = ARGV[3]
if op == 'done' then
  redis.call('HDEL', KEYS[2], m)
  redis.call('ZREM', KEYS[1], m)
  return 'ok'
end
if op == 'renew' then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[6]), m)
  expire_all(ARGV[7])
  return 'ok'
end
e.k = ''
local result = 'ok'
if op == 'retry' then e.f = 0 end
if op == 'fail' or op == 'bury' then e.r = ARGV[5] end
if op == 'bury' or (op == 'fail' and e.f >= tonumber(ARGV[8])) then
  redis.call('ZREM', KEYS[1], m)
  redis.call('ZADD', KEYS[3], now, m)
  result = 'buried'
else
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[4]), m)
end
redis.call('HSET', KEYS[2], m, cjson.encode(e))
expire_all(ARGV[7])
return result
