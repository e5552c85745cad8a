-- (after limit.lua) KEYS[1] counter; ARGV[1] deadline; ARGV[2] window ms. Returns {count, ms
-- until reset}.
local n, ttl = hit(KEYS[1], ARGV[2], nil)
return {n, tonumber(ttl)}
