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
-- KEYS[8] cfg     HASH the sale's rules (frontrow/rules.py): its mode and opening,
--                 'born_ms' (when this Redis's state of the concert began)
-- KEYS[9] back    ZSET token -> when its lost place was given back (once a token)
-- KEYS[10] fresh  ZSET token -> admitted at (ms): this poll brings it back
-- ARGV[1] session ttl (ms)
-- ARGV[2] abandon after (ms)
-- ARGV[3] heartbeat (ms): a waiting token's presence is rewritten at most this often
-- ARGV[4] admissions per second to assume before any is observed
-- ARGV[5], ARGV[6] the shortest and longest poll interval (ms)
-- ARGV[7] absolute session cap (ms, 0 = none)
-- ARGV[8] 'token user born score token user born score ...', space-separated
--         (as the signed tokens say; none has a space): one argument, not
--         four a token, because the client packs every argument in Python
--         and that was most of a batch's cost
--
-- An active token whose user's place is another token reads EXPIRED: a
-- token that pairs one user with another's place (it takes the secret to
-- sign one) books nothing.
--
-- A token issued by an earlier state of this concert in Redis (it carries
-- that state's 'born_ms', older than cfg's: Redis came back empty) whose
-- place is nowhere gets it back,
-- once, from what it carries: a score up to the admission frontier (stats
-- 'admitted_upto', restored from the database) was admitted, and gets a
-- session again; any other takes its old score in the line, so the line
-- rebuilds in its first order as people come back. One place a user: the
-- better of this one and another place the user took meanwhile is kept.
--
-- Returns {rate, sold_out, now_ms, waiting, mode, opens_ms, state_1, rank_1, ms_1, state_2, ...}
--   (mode and opens_ms: the rules in force; in random mode every place is the median one)
--   or {'NO_RULES'} when Redis has no rules for the concert
--   state: 'WAITING' | 'ACTIVE' | 'DONE' | 'EXPIRED'; rank is 1-based; ms is
--   the poll interval (ms) of a waiting token, the session's expiry of an active one
local wait, seen, active, cap, done, stats, users, cfg =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local back, fresh = KEYS[9], KEYS[10]
local ttl_ms, abandon_ms, heartbeat_ms = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local session_max_ms = tonumber(ARGV[7])

local rules = sale_rules(cfg)
if not rules then
  return {'NO_RULES'}
end
local now_ms = clock_ms()
if rules.opens_ms > 0 then
  sale_open(rules, stats, now_ms)  -- a pre-queued place back at the opening records it
end
local live = rcall('HMGET', stats, 'rate', 'sold_out')
local waiting = rcall('ZCARD', wait)
local out = {live[1] or '', live[2] or '', now_ms, waiting, rules.mode, rules.opens_ms}
local rate = tonumber(live[1] or '') or tonumber(ARGV[4])
local min_ms, max_ms, random = tonumber(ARGV[5]), tonumber(ARGV[6]), rules.mode == 'random'
local median = math.max(1, math.floor(waiting / 2))
local abandoned = 0
local frontier -- read when a token asks to be given back

-- A place Redis lost, given back from its token (see above); nil when the
-- token has no place to get back.
local function give_back(token, user, score)
  if rcall('ZADD', back, 'NX', now_ms, token) == 0 then
    return nil -- given back once already: whatever ended it since stands
  end
  local other = rcall('HGET', users, user)
  if other and other ~= token then
    if tonumber(rcall('ZSCORE', active, other) or 0) > now_ms then
      return nil -- in with another token
    end
    local theirs = tonumber(rcall('ZSCORE', wait, other) or 'x')
    if theirs and theirs <= score then
      return nil -- the other place is the better one
    end
    rcall('ZREM', wait, other)
    rcall('ZREM', seen, other)
  end
  rcall('HSET', users, user, token)
  if frontier >= 0 and score <= frontier then
    rcall('HINCRBY', stats, 'given_back_total', 1)
    return 'ACTIVE', 0, start_session(active, cap, token, now_ms, ttl_ms, session_max_ms)
  end
  rcall('ZADD', wait, score, token)
  waiting = waiting + 1
  local rank = rcall('ZRANK', wait, token)
  local interval = poll_interval(random and median or rank + 1, rate, min_ms, max_ms)
  rcall('ZADD', seen, now_ms + interval, token)
  rcall('HINCRBY', stats, 'given_back_total', 1)
  return 'WAITING', rank + 1, interval
end

-- Waiting is by far the most common state in a rush: look there first.
local function one(token, user, token_born, score)
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
    rcall('ZREM', fresh, token)
    return 'ACTIVE', 0, expires
  end
  if rcall('ZSCORE', done, token) then
    return 'DONE', 0, 0
  end
  if score >= 0 and token_born > 0 and token_born < rules.born_ms then
    frontier = frontier or tonumber(rcall('HGET', stats, 'admitted_upto') or -1)
    local state, rank, ms = give_back(token, user, score)
    if state then
      return state, rank, ms
    end
  end
  return 'EXPIRED', 0, 0
end

for token, user, token_born, score in string.gmatch(ARGV[8], '(%S+) (%S+) (%S+) (%S+)') do
  local state, rank, expires = one(token, user, tonumber(token_born), tonumber(score))
  out[#out + 1] = state
  out[#out + 1] = rank
  out[#out + 1] = expires
end
if abandoned > 0 then
  rcall('HINCRBY', stats, 'abandoned_total', abandoned)
end
return out
