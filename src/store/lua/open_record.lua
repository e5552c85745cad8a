-- Shared Lua (after now.lua and first_open.lua): open_record(v, r) decides an open of the
-- stored record v (JSON), decoded as r, that is not a re-send of an open that took effect,
-- and applies a first open (ARGV[1] deadline, ARGV[2] request nonce, ARGV[3] retention ms,
-- ARGV[4] "1" for the confirming POST) at KEYS[1].
-- Returns {'ok', json} | {'confirm'} | {'used'} | {'expired'} | {'revoked'}.
local function open_record(v, r)
  if r.st == 'u' then return {'used'} end
  if r.st == 'r' then return {'revoked'} end
  if now >= r.ea then return {'expired'} end
  if r.cs and ARGV[4] ~= '1' then return {'confirm'} end
  if r.st == 'o' then return {'ok', v} end
  if now > tonumber(ARGV[1]) then return redis.error_reply('FAGLATE deadline passed, nothing written') end
  r.pea = r.ea
  r.rq = ARGV[2]
  local px = first_open(r, now, tonumber(ARGV[3]))
  v = cjson.encode(r)
  redis.call('SET', KEYS[1], v, 'PX', px)
  return {'ok', v}
end
