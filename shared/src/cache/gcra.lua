-- GCRA, shared by the scripts that spend requests of a key's allowance: spends `n` requests
-- at once (all or none) and returns nil when allowed (and records it), else the
-- milliseconds to wait before they would be.
local function gcra(key, interval, burst, n)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local tolerance = interval * burst
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  local new_tat = tat + interval * n
  if new_tat - now > tolerance then
    return math.ceil((new_tat - tolerance - now) / 1000)
  end
  redis.call('SET', key, string.format('%d', new_tat), 'PX', math.ceil(tolerance / 1000) + 1000)
  return nil
end
