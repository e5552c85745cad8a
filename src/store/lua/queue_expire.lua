-- Work queues. KEYS[1] due (sorted set, score = due ms, Redis clock), KEYS[2] jobs (hash
-- member -> envelope JSON {b body, c created, t tries, f failures, k lease token, r reason}),
-- KEYS[3] dead letters (sorted set, score = dead-lettered ms). All three share the hash tag
-- {q:<name>}, so every script runs on one slot in a cluster.
local function expire_all(ttl)
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', KEYS[2], ttl)
  if redis.call('EXISTS', KEYS[3]) == 1 then redis.call('PEXPIRE', KEYS[3], ttl) end
end
-- An envelope, or nil if it is unreadable (a poisoned entry must not stop the queue).
local function envelope(v)
  local ok, e = pcall(cjson.decode, v)
  if not ok or type(e) ~= 'table' then return nil end
  if type(e.b) ~= 'string' then return nil end
  e.c = tonumber(e.c) or 0
  e.t = tonumber(e.t) or 0
  e.f = tonumber(e.f) or 0
  if type(e.k) ~= 'string' then e.k = '' end
  if type(e.r) ~= 'string' then e.r = '' end
  return e
end
