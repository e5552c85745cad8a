-- ARGV[1] limit. Returns per job: member, dead-at ms, tries, reason.
local ms = redis.call('ZRANGE', KEYS[3], 0, tonumber(ARGV[1]) - 1, 'WITHSCORES')
local out = {}
for i = 1, #ms, 2 do
  local v = redis.call('HGET', KEYS[2], ms[i])
  local e = v and envelope(v)
  local t, r = '0', 'unreadable'
  if e then
    t = tostring(e.t)
    r = e.r
  end
  for _, x in ipairs({ms[i], ms[i + 1], t, r}) do table.insert(out, x) end
end
return out
