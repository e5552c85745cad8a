-- The guard of a create in a Redis Cluster, run beside create.lua (after now.lua, limit.lua,
-- index.lua): the rate limit, the user's link index and the user's live link, which share the
-- user's hash tag.
-- KEYS[1] limit counter, KEYS[2] the user's link index, KEYS[3] the user's live link (a
-- missing one is another of the three); ARGV[1] deadline; ARGV[2] limit ('' = none); ARGV[3]
-- window ms; ARGV[4] index ttl ms ('' = none); ARGV[5] link id; ARGV[6] live link ttl ms
-- ('' = none).
-- Returns {status, count, ms until reset, replaced live link id or ''}: status 'ok' or
-- 'limited' (nothing but the counter written); count and ms are '0' without a limit.
if now > tonumber(ARGV[1]) then return redis.error_reply('FAGLATE deadline passed, nothing written') end
local n, ttl = 0, 0
if ARGV[2] ~= '' then
  n, ttl = hit(KEYS[1], ARGV[3], nil)
  if n > tonumber(ARGV[2]) then return {'limited', n, ttl, ''} end
end
if ARGV[4] ~= '' then index(KEYS[2], ARGV[5], ARGV[4]) end
local old = ''
if ARGV[6] ~= '' then
  old = redis.call('GET', KEYS[3]) or ''
  redis.call('SET', KEYS[3], ARGV[5], 'PX', ARGV[6])
end
return {'ok', n, ttl, old}
