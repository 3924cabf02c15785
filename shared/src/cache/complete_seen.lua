-- Marks the filter KEYS[1] complete and frees the rebuild lock KEYS[2], if ARGV[1] holds it.
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('SETBIT', KEYS[1], 0, 1)
redis.call('DEL', KEYS[2])
return 1
