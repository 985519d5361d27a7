-- status: the state of one or more queue tokens of a concert in one call
-- (concurrent polls are batched). Marks each waiting token as present
-- (heartbeat) and slides each active session's expiry.
--
-- KEYS[1] wait    ZSET token -> entered_at (µs)
-- KEYS[2] seen    ZSET waiting token -> when it is expected back (ms): now +
--                 the poll interval it was told; it is lost when not back
--                 within the abandon window after that
-- KEYS[3] active  ZSET token -> session expiry (ms)
-- KEYS[4] cap     HASH token -> absolute session deadline (ms)
-- KEYS[5] done    ZSET token -> done at (ms)
-- KEYS[6] stats   HASH counters, 'rate', 'sold_out'
-- KEYS[7] users   HASH user -> token
-- ARGV[1] session ttl (ms)
-- ARGV[2] abandon after (ms)
-- ARGV[3] heartbeat (ms): a waiting token's presence is rewritten at most this often
-- ARGV[4] admissions per second to assume before any is observed
-- ARGV[5], ARGV[6] the shortest and longest poll interval (ms)
-- ARGV[7] '1' when the concert's mode is random (every place is the median one)
-- ARGV[8] 'token user token user ...', space-separated (as the signed tokens
--         say; neither has a space): one argument, not two a token, because
--         the client packs every argument in Python and that was most of a
--         batch's cost
--
-- An active token whose user's place is another token reads EXPIRED: a
-- token that pairs one user with another's place (it takes the secret to
-- sign one) books nothing.
--
-- Returns {rate, sold_out, now_ms, waiting, state_1, rank_1, ms_1, state_2, ...}
--   state: 'WAITING' | 'ACTIVE' | 'DONE' | 'EXPIRED'; rank is 1-based; ms is
--   the poll interval (ms) of a waiting token, the session's expiry of an active one
local wait, seen, active, cap, done, stats, users =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local ttl_ms, abandon_ms, heartbeat_ms = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])

local now_ms = clock_ms()
local live = rcall('HMGET', stats, 'rate', 'sold_out')
local waiting = rcall('ZCARD', wait)
local out = {live[1] or '', live[2] or '', now_ms, waiting}
local rate = tonumber(live[1] or '') or tonumber(ARGV[4])
local min_ms, max_ms, random = tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7] == '1'
local median = math.max(1, math.floor(waiting / 2))
local abandoned = 0

-- Waiting is by far the most common state in a rush: look there first.
local function one(token, user)
  local rank = rcall('ZRANK', wait, token)
  if rank then
    local last = tonumber(rcall('ZSCORE', seen, token) or 0)
    if last < now_ms - abandon_ms then
      rcall('ZREM', wait, token)
      rcall('ZREM', seen, token)
      abandoned = abandoned + 1
      return 'EXPIRED', 0, 0
    end
    local interval = poll_interval(random and median or rank + 1, rate, min_ms, max_ms)
    -- presence only needs to be fresh to within a heartbeat; skip the write
    if now_ms + interval > last + heartbeat_ms then
      rcall('ZADD', seen, now_ms + interval, token)
    end
    return 'WAITING', rank + 1, interval
  end
  local expires = live_session(active, cap, users, token, user, ttl_ms, now_ms)
  if expires then
    return 'ACTIVE', 0, expires
  end
  if rcall('ZSCORE', done, token) then
    return 'DONE', 0, 0
  end
  return 'EXPIRED', 0, 0
end

for token, user in string.gmatch(ARGV[8], '(%S+) (%S+)') do
  local state, rank, expires = one(token, user)
  out[#out + 1] = state
  out[#out + 1] = rank
  out[#out + 1] = expires
end
if abandoned > 0 then
  rcall('HINCRBY', stats, 'abandoned_total', abandoned)
end
return out
