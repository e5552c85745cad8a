-- KEYS[1] link key; ARGV[1] result; ARGV[2] auth id; ARGV[3] verified-at ms. Keeps the key's
-- expiry. The later (verified-at, auth id) wins; the first verdict on an auth id stays.
-- Returns {'applied'|'same'|'stale', json} or nil when there is no link.
local v = redis.call('GET', KEYS[1])
if not v then return false end
local ttl = redis.call('PTTL', KEYS[1])
if ttl <= 0 then return false end
local r = cjson.decode(v)
local va = tonumber(ARGV[3])
if r.res then
  local cva = tonumber(r.va) or 0
  local caid = r.aid or ''
  if caid == ARGV[2] then return {'same', v} end
  if cva > va or (cva == va and caid > ARGV[2]) then return {'stale', v} end
end
r.res = ARGV[1]
r.aid = ARGV[2]
r.va = va
v = cjson.encode(r)
redis.call('SET', KEYS[1], v, 'PX', ttl)
return {'applied', v}
