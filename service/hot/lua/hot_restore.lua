-- The steps of a restore that holds the lock (KEYS[1]) with token ARGV[2]; each is refused
-- (-2) once another restore took the lock over, and renews the lock's TTL (ARGV[3], ms).
-- ARGV[1] the step:
--  'wipe': delete KEYS[2..] (what an abandoned restore left; never the lock);
--  'mark': set the message markers KEYS[2..] for ARGV[4] s (messages whose rows the restore
--          replays: a redelivery of one of them is skipped);
--  'done': set the restored marker KEYS[2] and release the lock.
-- All keys in one cluster slot. Returns 1.
if redis.call('GET', KEYS[1]) ~= ARGV[2] then
  return -2
end
local step = ARGV[1]
if step == 'done' then
  redis.call('SET', KEYS[2], '1')
  redis.call('DEL', KEYS[1])
  return 1
end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
for i = 2, #KEYS do
  if step == 'wipe' then
    if KEYS[i] ~= KEYS[1] then
      redis.call('DEL', KEYS[i])
    end
  else
    redis.call('SET', KEYS[i], '1', 'EX', tonumber(ARGV[4]))
  end
end
return 1
