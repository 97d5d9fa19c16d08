-- Stage a save: reserve the next version of a form and claim the idempotency key.
-- KEYS[1] form hash, KEYS[2] idempotency key
-- ARGV[1] '1' when an Idempotency-Key was sent, ARGV[2] request fingerprint, ARGV[3] pending TTL (s)
-- Optional: ARGV[4] '1' when a submitted form is final (its batch allows no changes after
-- submission), ARGV[5] the version a submission expects to be committed.
-- Returns {'idem', stored} when the key was seen before, {'locked'} for a final submitted
-- form, {'stale', committed} when the committed version is not the expected one, else
-- {'ok', version, now_us}.
if ARGV[1] == '1' then
  local prev = redis.call('GET', KEYS[2])
  if prev then
    return {'idem', prev}
  end
end
if ARGV[4] == '1' and redis.call('HGET', KEYS[1], 's') == 'submitted' then
  return {'locked'}
end
if ARGV[5] and ARGV[5] ~= '' then
  local held = redis.call('HGET', KEYS[1], 'v') or '0'
  if held ~= ARGV[5] then
    return {'stale', held}
  end
end
if ARGV[1] == '1' then
  redis.call('SET', KEYS[2], 'pending ' .. ARGV[2], 'EX', tonumber(ARGV[3]))
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
-- 'r' is the last reserved version, 'v' the committed one. Redis TIME keeps versions growing
-- after Redis lost its data; the +1 terms keep them unique within one microsecond.
local reserved = tonumber(redis.call('HGET', KEYS[1], 'r') or '0')
local committed = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
local version = math.max(now, reserved + 1, committed + 1)
redis.call('HSET', KEYS[1], 'r', string.format('%d', version))
return {'ok', version, now}
