-- Marks the claim KEYS[1] accepted if it is still ARGV[1]'s; when KEYS[2] (a status key) is
-- given, also writes the PENDING status ARGV[2] for ARGV[3] seconds unless a status exists.
if KEYS[2] then
  redis.call('SET', KEYS[2], ARGV[2], 'NX', 'EX', ARGV[3])
end
local cur = redis.call('GET', KEYS[1])
if not cur then return 0 end
local state, call, rest = string.match(cur, '^(%a+)|([^|]*)|(.*)$')
if call ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], 'accepted|' .. call .. '|' .. rest, 'KEEPTTL')
return 1
