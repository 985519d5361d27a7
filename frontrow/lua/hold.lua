-- hold: hold one seat for one user, atomically: refuse a sold seat, a seat
-- held by anyone else, and a user at the per-concert hold limit. The
-- token's session check (slid, as a poll slides it) and the rate limits
-- are part of the same call: a hold is one round trip.
--
-- KEYS[1] hold    STRING hold_id|user_id, PX = hold ttl (the lock itself)
-- KEYS[2] holds   ZSET seat -> hold expiry (ms), the date's held seats
-- KEYS[3] uholds  ZSET hold_id -> the hold's own deadline (ms), this user's holds in the concert
-- KEYS[4] sold    BITMAP sold seats of the date, bit 0 set once loaded
-- KEYS[5] active  ZSET token -> session expiry (ms)
-- KEYS[6] cap     HASH token -> absolute session deadline (ms)
-- KEYS[7] users   HASH user -> token
-- KEYS[8], KEYS[9] STRING rate counters, per user and per address
-- KEYS[10] stats  HASH the concert's counters: held_total counts seats held
-- KEYS[11] cfg    HASH the sale's rules: nothing is held before the opening
-- KEYS[12] bought HASH user -> seats bought in the concert (the ticket limit)
-- KEYS[13] claims HASH seat lock -> deadline of this user's first hold of it
-- KEYS[14] held   BITMAP seats of the date that may be held: set with the hold
--          (best.lua walks it instead of the holds)
-- ARGV[1] seat number
-- ARGV[2] hold id to use for a new hold
-- ARGV[3] user id
-- ARGV[4] hold ttl (ms)
-- ARGV[5] most live holds per user in this concert
-- ARGV[6] token id, ARGV[7] session ttl (ms)
-- ARGV[8] rate window (ms), ARGV[9], ARGV[10] most attempts of KEYS[8], KEYS[9] (0 = no limit)
-- ARGV[11] most seats bought plus held per user in this concert (0 = no limit)
--
-- Returns {outcome, hold_id, expires_at_ms}
--   outcome: 'HELD' | 'ALREADY' (this user's own hold) | 'SOLD' | 'TAKEN'
--            | 'LIMIT' | 'RELOAD' (the sold copy is missing: load it, retry)
--            | 'TICKET_LIMIT' (the third field is the seats bought)
--            | 'COOLING' (this user's claim on the seat used its lifetime)
--            | 'NOT_ACTIVE' (the session is not live: nothing counted)
--            | 'RATE' (too many attempts; the third field is the ms to wait)
--            | 'SALE_NOT_OPEN' (the third field is the opening, ms) | 'NO_RULES'
local hold, holds, uholds, sold = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local seat, hold_id, user = ARGV[1], ARGV[2], ARGV[3]
local ttl_ms, max_holds = tonumber(ARGV[4]), tonumber(ARGV[5])

local now_ms = clock_ms()
local closed = booking_closed(KEYS[11], KEYS[10], now_ms)
if closed == 'NO_RULES' then
  return {'NO_RULES', '', 0}
elseif closed then
  return {'SALE_NOT_OPEN', '', closed}
end
if not live_session(KEYS[5], KEYS[6], KEYS[7], ARGV[6], user, tonumber(ARGV[7]), now_ms) then
  return {'NOT_ACTIVE', '', 0}
end
if rcall('GETBIT', sold, 0) == 0 then
  return {'RELOAD', '', 0}
end
local wait_ms = count_attempt({KEYS[8], KEYS[9]}, {ARGV[9], ARGV[10]}, tonumber(ARGV[8]))
if wait_ms > 0 then
  return {'RATE', '', wait_ms}
end
if rcall('GETBIT', sold, seat) == 1 then
  return {'SOLD', '', 0}
end

local current = rcall('GET', hold)
if current then
  local sep = string.find(current, '|', 1, true)
  local current_id, holder = string.sub(current, 1, sep - 1), string.sub(current, sep + 1)
  if holder == user then
    return {'ALREADY', current_id, tonumber(rcall('ZSCORE', uholds, current_id) or now_ms)}
  end
  return {'TAKEN', '', 0}
end

rcall('ZREMRANGEBYSCORE', uholds, '-inf', now_ms)
if rcall('ZCARD', uholds) >= max_holds then
  return {'LIMIT', '', 0}
end
local paid = over_ticket_limit(KEYS[12], uholds, user, 1, tonumber(ARGV[11]))
if paid then
  return {'TICKET_LIMIT', '', paid}
end

local expires = claim_deadline(KEYS[13], hold, now_ms, ttl_ms)
if expires == false then
  return {'COOLING', '', 0}
elseif not expires then
  expires = now_ms + ttl_ms
  record_claim(KEYS[13], hold, expires, now_ms, ttl_ms)
end
rcall('SET', hold, hold_id .. '|' .. user, 'PX', expires - now_ms)
rcall('ZADD', holds, expires, seat)
rcall('SETBIT', KEYS[14], seat, 1)
rcall('ZADD', uholds, expires, hold_id)
rcall('PEXPIRE', uholds, ttl_ms + 60000)
rcall('HINCRBY', KEYS[10], 'held_total', 1)
return {'HELD', hold_id, expires}
