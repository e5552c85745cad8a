-- The open behind a rate limit, on one Redis (after now.lua, first_open.lua, limit.lua and
-- open_record.lua).
-- KEYS[1] link key, KEYS[2] limit counter; ARGV[1..4] as open.lua; ARGV[5] limit; ARGV[6]
-- window ms.
-- Returns {status, json, count, ms until reset}, the ms '0' unless limited (an open that goes
-- ahead reports no rate-limit fields): status as open.lua ('ok' with the record's json,
-- 'confirm', 'used', 'expired', 'revoked', 'none'; json '' but for 'ok') or 'limited'
-- (nothing but the counter written). A re-send of an open that took effect answers 'ok'
-- without counting again (count '0').
local v = redis.call('GET', KEYS[1])
local r = nil
if v then
  r = cjson.decode(v)
  if r.rq == ARGV[2] and (r.st == 'u' or r.st == 'o') then return {'ok', v, '0', '0'} end
end
if now > tonumber(ARGV[1]) then return redis.error_reply('FAGLATE deadline passed, nothing written') end
local n, ttl = hit(KEYS[2], ARGV[6], tonumber(ARGV[5]))
if n > tonumber(ARGV[5]) then return {'limited', '', n, ttl} end
if not v then return {'none', '', n, ttl} end
local res = open_record(v, r)
if res.err then return res end
return {res[1], res[2] or '', n, ttl}
