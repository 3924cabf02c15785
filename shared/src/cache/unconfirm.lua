-- Marks the claim KEYS[1] unconfirmed if it is still ARGV[1]'s: a retry re-sends that call.
local cur = redis.call('GET', KEYS[1])
if not cur then return 0 end
local state, call, rest = string.match(cur, '^(%a+)|([^|]*)|(.*)$')
if call ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], 'unconfirmed|' .. call .. '|' .. rest, 'KEEPTTL')
return 1
