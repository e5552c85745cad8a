-- (after create_record.lua) KEYS[1] link key; ARGV[1] deadline; ARGV[2] request nonce;
-- ARGV[3] issued record JSON; ARGV[4] unopened TTL ms; ARGV[5] retention ms; ARGV[6] "1" to
-- apply the first open at once.
-- Returns the stored JSON, or nil if the key exists (the same JSON again for a re-send).
local existing = redis.call('GET', KEYS[1])
if existing then
  if cjson.decode(existing).rq == ARGV[2] then return existing end
  return false
end
if now > tonumber(ARGV[1]) then return redis.error_reply('FAGLATE deadline passed, nothing written') end
return create_record()
