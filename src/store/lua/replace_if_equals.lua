-- KEYS[1]; ARGV[1] deadline; ARGV[2] expected value; ARGV[3] new value; ARGV[4] ttl ms.
-- Returns 1 if replaced.
if redis.call('GET', KEYS[1]) ~= ARGV[2] then return 0 end
if now > tonumber(ARGV[1]) then return redis.error_reply('FAGLATE deadline passed, nothing written') end
redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
return 1
