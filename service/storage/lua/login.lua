-- Reserve one login attempt before the password is hashed, atomically: N concurrent wrong
-- guesses reserve at most the limit. A successful login gives its reservation back
-- (login_refund.lua), so only failures stay counted until the window ends.
-- KEYS[1] the client's counter for this account, KEYS[2] the client's counter over all
-- accounts (both under the client's hash tag: one slot)
-- ARGV[1] limit per account, ARGV[2] limit per client, ARGV[3] window (s)
-- Returns {1, 0} when reserved, else {0, ms until the full counter's window ends}.
local limits = {tonumber(ARGV[1]), tonumber(ARGV[2])}
for i = 1, 2 do
  local held = tonumber(redis.call('GET', KEYS[i]) or '0')
  if limits[i] > 0 and held >= limits[i] then
    local ttl = redis.call('PTTL', KEYS[i])
    if ttl < 0 then
      ttl = tonumber(ARGV[3]) * 1000
    end
    return {0, ttl}
  end
end
for i = 1, 2 do
  redis.call('INCR', KEYS[i])
  -- The window starts at the first attempt counted.
  if redis.call('TTL', KEYS[i]) < 0 then
    redis.call('EXPIRE', KEYS[i], tonumber(ARGV[3]))
  end
end
return {1, 0}
