-- Reserve one login attempt of the whole service (all processes, all clients) before the
-- password is hashed, atomically: check and count in one step, so the processes together admit
-- at most the limit per window. Every attempt counts, a successful one too (it was hashed).
-- KEYS[1] the service's counter; ARGV[1] limit, ARGV[2] window (s)
-- Returns {1, 0} when reserved, else {0, ms until the window ends}.
local held = tonumber(redis.call('GET', KEYS[1]) or '0')
if held >= tonumber(ARGV[1]) then
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl < 0 then
    ttl = tonumber(ARGV[2]) * 1000
  end
  return {0, ttl}
end
redis.call('INCR', KEYS[1])
-- The window starts at the first attempt counted.
if redis.call('TTL', KEYS[1]) < 0 then
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
end
return {1, 0}
