-- Shared Lua (after now.lua): index(key, member, ttl) adds member to the per-user index at key
-- (sorted set, score = the member's expiry, Redis clock) and sets the index's expiry to ttl ms
-- (the ARGV string). Expired members are dropped on about one add in 16: when member, a random
-- link id, ends in '0'. Readers take members by score from now on (erase_user.lua), so the
-- pruning only bounds the set's size (about 16 expired members), and most mints save the
-- command.
local function index(key, member, ttl)
  redis.call('ZADD', key, now + tonumber(ttl), member)
  if string.byte(member, -1) == 48 then redis.call('ZREMRANGEBYSCORE', key, '-inf', now) end
  redis.call('PEXPIRE', key, ttl)
end
