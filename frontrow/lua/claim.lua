-- claim: before a payment commits, check that every hold is live and this
-- user's, and pin each one that would lapse within the grace period so none
-- can expire while the database transaction runs. A failed payment undoes
-- the pins with unclaim.lua: a hold never outlives its own deadline because
-- somebody tried to pay for it.
--
-- The token's session is checked here too (one round trip, not two): the
-- caller asks for the exact state only when it is not ACTIVE.
--
-- KEYS[1] uholds        ZSET hold_id -> hold expiry, this user's holds
-- KEYS[2] active        ZSET token -> session expiry
-- KEYS[3] users         HASH user -> token
-- KEYS[3 + 2i - 1]      hold i   STRING hold_id|user_id
-- KEYS[3 + 2i]          holds i  ZSET seat -> hold expiry of hold i's date
-- ARGV[1] user id
-- ARGV[2] grace (ms)
-- ARGV[3] token id
-- ARGV[3 + 2i - 1]      hold id i
-- ARGV[3 + 2i]          seat number i
--
-- Returns {'OK', {pinned_1, ..., pinned_n}, {other live hold ids}}: pinned_i
-- is hold i's own deadline (ms) when it was extended, else 0; the other ids
-- are this user's live holds in the concert that the payment does not name.
-- Or {'NOT_ACTIVE'} when the token's session is not live (or not this
-- user's place), or {'EXPIRED', hold_id} for the first hold that is not live
-- and this user's; nothing is changed then.
local uholds, active, users = KEYS[1], KEYS[2], KEYS[3]
local user, grace_ms, token = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local n = (#KEYS - 3) / 2

local now_ms = clock_ms()
local session = tonumber(rcall('ZSCORE', active, token) or 0)
if session <= now_ms or rcall('HGET', users, user) ~= token then
  return {'NOT_ACTIVE'}
end

for i = 1, n do
  local hold_id = ARGV[3 + 2 * i - 1]
  if rcall('GET', KEYS[3 + 2 * i - 1]) ~= hold_id .. '|' .. user then
    return {'EXPIRED', hold_id}
  end
end

local pinned, named = {}, {}
for i = 1, n do
  local hold, holds = KEYS[3 + 2 * i - 1], KEYS[3 + 2 * i]
  local hold_id, seat = ARGV[3 + 2 * i - 1], ARGV[3 + 2 * i]
  named[hold_id] = true
  pinned[i] = 0
  local left = rcall('PTTL', hold)
  if left < grace_ms then
    pinned[i] = now_ms + left
    rcall('PEXPIRE', hold, grace_ms)
    rcall('ZADD', holds, now_ms + grace_ms, seat)
    rcall('ZADD', uholds, now_ms + grace_ms, hold_id)
  end
end
local others = {}
for _, hold_id in ipairs(rcall('ZRANGEBYSCORE', uholds, '(' .. now_ms, '+inf')) do
  if not named[hold_id] then
    others[#others + 1] = hold_id
  end
end
return {'OK', pinned, others}
