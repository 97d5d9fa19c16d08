-- Stage a save: reserve the next version of a form and claim the idempotency key.
-- KEYS[1] form hash, KEYS[2] idempotency key, KEYS[3] the candidate's save counter,
-- KEYS[4] the candidate's live idempotency keys (sorted set scored by expiry, seconds)
-- ARGV[1] '1' when an Idempotency-Key was sent, ARGV[2] request fingerprint, ARGV[3] pending TTL (s)
-- ARGV[4] version floor: '' asks first ({'miss'} when the form is not in Redis), else the
-- version MySQL holds for it ('0' for none), ARGV[5] how far (µs) a version may be ahead of TIME
-- ARGV[6] saves per candidate per window (0: no limit), ARGV[7] that window (s),
-- ARGV[8] live idempotency keys per candidate (0: no limit), ARGV[9] their lifetime (s)
-- Returns {'idem', stored} when the key was seen before, {'miss'} (nothing changed),
-- {'ahead', version} when the next version would be too far ahead of the clock,
-- {'slow', ms} past the save limit, {'keys', ms} past the idempotency-key bound (nothing
-- changed in these), else {'ok', version, now_us}.
if ARGV[1] == '1' then
  local prev = redis.call('GET', KEYS[2])
  if prev then
    return {'idem', prev}
  end
end
-- After Redis lost the form (or never had it) its clock alone could hand out a version below
-- the one MySQL holds (clock step, failover), which the consumer would then drop.
if ARGV[4] == '' and redis.call('EXISTS', KEYS[1]) == 0 then
  return {'miss'}
end
-- Lua numbers are doubles: from 2^53 on, +1 is lost. No writer stores such a version (they
-- refuse them), so one found here is corrupt and ignored; commit.lua then replaces it.
local limit = 9007199254740992
local function bounded(value)
  local n = tonumber(value or '0') or 0
  if n >= limit or n < 0 then
    return 0
  end
  return n
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
-- 'r' is the last reserved version, 'v' the committed one. Redis TIME keeps versions growing
-- after Redis lost its data; the +1 terms keep them unique within one microsecond.
local reserved = bounded(redis.call('HGET', KEYS[1], 'r'))
local committed = bounded(redis.call('HGET', KEYS[1], 'v'))
local floor = bounded(ARGV[4])
local version = math.max(now, reserved + 1, committed + 1, floor + 1)
if version > now + tonumber(ARGV[5]) then
  return {'ahead', string.format('%d', version)}
end
-- A person saves a few times a minute: more is a script, and each save costs a broker fsync.
local saves_max = tonumber(ARGV[6])
if saves_max > 0 then
  local saves = tonumber(redis.call('GET', KEYS[3]) or '0')
  if saves >= saves_max then
    return {'slow', redis.call('PTTL', KEYS[3])}
  end
end
-- Every new Idempotency-Key lives for a day: bound how many one candidate holds at once.
local keys_max = tonumber(ARGV[8])
if ARGV[1] == '1' and keys_max > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', t[1])
  if redis.call('ZCARD', KEYS[4]) >= keys_max then
    local oldest = redis.call('ZRANGE', KEYS[4], 0, 0, 'WITHSCORES')
    return {'keys', (tonumber(oldest[2]) - tonumber(t[1])) * 1000}
  end
  redis.call('ZADD', KEYS[4], tonumber(t[1]) + tonumber(ARGV[9]), KEYS[2])
  redis.call('EXPIRE', KEYS[4], tonumber(ARGV[9]))
end
if saves_max > 0 then
  if redis.call('INCR', KEYS[3]) == 1 then
    redis.call('EXPIRE', KEYS[3], tonumber(ARGV[7]))
  end
end
if ARGV[1] == '1' then
  redis.call('SET', KEYS[2], 'pending ' .. ARGV[2], 'EX', tonumber(ARGV[3]))
end
redis.call('HSET', KEYS[1], 'r', string.format('%d', version))
return {'ok', version, now}
