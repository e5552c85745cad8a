-- KEYS[1] link key; ARGV[1] deadline; ARGV[2] owner ('' = any); ARGV[3] "1" = only an issued,
-- unexpired link; ARGV[4] retention ms. Returns 'revoked' | 'unchanged' | 'none'. A used or
-- expired link stays as it is (mirrors LinkRecord::revoke).
local v = redis.call('GET', KEYS[1])
if not v then return 'none' end
local r = cjson.decode(v)
if ARGV[2] ~= '' and r.u ~= ARGV[2] then return 'none' end
if r.st == 'r' or r.st == 'u' or now >= r.ea then return 'unchanged' end
if ARGV[3] == '1' and r.st ~= 'i' then return 'unchanged' end
if now > tonumber(ARGV[1]) then return redis.error_reply('FAGLATE deadline passed, nothing written') end
r.st = 'r'
redis.call('SET', KEYS[1], cjson.encode(r), 'PX', tonumber(ARGV[4]))
return 'revoked'
