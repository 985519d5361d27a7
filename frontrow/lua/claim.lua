-- claim: before a payment commits, check that every hold is live and this
-- user's, and pin each one that would lapse within the grace period so none
-- can expire while the database transaction runs. A failed payment undoes
-- its pins with unclaim.lua.
--
-- A hold's own deadline is its score in uholds, which no pin changes: a
-- hold past it cannot be claimed (even while a twin payment keeps it
-- pinned), and the pins of payments in flight are counted, so only the last
-- of concurrent failures gives the hold back that deadline. Whatever the
-- interleaving, a hold lives at most one grace period past its own deadline.
--
-- The token's session is checked here too (one round trip, not two): the
-- caller asks for the exact state only when it is not ACTIVE.
--
-- KEYS[1] uholds        ZSET hold_id -> the hold's own deadline, this user's holds
-- KEYS[2] pins          HASH hold_id -> payments in flight that pinned it
-- KEYS[3] active        ZSET token -> session expiry
-- KEYS[4] users         HASH user -> token
-- KEYS[5] cfg           HASH the sale's rules: nothing is paid for before the opening
-- KEYS[6] stats         HASH 'opened_ms' once the opening is recorded
-- KEYS[6 + 2i - 1]      hold i   STRING hold_id|user_id
-- KEYS[6 + 2i]          holds i  ZSET seat -> hold expiry of hold i's date
-- ARGV[1] user id
-- ARGV[2] grace (ms)
-- ARGV[3] token id
-- ARGV[3 + 2i - 1]      hold id i
-- ARGV[3 + 2i]          seat number i
--
-- Returns {'OK', {pinned_1, ..., pinned_n}, {other live hold ids}}: pinned_i
-- is 1 when this payment pinned hold i (unclaim it on failure), else 0; the
-- other ids are this user's live holds in the concert that the payment does
-- not name. Or {'NOT_ACTIVE'} when the token's session is not live (or not
-- this user's place), or {'EXPIRED', hold_id} for the first hold that is not
-- live and this user's, or {'SALE_NOT_OPEN', the opening (ms)}, or
-- {'NO_RULES'}; nothing is changed then.
local uholds, pins, active, users = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local user, grace_ms, token = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local n = (#KEYS - 6) / 2

local now_ms = clock_ms()
local closed = booking_closed(KEYS[5], KEYS[6], now_ms)
if closed == 'NO_RULES' then
  return {'NO_RULES'}
elseif closed then
  return {'SALE_NOT_OPEN', closed}
end
local session = tonumber(rcall('ZSCORE', active, token) or 0)
if session <= now_ms or rcall('HGET', users, user) ~= token then
  return {'NOT_ACTIVE'}
end

for i = 1, n do
  local hold_id = ARGV[3 + 2 * i - 1]
  local own = tonumber(rcall('ZSCORE', uholds, hold_id) or 0)
  if own <= now_ms or rcall('GET', KEYS[6 + 2 * i - 1]) ~= hold_id .. '|' .. user then
    return {'EXPIRED', hold_id}
  end
end

local pinned, named = {}, {}
for i = 1, n do
  local hold, holds = KEYS[6 + 2 * i - 1], KEYS[6 + 2 * i]
  local hold_id, seat = ARGV[3 + 2 * i - 1], ARGV[3 + 2 * i]
  named[hold_id] = true
  pinned[i] = 0
  if rcall('PTTL', hold) < grace_ms or rcall('HEXISTS', pins, hold_id) == 1 then
    pinned[i] = 1
    rcall('HINCRBY', pins, hold_id, 1)
    if rcall('PTTL', hold) < grace_ms then
      rcall('PEXPIRE', hold, grace_ms)
      rcall('ZADD', holds, now_ms + grace_ms, seat)
    end
  end
end
if rcall('EXISTS', pins) == 1 then
  -- a payment that died between claim and unclaim leaves no count behind
  rcall('PEXPIRE', pins, grace_ms)
end
local others = {}
for _, hold_id in ipairs(rcall('ZRANGEBYSCORE', uholds, '(' .. now_ms, '+inf')) do
  if not named[hold_id] then
    others[#others + 1] = hold_id
  end
end
return {'OK', pinned, others}
