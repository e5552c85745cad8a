-- KEYS[1]; ARGV[1] deadline; ARGV[2] value; ARGV[3] ttl ms. Returns the existing value, or nil
-- after writing.
local v = redis.call('GET', KEYS[1])
if v then return v end
if now > tonumber(ARGV[1]) then return redis.error_reply('FAGLATE deadline passed, nothing written') end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return false
