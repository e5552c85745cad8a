-- The guard of a create in a Redis Cluster, run beside create.lua (after now.lua, limit.lua,
-- index.lua): the rate limit and the user's link index, which share the user's hash tag.
-- KEYS[1] limit counter (the index when there is no limit), KEYS[2] the user's link index
-- (the counter when there is none); ARGV[1] deadline; ARGV[2] limit ('' = none); ARGV[3]
-- window ms; ARGV[4] index ttl ms ('' = none); ARGV[5] link id.
-- Returns {status, count, ms until reset}: status 'ok' or 'limited' (nothing but the counter
-- written); count and ms are '0' without a limit.
if now > tonumber(ARGV[1]) then return redis.error_reply('FAGLATE deadline passed, nothing written') end
local n, ttl = 0, 0
if ARGV[2] ~= '' then
  n, ttl = hit(KEYS[1], tonumber(ARGV[3]))
  if n > tonumber(ARGV[2]) then return {'limited', tostring(n), tostring(ttl)} end
end
if ARGV[4] ~= '' then index(KEYS[2], ARGV[5], tonumber(ARGV[4])) end
return {'ok', tostring(n), tostring(ttl)}
