-- Moves every claim KEYS[i] to `accepted`, keeping its TTL, if it is still ARGV[i]'s call:
-- one script call for a whole batch of confirmed publishes. Returns how many moved.
local moved = 0
for i, key in ipairs(KEYS) do
  local cur = redis.call('GET', key)
  if cur then
    local call, rest = string.match(cur, '^%a+|([^|]*)|(.*)$')
    if call == ARGV[i] then
      redis.call('SET', key, 'accepted|' .. call .. '|' .. rest, 'KEEPTTL')
      moved = moved + 1
    end
  end
end
return moved
