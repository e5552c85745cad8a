-- KEYS[1] due, KEYS[2] jobs, KEYS[3] marker key (or the jobs key when there is none);
-- ARGV[1] member, ARGV[2] body, ARGV[3] "1" with a marker, ARGV[4] marker ttl, ARGV[5] queue
-- ttl. Returns 1 if added.
if ARGV[3] == '1' then
  if redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
  redis.call('SET', KEYS[3], '1', 'PX', ARGV[4])
end
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], cjson.encode({b = ARGV[2], c = now, t = 0, f = 0, k = '', r = ''}))
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
return 1
