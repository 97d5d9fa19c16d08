-- Commit a staged save, or fill forms read from MySQL: compare-and-set on the version, so an
-- older record (an aborted concurrent save, a late refill) never replaces a newer one.
-- A save commits one form; warm-up and repairs send many forms of one shard (one slot).
-- KEYS[1] idempotency key, KEYS[2] the shard's change index (sorted set),
-- KEYS[3..] the form hashes, one per record
-- ARGV[1] idempotency result ('' for none), ARGV[2] idempotency TTL (s), then per record:
-- version, updated_us, status, part count n, parts 1..n
-- Returns {records applied, version the first form held before}.
-- Versions from 2^53 on are refused (Lua doubles lose the +1); a held one is corrupt and
-- replaced.
local limit = 9007199254740992
local applied = 0
local first_held = nil
local a = 3
for k = 3, #KEYS do
  local key = KEYS[k]
  local version = tonumber(ARGV[a]) or 0
  local n = tonumber(ARGV[a + 3])
  local held = tonumber(redis.call('HGET', key, 'v') or '0') or 0
  first_held = first_held or held
  if held >= limit then
    held = 0
  end
  if version > held and version < limit then
    local old_n = tonumber(redis.call('HGET', key, 'n') or '0')
    redis.call('HSET', key, 'v', ARGV[a], 't', ARGV[a + 1], 's', ARGV[a + 2], 'n', n,
      'c', ARGV[a + 4])
    local reserved = tonumber(redis.call('HGET', key, 'r') or '0')
    if reserved < version then
      redis.call('HSET', key, 'r', ARGV[a])
    end
    for i = 1, n - 1 do
      redis.call('SET', key .. ':p' .. i, ARGV[a + 4 + i])
    end
    for i = n, old_n - 1 do
      redis.call('DEL', key .. ':p' .. i)
    end
    -- Incremental reconciliation reads what changed since its last run from this index.
    redis.call('ZADD', KEYS[2], ARGV[a + 1], key)
    applied = applied + 1
  end
  a = a + 4 + n
end
if ARGV[1] ~= '' then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', tonumber(ARGV[2]))
end
return {applied, first_held or 0}
