-- Claims KEYS[1]. After the ARGV[5] filter positions (ARGV[6..]) come optional parts, each
-- named by its first ARGV and with the next KEYS: `rate` (a rate key; interval in µs, burst)
-- spends one request of the key's allowance first and claims nothing when over it
-- ({4, retry_after_ms}): the rate limit and the claim in one round trip; `status` (a status
-- key; value, TTL in seconds) is the new call's PENDING status, written with the claim, so the
-- call reads PENDING from the moment its 202 can exist.
-- A free id is claimed and its positions set in the filter KEYS[2]; {1, verdict} says whether
-- the filter was complete and proved the id new (a bit was clear).
-- Runs after gcra.lua (one script: `gcra` is defined above).
local n = tonumber(ARGV[5])
local k, a = 3, 6 + n
if ARGV[a] == 'rate' then
  local wait = gcra(KEYS[k], tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), 1)
  if wait then return {4, tostring(wait)} end
  k, a = k + 1, a + 3
end
local function pending()
  if ARGV[a] == 'status' then
    redis.call('SET', KEYS[k], ARGV[a + 1], 'NX', 'EX', ARGV[a + 2])
  end
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local v = 'publishing|' .. ARGV[1] .. '|' .. ARGV[2] .. '|' .. now
local cur = redis.call('GET', KEYS[1])
if not cur then
  redis.call('SET', KEYS[1], v, 'EX', ARGV[3])
  pending()
  local clear = false
  for i = 6, 5 + n do
    if redis.call('SETBIT', KEYS[2], ARGV[i], 1) == 0 then clear = true end
  end
  if redis.call('GETBIT', KEYS[2], 0) == 0 then return {1, 'unknown'} end
  if clear then return {1, 'new'} end
  return {1, 'maybe'}
end
local state, at = string.match(cur, '^(%a+)|[^|]*|[^|]*|(%d+)$')
if state == 'unconfirmed' then
  return {3, cur}
end
if state == 'publishing' and at and tonumber(at) + tonumber(ARGV[4]) < now then
  redis.call('SET', KEYS[1], v, 'EX', ARGV[3])
  pending()
  return {2, cur}
end
return {0, cur}
