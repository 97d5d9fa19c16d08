-- Stage a save: reserve the next version of a form and claim the idempotency key.
-- KEYS[1] form hash, KEYS[2] idempotency key
-- ARGV[1] '1' when an Idempotency-Key was sent, ARGV[2] request fingerprint, ARGV[3] pending TTL (s)
-- Returns {'idem', stored} when the key was seen before, else {'ok', version, now_us}.
if ARGV[1] == '1' then
  local prev = redis.call('GET', KEYS[2])
  if prev then
    return {'idem', prev}
  end
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
