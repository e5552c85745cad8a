-- The create behind a rate limit, on one Redis (after now.lua, first_open.lua, limit.lua,
-- index.lua and create_record.lua).
-- KEYS[1] link key, KEYS[2] limit counter (the link key when there is no limit), KEYS[3] the
-- user's link index, KEYS[4] the user's live link (each the link key when there is none);
-- ARGV[1..6] as create.lua; ARGV[7] limit ('' = none); ARGV[8] window ms; ARGV[9] index ttl
-- ms ('' = none); ARGV[10] link id; ARGV[11] live link ttl ms ('' = none); ARGV[12] the link
-- key before the id (prefix .. 'link:{'); ARGV[13] retention ms; ARGV[14] user id.
-- With a live link, the link it replaces is revoked if it is the user's and still issued and
-- unexpired (as revoke.lua with only-unopened; its key is derived, so one Redis only).
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
  n, ttl = hit(KEYS[2], ARGV[8], nil)
  if n > tonumber(ARGV[7]) then return {'limited', '', n, ttl} end
end
if ARGV[9] ~= '' then index(KEYS[3], ARGV[10], ARGV[9]) end
local v = create_record()
if ARGV[11] ~= '' then
  local old = redis.call('GET', KEYS[4])
  redis.call('SET', KEYS[4], ARGV[10], 'PX', ARGV[11])
  if old and old ~= ARGV[10] then
    local k = ARGV[12] .. old .. '}'
    local pv = redis.call('GET', k)
    if pv then
      local p = cjson.decode(pv)
      if p.u == ARGV[14] and p.st == 'i' and now < tonumber(p.ea) then
        p.st = 'r'
        redis.call('SET', k, cjson.encode(p), 'PX', tonumber(ARGV[13]))
      end
    end
  end
end
return {'ok', v, n, ttl}
