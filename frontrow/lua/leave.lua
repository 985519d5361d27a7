-- leave: give up a place or an active session at once, freeing its slot, and
-- release the user's holds in the concert: without a session nobody can pay
-- for them, and five minutes of seats nobody may buy is what a rush can't spare.
--
-- KEYS[1] wait    ZSET token -> entered_at
-- KEYS[2] seen    ZSET waiting token -> last poll
-- KEYS[3] active  ZSET token -> session expiry
-- KEYS[4] cap     HASH token -> absolute session deadline
-- KEYS[5] users   HASH user -> token
-- KEYS[6] uholds  ZSET hold_id -> expiry, the user's holds
-- KEYS[5 + 2j] hold j, KEYS[6 + 2j] holds j (the date's held seats), j = 1..m
-- KEYS[#KEYS] stats HASH the concert's counters: 'freed' counts holds ended early
-- ARGV[1] token id
-- ARGV[2] user id
-- ARGV[3] 'given' (the holds below are all the user's live ones the caller
--         knows of) or 'ask' (none given: the caller asks first)
-- ARGV[2 + 2j] hold id j, ARGV[3 + 2j] its seat number
--
-- Returns 1 when a place or session was given up, 0 when there was none
-- (then no hold is touched: an old token does not end a newer session's holds).
-- Or, asked while the user holds seats, {hold id, expiry ms, ...} of the live
-- holds and nothing is done: the caller finds their keys and calls again.
-- A leave without holds, the usual one, is one call.
local wait, seen, active, cap, users, uholds = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local token, user = ARGV[1], ARGV[2]

if ARGV[3] == 'ask' then
  local t = rcall('TIME')
  local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local live = rcall('ZRANGEBYSCORE', uholds, '(' .. now_ms, '+inf', 'WITHSCORES')
  if #live > 0 then
    return live
  end
end

local removed = rcall('ZREM', wait, token) + rcall('ZREM', active, token)
rcall('ZREM', seen, token)
rcall('HDEL', cap, token)
if rcall('HGET', users, user) == token then
  rcall('HDEL', users, user)
end
if removed == 0 then
  return 0
end
local freed = 0
for j = 1, (#KEYS - 7) / 2 do
  freed = freed + drop_hold(KEYS[5 + 2 * j], KEYS[6 + 2 * j], uholds, ARGV[2 + 2 * j],
    ARGV[3 + 2 * j], user)
end
if freed > 0 then
  rcall('HINCRBY', KEYS[#KEYS], 'freed', freed)
end
return 1
