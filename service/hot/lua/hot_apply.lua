-- Fold one chunk of a hot-item message into its buckets, at most once per chunk id.
-- KEYS[1] the chunk's "seen" marker, KEYS[2..n+1] bucket sorted sets (one cluster slot)
-- ARGV[1] marker TTL (s), ARGV[2] entries a read bucket keeps (its top), ARGV[3] n,
-- then per bucket: TTL (s, 0 for none), '1' if it counts reads;
-- then per row: minute, hour and batch bucket indexes (1..n), item, count.
-- Returns 1 when applied, 0 when this chunk was applied before.
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', tonumber(ARGV[1])) then
  return 0
end
local keep = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local a = 4 + 2 * n
while a <= #ARGV do
  for j = 0, 2 do
    redis.call('ZINCRBY', KEYS[1 + tonumber(ARGV[a + j])], ARGV[a + 4], ARGV[a + 3])
  end
  a = a + 5
end
for i = 1, n do
  local key = KEYS[1 + i]
  local ttl = tonumber(ARGV[2 + 2 * i])
  if ttl > 0 then
    redis.call('EXPIRE', key, ttl)
  end
  if ARGV[3 + 2 * i] == '1' then
    redis.call('ZREMRANGEBYRANK', key, 0, -(keep + 1))
  end
end
return 1
