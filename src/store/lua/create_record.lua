-- Shared Lua (after now.lua and first_open.lua): create_record() writes the issued record of
-- ARGV[3] (JSON) at KEYS[1] with the request nonce ARGV[2], ARGV[4] unopened TTL ms, ARGV[5]
-- retention ms and, when ARGV[6] is "1", the first open applied at once. The caller has
-- checked that the key is free and the deadline not passed. Returns the stored JSON.
local function create_record()
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
end
