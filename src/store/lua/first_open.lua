-- Shared Lua: the first open of record r at now (mirrors LinkRecord::apply_open for an
-- issued record); sets px to the new key expiry.
local function first_open(r, now, retention)
  r.oa = now
  if r.k == 'c' or r.k == 'count' then
    r.st = 'u'
    return retention
  end
  r.st = 'o'
  r.ea = now + r.w
  return r.w + retention
end
