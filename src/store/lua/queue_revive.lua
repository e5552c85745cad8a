-- ARGV[1] member, ARGV[2] queue ttl. Returns 1 if the job was dead-lettered and is due again.
if not redis.call('ZSCORE', KEYS[3], ARGV[1]) then return 0 end
redis.call('ZREM', KEYS[3], ARGV[1])
local v = redis.call('HGET', KEYS[2], ARGV[1])
local e = v and envelope(v)
if not e then return 0 end
e.f = 0
e.k = ''
e.r = ''
e.c = now
redis.call('HSET', KEYS[2], ARGV[1], cjson.encode(e))
redis.call('ZADD', KEYS[1], now, ARGV[1])
expire_all(ARGV[2])
return 1
