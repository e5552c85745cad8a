-- KEYS[1]; ARGV[1] deadline; ARGV[2] value; ARGV[3] ttl ms. Returns the replaced value or nil.
local old = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return old
