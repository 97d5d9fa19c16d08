-- Give back the attempt a successful login reserved (login.lua), never below zero.
-- KEYS[1], KEYS[2] as in login.lua
for i = 1, 2 do
  if tonumber(redis.call('GET', KEYS[i]) or '0') > 0 then
    redis.call('DECR', KEYS[i])
  end
end
return 1
