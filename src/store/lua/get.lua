-- KEYS[1] link key. Returns {now} or {now, json}.
local v = redis.call('GET', KEYS[1])
if not v then return {tostring(now)} end
return {tostring(now), v}
