-- KEYS[1] due, KEYS[2] jobs, KEYS[3] dead, KEYS[4] marker (the jobs key when there is none);
-- ARGV[1] member, ARGV[2] "1" with a marker.
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
if ARGV[2] == '1' then redis.call('DEL', KEYS[4]) end
return 1
