-- Fold one chunk of rows into their buckets, all keys in one cluster slot. Two callers:
--  * a live message (ARGV[4] = ''): refused (-1) while the buckets are not restored (KEYS[1]
--    absent: Redis lost them and a restore from MySQL has to run first); skipped (0) when the
--    message was covered by a restore (KEYS[2] exists) or this chunk was folded before
--    (KEYS[3] exists, set here with its TTL); several aggregators may compete on one queue;
--  * a restore (ARGV[4] = its lock token): refused (-2) unless KEYS[4] still holds that token
--    (a restore that lost its lock must not write); the lock's TTL is renewed.
-- KEYS[1] restored marker, KEYS[2] message marker, KEYS[3] chunk marker, KEYS[4] restore lock,
-- KEYS[5..n+4] bucket sorted sets.
-- ARGV[1] marker TTL (s), ARGV[2] entries a read bucket keeps (its top), ARGV[3] n,
-- ARGV[4] restore token or '', ARGV[5] restore lock TTL (ms),
-- then per bucket: TTL (s, 0 for none), '1' if it counts reads;
-- then per row: minute, hour and batch bucket indexes (1..n), item, count.
-- Returns 1 when folded now.
local token = ARGV[4]
if token == '' then
  if redis.call('EXISTS', KEYS[1]) == 0 then
    return -1
  end
  if redis.call('EXISTS', KEYS[2]) == 1 then
    return 0
  end
  if not redis.call('SET', KEYS[3], '1', 'NX', 'EX', tonumber(ARGV[1])) then
    return 0
  end
else
  if redis.call('GET', KEYS[4]) ~= token then
    return -2
  end
  redis.call('PEXPIRE', KEYS[4], tonumber(ARGV[5]))
end
local keep = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local a = 6 + 2 * n
while a <= #ARGV do
  for j = 0, 2 do
    redis.call('ZINCRBY', KEYS[4 + tonumber(ARGV[a + j])], ARGV[a + 4], ARGV[a + 3])
  end
  a = a + 5
end
for i = 1, n do
  local key = KEYS[4 + i]
  local ttl = tonumber(ARGV[4 + 2 * i])
  if ttl > 0 then
    redis.call('EXPIRE', key, ttl)
  end
  if ARGV[5 + 2 * i] == '1' then
    redis.call('ZREMRANGEBYRANK', key, 0, -(keep + 1))
  end
end
return 1
