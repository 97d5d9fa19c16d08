-- Read a form in one round trip: {version, updated_us, status, part0, part1, ...} or {}.
-- KEYS[1] form hash
local meta = redis.call('HMGET', KEYS[1], 'v', 't', 's', 'n', 'c')
if not meta[1] then
  return {}
end
local out = {meta[1], meta[2], meta[3], meta[5]}
for i = 1, tonumber(meta[4]) - 1 do
  local part = redis.call('GET', KEYS[1] .. ':p' .. i)
  if not part then
    return {}  -- a part went missing (eviction): treat as absent, the caller reads MySQL
  end
  out[#out + 1] = part
end
return out
