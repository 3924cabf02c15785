-- Frees the claim KEYS[1] if it is still ARGV[1]'s, and drops the PENDING status KEYS[2] its
-- claim wrote, when given.
local cur = redis.call('GET', KEYS[1])
if not cur then return 0 end
local call = string.match(cur, '^%a+|([^|]*)|')
if call ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
if KEYS[2] then redis.call('DEL', KEYS[2]) end
return 1
