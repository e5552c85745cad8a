-- KEYS[1] hash {o, i, v}; ARGV[1] order; ARGV[2] tiebreak; ARGV[3] value; ARGV[4] ttl ms.
-- Returns 1 if written.
local cur = redis.call('HMGET', KEYS[1], 'o', 'i')
if cur[1] then
  local o = tonumber(cur[1])
  local n = tonumber(ARGV[1])
  if o > n or (o == n and (cur[2] or '') >= ARGV[2]) then return 0 end
end
redis.call('HSET', KEYS[1], 'o', ARGV[1], 'i', ARGV[2], 'v', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
