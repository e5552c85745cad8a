-- Shared Lua (after now.lua): past the deadline ARGV[1] (Redis time, ms), write nothing.
if now > tonumber(ARGV[1]) then return redis.error_reply('FAGLATE deadline passed, nothing written') end
