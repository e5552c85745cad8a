-- Shared Lua (after now.lua and first_open.lua): create_record() writes the issued record of
-- ARGV[3] (JSON) at KEYS[1] with the request nonce ARGV[2], ARGV[4] unopened TTL ms, ARGV[5]
-- retention ms and, when ARGV[6] is "1", the first open applied at once. The caller has
-- checked that the key is free and the deadline not passed. Returns the stored JSON.
-- ARGV[3] is the gateway's record at time 0: `"ca":0,"ea":<TTL>` (serde writes them side by
-- side) and a final `}`. Without a first open the times are filled in as text, sparing a cjson
-- decode and encode per mint; a template in any other shape goes through cjson. (A match
-- cannot start inside a JSON string: there every `"` is escaped.)
local function create_record()
  local ttl = tonumber(ARGV[4])
  local retention = tonumber(ARGV[5])
  if ARGV[6] ~= '1' then
    local times = string.format('"ca":%d,"ea":%d', now, now + ttl)
    local v, found = string.gsub(ARGV[3], '"ca":0,"ea":%d+', times, 1)
    if found == 1 and string.sub(v, -1) == '}' then
      v = string.sub(v, 1, -2) .. ',"rq":' .. cjson.encode(ARGV[2]) .. '}'
      redis.call('SET', KEYS[1], v, 'PX', string.format('%d', ttl + retention))
      return v
    end
  end
  local r = cjson.decode(ARGV[3])
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
