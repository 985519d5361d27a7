-- release: end a live hold early; the seat is available again at once.
--
-- KEYS[1] hold    STRING hold_id|user_id
-- KEYS[2] holds   ZSET seat -> hold expiry
-- KEYS[3] uholds  ZSET hold_id -> hold expiry, the holder's holds
-- KEYS[4] stats   HASH the concert's counters: 'freed' counts holds ended
--         early (best.lua rebuilds its bitmap of held seats when it moves)
-- ARGV[1] seat number
-- ARGV[2] hold id
-- ARGV[3] user id asking
--
-- Returns 'RELEASED' | 'GONE' (no such live hold) | 'NOT_YOURS'
local hold, holds, uholds = KEYS[1], KEYS[2], KEYS[3]
local seat, hold_id, user = ARGV[1], ARGV[2], ARGV[3]

local current = rcall('GET', hold)
if not current then
  return 'GONE'
end
if current ~= hold_id .. '|' .. user then
  if string.sub(current, 1, #hold_id + 1) == hold_id .. '|' then
    return 'NOT_YOURS'
  end
  return 'GONE'
end
rcall('DEL', hold)
rcall('ZREM', holds, seat)
rcall('ZREM', uholds, hold_id)
rcall('HINCRBY', KEYS[4], 'freed', 1)
return 'RELEASED'
