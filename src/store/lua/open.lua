-- (after open_record.lua) KEYS[1] link key; ARGV[1] deadline; ARGV[2] request nonce; ARGV[3]
-- retention ms; ARGV[4] "1" for the confirming POST.
-- Returns {'ok', json} | {'confirm'} | {'used'} | {'expired'} | {'revoked'} | {'none'}.
local v = redis.call('GET', KEYS[1])
if not v then return {'none'} end
local r = cjson.decode(v)
if r.rq == ARGV[2] and (r.st == 'u' or r.st == 'o') then return {'ok', v} end
return open_record(v, r)
