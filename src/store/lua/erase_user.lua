-- KEYS[1] link-id set, KEYS[2] auth-id set, KEYS[3] idempotency-key set, KEYS[4] tombstone,
-- KEYS[5] erasure record, KEYS[6..] other keys of the user. ARGV[1] erasure id, ARGV[2] ttl ms,
-- ARGV[3] extra auth ids (JSON array), ARGV[4] key prefix (the idempotency set holds
-- unprefixed keys of this slot). Returns {'new'|'old', record JSON}.
local old = redis.call('GET', KEYS[5])
if old then return {'old', old} end
local links = redis.call('ZRANGEBYSCORE', KEYS[1], now, '+inf')
local auths = redis.call('ZRANGEBYSCORE', KEYS[2], now, '+inf')
local idem = redis.call('ZRANGEBYSCORE', KEYS[3], now, '+inf')
for _, k in ipairs(idem) do redis.call('DEL', ARGV[4] .. k) end
for i = 1, 3 do redis.call('DEL', KEYS[i]) end
for i = 6, #KEYS do redis.call('DEL', KEYS[i]) end
local function arr(t)
  if #t == 0 then return '[]' end
  return cjson.encode(t)
end
local seen, items = {}, {}
local function add(a)
  if type(a) == 'string' and a ~= '' and not seen[a] then
    seen[a] = true
    table.insert(items, {a = a, s = 'pending'})
  end
end
for _, a in ipairs(auths) do add(a) end
local ok, extra = pcall(cjson.decode, ARGV[3])
if ok and type(extra) == 'table' then
  for _, a in ipairs(extra) do add(a) end
end
local at = string.format('%d', now)
local rec = '{"id":' .. cjson.encode(ARGV[1]) .. ',"at":' .. at .. ',"st":"pending","links":'
  .. arr(links) .. ',"items":' .. arr(items) .. '}'
redis.call('SET', KEYS[4], at, 'PX', ARGV[2])
redis.call('SET', KEYS[5], rec, 'PX', ARGV[2])
return {'new', rec}
