-- finalize: after the payment committed in the database, mark its seats
-- sold, end their holds and the session (the token reads DONE).
--
-- KEYS[1] uholds  ZSET hold_id -> expiry, the payer's holds
-- KEYS[2] active  ZSET token -> session expiry
-- KEYS[3] cap     HASH token -> absolute session deadline
-- KEYS[4] done    ZSET token -> done at (ms)
-- KEYS[5] users   HASH user -> token
-- KEYS[6] stats   HASH 'sold_out'
-- KEYS[4 + 3i]    hold i   STRING hold_id|user_id
-- KEYS[5 + 3i]    holds i  ZSET seat -> hold expiry of seat i's date
-- KEYS[6 + 3i]    sold i   SET sold seats of seat i's date
-- ARGV[1] token id
-- ARGV[2] user id
-- ARGV[3] '1' when the concert has no seat left on any date
-- ARGV[2 + 2i]    hold id i
-- ARGV[3 + 2i]    seat number i
--
-- Returns the number of seats marked sold.
local rcall = redis.call
local uholds, active, cap, done, users, stats = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local token, user, sold_out = ARGV[1], ARGV[2], ARGV[3]
local n = (#KEYS - 6) / 3

local t = rcall('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 1, n do
  local hold, holds, sold = KEYS[4 + 3 * i], KEYS[5 + 3 * i], KEYS[6 + 3 * i]
  local hold_id, seat = ARGV[2 + 2 * i], ARGV[3 + 2 * i]
  -- Sold even when the copy is not loaded: a later load only adds members.
  rcall('SADD', sold, seat)
  if rcall('GET', hold) == hold_id .. '|' .. user then
    rcall('DEL', hold)
  end
  rcall('ZREM', holds, seat)
  rcall('ZREM', uholds, hold_id)
end
rcall('ZREM', active, token)
rcall('HDEL', cap, token)
rcall('ZADD', done, now_ms, token)
if rcall('HGET', users, user) == token then
  rcall('HDEL', users, user)
end
if sold_out == '1' then
  rcall('HSET', stats, 'sold_out', '1')
end
return n
