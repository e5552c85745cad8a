-- ARGV[1] limit, ARGV[2] lease ms, ARGV[3] max failures, ARGV[4] queue ttl, ARGV[5] dead
-- ttl, ARGV[6] token prefix. Returns {now, n buried, per buried job: member, reason; then per
-- claimed job: member, body, token, tries, failures, created}.
local old = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now - tonumber(ARGV[5]), 'LIMIT', 0, 100)
for _, m in ipairs(old) do
  redis.call('ZREM', KEYS[3], m)
  redis.call('HDEL', KEYS[2], m)
end
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
local buried = {}
local jobs = {}
local lease = tonumber(ARGV[2])
for i, m in ipairs(due) do
  local v = redis.call('HGET', KEYS[2], m)
  local e = v and envelope(v)
  if not v then
    redis.call('ZREM', KEYS[1], m)
  elseif not e then
    redis.call('ZREM', KEYS[1], m)
    redis.call('ZADD', KEYS[3], now, m)
    redis.call('HSET', KEYS[2], m, cjson.encode({b = '', c = now, t = 0, f = 0, k = '', r = 'unreadable'}))
    table.insert(buried, m)
    table.insert(buried, 'unreadable')
  else
    if e.f >= tonumber(ARGV[3]) then
      e.k = ''
      if e.r == '' then e.r = 'lease_lost' end
      redis.call('ZREM', KEYS[1], m)
      redis.call('ZADD', KEYS[3], now, m)
      redis.call('HSET', KEYS[2], m, cjson.encode(e))
      table.insert(buried, m)
      table.insert(buried, e.r)
    else
      e.t = e.t + 1
      e.f = e.f + 1
      e.k = ARGV[6] .. ':' .. i
      redis.call('HSET', KEYS[2], m, cjson.encode(e))
      redis.call('ZADD', KEYS[1], now + lease, m)
      for _, x in ipairs({m, e.b, e.k, tostring(e.t), tostring(e.f), tostring(e.c)}) do
        table.insert(jobs, x)
      end
    end
  end
end
if #due > 0 then expire_all(ARGV[4]) end
local out = {tostring(now), tostring(#buried / 2)}
for _, m in ipairs(buried) do table.insert(out, m) end
for _, x in ipairs(jobs) do table.insert(out, x) end
return out
