-- claim: before a payment commits, check that every hold is live and this
-- user's, and pin each one for a grace period so none can lapse while the
-- database transaction runs.
--
-- KEYS[1] uholds        ZSET hold_id -> hold expiry, this user's holds
-- KEYS[1 + 2i - 1]      hold i   STRING hold_id|user_id
-- KEYS[1 + 2i]          holds i  ZSET seat -> hold expiry of hold i's date
-- ARGV[1] user id
-- ARGV[2] grace (ms)
-- ARGV[2 + 2i - 1]      hold id i
-- ARGV[2 + 2i]          seat number i
--
-- Returns {'OK'} or {'EXPIRED', hold_id} for the first hold that is not live
-- and this user's; nothing is changed then.
local rcall = redis.call
local uholds, user, grace_ms = KEYS[1], ARGV[1], tonumber(ARGV[2])
local n = (#KEYS - 1) / 2

for i = 1, n do
  local hold_id = ARGV[2 + 2 * i - 1]
  if rcall('GET', KEYS[1 + 2 * i - 1]) ~= hold_id .. '|' .. user then
    return {'EXPIRED', hold_id}
  end
end

local t = rcall('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 1, n do
  local hold, holds = KEYS[1 + 2 * i - 1], KEYS[1 + 2 * i]
  local hold_id, seat = ARGV[2 + 2 * i - 1], ARGV[2 + 2 * i]
  if rcall('PTTL', hold) < grace_ms then
    rcall('PEXPIRE', hold, grace_ms)
    rcall('ZADD', holds, now_ms + grace_ms, seat)
    rcall('ZADD', uholds, now_ms + grace_ms, hold_id)
  end
end
return {'OK'}
