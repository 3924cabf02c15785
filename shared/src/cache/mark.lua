-- Moves the claim KEYS[1] to the state ARGV[2] (`accepted` or `unconfirmed`), keeping its TTL,
-- if it is still ARGV[1]'s; when KEYS[2] (a status key) is given, also writes the PENDING
-- status ARGV[3] for ARGV[4] seconds unless a status exists.
if KEYS[2] then
  redis.call('SET', KEYS[2], ARGV[3], 'NX', 'EX', ARGV[4])
end
local cur = redis.call('GET', KEYS[1])
if not cur then return 0 end
local state, call, rest = string.match(cur, '^(%a+)|([^|]*)|(.*)$')
if call ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2] .. '|' .. call .. '|' .. rest, 'KEEPTTL')
return 1
