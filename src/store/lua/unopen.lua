-- KEYS[1] link key; ARGV[1] request nonce; ARGV[2] retention ms. Undoes a first open whose
-- answer was lost (the FaceAuth URL never left the gateway): the link is issued again with
-- its old expiry, if that request opened it. Returns 1 if it did.
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local r = cjson.decode(v)
if r.rq ~= ARGV[1] or not r.pea or (r.st ~= 'u' and r.st ~= 'o') then return 0 end
r.st = 'i'
r.oa = nil
r.ea = r.pea
r.pea = nil
r.rq = nil
local px = r.ea - now + tonumber(ARGV[2])
if px < 1 then px = 1 end
redis.call('SET', KEYS[1], cjson.encode(r), 'PX', px)
return 1
