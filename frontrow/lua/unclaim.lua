-- unclaim: a payment failed after claim.lua pinned some of its holds. The
-- last payment in flight to let go of a hold gives it back its own deadline
-- (its score in uholds), or ends it when that has passed: a failed payment
-- never lengthens a hold, however many fail at once.
--
-- KEYS[1] uholds        ZSET hold_id -> the hold's own deadline, this user's holds
-- KEYS[2] pins          HASH hold_id -> payments in flight that pinned it
-- KEYS[2 + 2i - 1]      hold i   STRING hold_id|user_id
-- KEYS[2 + 2i]          holds i  ZSET seat -> hold expiry of hold i's date
-- ARGV[1] user id
-- ARGV[1 + 2i - 1]      hold id i
-- ARGV[1 + 2i]          seat number i
--
-- Returns the number of holds given back their deadline or ended.
local uholds, pins, user = KEYS[1], KEYS[2], ARGV[1]
local n = (#KEYS - 2) / 2

local now_ms = clock_ms()
local restored = 0
for i = 1, n do
  local hold, holds = KEYS[2 + 2 * i - 1], KEYS[2 + 2 * i]
  local hold_id, seat = ARGV[1 + 2 * i - 1], ARGV[1 + 2 * i]
  local left = rcall('HINCRBY', pins, hold_id, -1)
  if left <= 0 then
    rcall('HDEL', pins, hold_id)
  end
  -- a hold that was paid for or released meanwhile is not ours to touch
  if left <= 0 and rcall('GET', hold) == hold_id .. '|' .. user then
    local own = tonumber(rcall('ZSCORE', uholds, hold_id) or 0)
    if own <= now_ms then
      drop_hold(hold, holds, uholds, hold_id, seat, user)
    else
      rcall('PEXPIREAT', hold, own)
      rcall('ZADD', holds, own, seat)
    end
    restored = restored + 1
  end
end
return restored
