-- finalize: after the payment committed in the database, mark its seats
-- sold, end their holds, release the payer's other holds in the concert
-- (the session ends here, so nobody could pay for them) and end the session
-- (the token reads DONE). Run again for the same payment (a replay), it
-- changes nothing more.
--
-- KEYS[1] uholds  ZSET hold_id -> expiry, the payer's holds
-- KEYS[2] active  ZSET token -> session expiry
-- KEYS[3] cap     HASH token -> absolute session deadline
-- KEYS[4] done    ZSET token -> done at (ms)
-- KEYS[5] users   HASH user -> token
-- KEYS[6] bought  HASH user -> seats bought in the concert (the ticket limit)
-- KEYS[4 + 3i]    hold i   STRING hold_id|user_id, for each paid hold i = 1..n
-- KEYS[5 + 3i]    holds i  ZSET seat -> hold expiry of seat i's date
-- KEYS[6 + 3i]    sold i   BITMAP sold seats of seat i's date
-- KEYS[5 + 3n + 2j] hold j, KEYS[6 + 3n + 2j] holds j, for each other hold j
-- KEYS[#KEYS] stats HASH the concert's counters: 'freed' counts holds ended early
-- ARGV[1] token id
-- ARGV[2] user id
-- ARGV[3] n, the number of paid holds
-- ARGV[2 + 2i]    paid hold id i,  ARGV[3 + 2i] its seat number
-- ARGV[2 + 2n + 2j] other hold id j, ARGV[3 + 2n + 2j] its seat number
--
-- Returns, for each paid seat i, how many seats of its date are sold now
-- (the copy only grows: the finalize that runs last sees a date full).
local uholds, active, cap, done, users = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local token, user, n = ARGV[1], ARGV[2], tonumber(ARGV[3])
local m = (#KEYS - 7 - 3 * n) / 2

local now_ms = clock_ms()
local newly = 0 -- seats this call sold: a replayed payment runs it again
for i = 1, n do
  -- Sold even when the copy is not loaded: a later load only adds members.
  if rcall('SETBIT', KEYS[6 + 3 * i], ARGV[3 + 2 * i], 1) == 0 then
    newly = newly + 1
  end
  rcall('ZREM', KEYS[5 + 3 * i], ARGV[3 + 2 * i])
  drop_hold(KEYS[4 + 3 * i], KEYS[5 + 3 * i], uholds, ARGV[2 + 2 * i], ARGV[3 + 2 * i], user)
end
local freed = 0
for j = 1, m do
  freed = freed + drop_hold(KEYS[5 + 3 * n + 2 * j], KEYS[6 + 3 * n + 2 * j], uholds,
    ARGV[2 + 2 * n + 2 * j], ARGV[3 + 2 * n + 2 * j], user)
end
if freed > 0 then
  rcall('HINCRBY', KEYS[#KEYS], 'freed', freed)
end
if newly > 0 then
  rcall('HINCRBY', KEYS[6], user, newly)
end
rcall('ZREM', active, token)
rcall('HDEL', cap, token)
rcall('ZADD', done, now_ms, token)
if rcall('HGET', users, user) == token then
  rcall('HDEL', users, user)
end
local counts = {}
for i = 1, n do
  counts[i] = rcall('BITCOUNT', KEYS[6 + 3 * i]) - rcall('GETBIT', KEYS[6 + 3 * i], 0)
end
return counts
