-- KEYS[1] hash written by PUT_IF_LATER. Returns {now} or {now, value}.
local v = redis.call('HGET', KEYS[1], 'v')
if not v then return {tostring(now)} end
return {tostring(now), v}
