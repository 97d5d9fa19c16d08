-- The top items of the union of some buckets: {item, count, item, count, ...}.
-- KEYS[1] a scratch key, KEYS[2..] the buckets (one cluster slot); ARGV[1] how many.
redis.call('ZUNIONSTORE', KEYS[1], #KEYS - 1, unpack(KEYS, 2))
local top = redis.call('ZREVRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1, 'WITHSCORES')
redis.call('DEL', KEYS[1])
return top
