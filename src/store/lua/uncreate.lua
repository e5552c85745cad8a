-- KEYS[1] link key; ARGV[1] request nonce. Undoes a create whose answer was lost: deletes the
-- record if that request wrote it. Returns 1 if it did.
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
if cjson.decode(v).rq ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
