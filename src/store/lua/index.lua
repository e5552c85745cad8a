-- Shared Lua (after now.lua): index(key, member, ttl) adds member to the per-user index at key
-- (sorted set, score = the member's expiry, Redis clock), drops expired members and sets the
-- index's expiry to ttl ms (the ARGV string; mirrors index_add.lua without the tombstone
-- check).
local function index(key, member, ttl)
  redis.call('ZADD', key, now + tonumber(ttl), member)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  redis.call('PEXPIRE', key, ttl)
end
