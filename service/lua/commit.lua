-- Commit a staged save, or refill a form read from MySQL: compare-and-set on the version,
-- so an older record (an aborted concurrent save, a late refill) never replaces a newer one.
-- KEYS[1] form hash, KEYS[2] idempotency key, KEYS[3] the shard's change index (sorted set)
-- ARGV[1] version, ARGV[2] updated_us, ARGV[3] status, ARGV[4] part count n,
-- ARGV[5] idempotency result ('' for none), ARGV[6] idempotency TTL (s), ARGV[7..6+n] parts
-- Returns {applied (0/1), version held before}.
local version = tonumber(ARGV[1])
local held = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
local applied = 0
if version > held then
  local n = tonumber(ARGV[4])
  local old_n = tonumber(redis.call('HGET', KEYS[1], 'n') or '0')
  redis.call('HSET', KEYS[1], 'v', ARGV[1], 't', ARGV[2], 's', ARGV[3], 'n', ARGV[4], 'c', ARGV[7])
  local reserved = tonumber(redis.call('HGET', KEYS[1], 'r') or '0')
  if reserved < version then
    redis.call('HSET', KEYS[1], 'r', ARGV[1])
  end
  for i = 1, n - 1 do
    redis.call('SET', KEYS[1] .. ':p' .. i, ARGV[7 + i])
  end
  for i = n, old_n - 1 do
    redis.call('DEL', KEYS[1] .. ':p' .. i)
  end
  -- Incremental reconciliation reads what changed since its last run from this index.
  redis.call('ZADD', KEYS[3], ARGV[2], KEYS[1])
  applied = 1
end
if ARGV[5] ~= '' then
  redis.call('SET', KEYS[2], ARGV[5], 'EX', tonumber(ARGV[6]))
end
return {applied, held}
