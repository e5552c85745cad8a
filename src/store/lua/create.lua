-- KEYS[1] link key; ARGV[1] deadline; ARGV[2] request nonce; ARGV[3] issued record JSON;
-- ARGV[4] unopened TTL ms; ARGV[5] retention ms; ARGV[6] "1" to apply the first open at once.
-- Returns the stored JSON, or nil if the key exists (the same JSON again for a re-send).
local existing = redis.call('GET', KEYS[1])
if existing then
  if cjson.decode(existing).rq == ARGV[2] then return existing end
  return false
end
if now > tonumber(ARGV[1]) then return redis.error_reply('FAGLATE deadline passed, nothing written') end
local r = cjson.decode(ARGV[3])
local ttl = tonumber(ARGV[4])
local retention = tonumber(ARGV[5])
r.ca = now
r.ea = now + ttl
r.rq = ARGV[2]
local px = ttl + retention
if ARGV[6] == '1' then
  r.pea = r.ea
  px = first_open(r, now, retention)
end
local v = cjson.encode(r)
redis.call('SET', KEYS[1], v, 'PX', px)
return v
