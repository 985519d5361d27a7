-- unclaim: a payment failed after claim.lua pinned some of its holds; give
-- each one back its own deadline (or end it, when that has passed), so a
-- failed payment never lengthens a hold.
--
-- KEYS[1] uholds        ZSET hold_id -> hold expiry, this user's holds
-- KEYS[1 + 2i - 1]      hold i   STRING hold_id|user_id
-- KEYS[1 + 2i]          holds i  ZSET seat -> hold expiry of hold i's date
-- ARGV[1] user id
-- ARGV[1 + 3i - 2]      hold id i
-- ARGV[1 + 3i - 1]      seat number i
-- ARGV[1 + 3i]          hold i's own deadline (ms)
--
-- Returns the number of holds given back their deadline or ended.
local uholds, user = KEYS[1], ARGV[1]
local n = (#KEYS - 1) / 2

local now_ms = clock_ms()
local restored = 0
for i = 1, n do
  local hold, holds = KEYS[1 + 2 * i - 1], KEYS[1 + 2 * i]
  local hold_id, seat, deadline = ARGV[1 + 3 * i - 2], ARGV[1 + 3 * i - 1], tonumber(ARGV[1 + 3 * i])
  -- a hold that was paid for or released meanwhile is not ours to touch
  if rcall('GET', hold) == hold_id .. '|' .. user then
    if deadline <= now_ms then
      rcall('DEL', hold)
      rcall('ZREM', holds, seat)
      rcall('ZREM', uholds, hold_id)
    else
      rcall('PEXPIREAT', hold, deadline)
      rcall('ZADD', holds, deadline, seat)
      rcall('ZADD', uholds, deadline, hold_id)
    end
    restored = restored + 1
  end
end
return restored
