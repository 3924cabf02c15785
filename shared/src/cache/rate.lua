-- GCRA: one script call decides and records, so every ingress replica shares one limit.
-- ARGV: interval in µs, burst, how many requests to spend at once (all or none).
-- Returns {1, 0} when allowed, {0, retry_after_ms} when not.
-- Runs after gcra.lua (one script: `gcra` is defined above).
local wait = gcra(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]))
if wait then return {0, wait} end
return {1, 0}
