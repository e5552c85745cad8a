-- The create behind a rate limit, on one Redis (after now.lua, first_open.lua, limit.lua,
-- index.lua and create.lua wrapped as the function create_link).
-- KEYS[1] link key, KEYS[2] limit counter (the link key when there is no limit), KEYS[3] the
-- user's link index (the link key when there is none); ARGV[1..6] as create.lua; ARGV[7]
-- limit ('' = none); ARGV[8] window ms; ARGV[9] index ttl ms ('' = none); ARGV[10] link id.
-- Returns {status, json, count, ms until reset}: status 'ok' (json = the stored record),
-- 'conflict' (the id exists) or 'limited' (nothing but the counter written); count and ms
-- are '0' without a limit. A re-send of the same request answers 'ok' without counting again.
local existing = redis.call('GET', KEYS[1])
if existing then
  if cjson.decode(existing).rq == ARGV[2] then return {'ok', existing, '0', '0'} end
  return {'conflict', '', '0', '0'}
end
if now > tonumber(ARGV[1]) then return redis.error_reply('FAGLATE deadline passed, nothing written') end
local n, ttl = 0, 0
if ARGV[7] ~= '' then
  n, ttl = hit(KEYS[2], tonumber(ARGV[8]))
  if n > tonumber(ARGV[7]) then return {'limited', '', tostring(n), tostring(ttl)} end
end
if ARGV[9] ~= '' then index(KEYS[3], ARGV[10], tonumber(ARGV[9])) end
local v = create_link()
if type(v) == 'table' then return v end
if not v then return {'conflict', '', tostring(n), tostring(ttl)} end
return {'ok', v, tostring(n), tostring(ttl)}
