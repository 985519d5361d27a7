-- leave: give up a place or an active session at once, freeing its slot.
--
-- KEYS[1] wait    ZSET token -> entered_at
-- KEYS[2] seen    ZSET waiting token -> last poll
-- KEYS[3] active  ZSET token -> session expiry
-- KEYS[4] cap     HASH token -> absolute session deadline
-- KEYS[5] users   HASH user -> token
-- ARGV[1] token id
-- ARGV[2] user id
--
-- Returns 1 when a place or session was given up, 0 when there was none.
local rcall = redis.call
local wait, seen, active, cap, users = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local token, user = ARGV[1], ARGV[2]

local removed = rcall('ZREM', wait, token) + rcall('ZREM', active, token)
rcall('ZREM', seen, token)
rcall('HDEL', cap, token)
if rcall('HGET', users, user) == token then
  rcall('HDEL', users, user)
end
if removed > 0 then
  return 1
end
return 0
