-- KEYS[1] index (sorted set, score = the member's expiry, Redis clock), KEYS[2] tombstone
-- (the index again when there is none); ARGV[1] member, ARGV[2] ttl ms, ARGV[3] "1" to check
-- the tombstone, ARGV[4] the time it must be before. Expired members are dropped. Returns 1
-- if added.
if ARGV[3] == '1' then
  local t = tonumber(redis.call('GET', KEYS[2]) or '')
  if t and t >= tonumber(ARGV[4]) then return 0 end
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
