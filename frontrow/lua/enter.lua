-- enter: take a place in a concert's waiting queue, one place per user.
-- A user who already holds a live place (waiting and present, or active)
-- gets that place back instead of a second one, with no new proof of work.
--
-- The sale (frontrow/sale.py): before prequeue_from (or before opens_at
-- without a pre-queue) nobody enters; between the two a new place is
-- pre-queued: its score is the first bits of its lottery key and its token
-- id the rest (the caller computes them), so the line is in draw order the
-- moment opens_at passes, with nothing to move at the opening, and its key
-- joins the draw. From opens_at on, places join behind in arrival order
-- (score LATE + µs). Modes: 'reject' takes no new place; 'passthrough'
-- admits every new place at once; 'fifo' admits a new place at once while
-- nobody waits, the active cap has room and fewer than k were let in so in
-- this interval (so a crowd forms a line within one interval; the tick's own
-- k is not reduced: the interval in which the line forms may admit up to 2k).
--
-- KEYS[1] wait    ZSET token -> score (lottery bits, or LATE + entered_at µs)
-- KEYS[2] seen    ZSET waiting token -> when it is expected back (ms): now + the
--                 poll interval it is told (a pre-queued place: just after the
--                 opening, so it is not dropped meanwhile)
-- KEYS[3] users   HASH user -> token
-- KEYS[4] active  ZSET token -> session expiry (ms)
-- KEYS[5] cfg     HASH live settings ('open', 'admit_batch', 'admit_interval_s', 'max_active')
-- KEYS[6] stats   HASH counters, 'rate', 'sold_out'
-- KEYS[7] cap     HASH token -> absolute session deadline (ms)
-- KEYS[8] draw    ZSET lottery key -> 0, every pre-queued place's key
-- KEYS[9] calm    STRING places let in at once this interval (PX interval)
-- KEYS[10] pow    STRING user id the presented challenge was given to
-- ARGV[1] user id
-- ARGV[2] token id to use for a new place after the opening
-- ARGV[3] '1' when the concert is open by default, else '0'
-- ARGV[4] abandon after (ms): a waiting place not polled for this long is lost
-- ARGV[5] mode, ARGV[6] prequeue_from (ms, 0 = none), ARGV[7] opens_at (ms, 0 = open)
-- ARGV[8] token id, ARGV[9] score and ARGV[10] lottery key of a pre-queued
--         place ('' when the concert has no lottery)
-- ARGV[11] proof of work: '' (not asked), 'missing', 'bad' (its hash fails) or
--          'ok' (its hash holds; the challenge is checked and spent here)
-- ARGV[12] session ttl (ms), ARGV[13] absolute session cap (ms, 0 = none)
-- ARGV[14] default admit batch, ARGV[15] default admit interval (ms),
-- ARGV[16] default max active (0 = no cap)
-- ARGV[17] how long after opens_at a pre-queued place counts as present (ms)
-- ARGV[18] LATE, the score offset of places taken from opens_at on
-- ARGV[19] admissions per second to assume before any is observed
-- ARGV[20], ARGV[21] the shortest and longest poll interval (ms)
--
-- Returns {outcome, token, rank, expires_at_ms, rate, sold_out, now_ms, waiting, poll_ms}
--   (poll_ms: the poll interval of a waiting place, _lib.lua poll_interval)
--   outcome: 'NEW' | 'PRE' (a new pre-queued place) | 'IN' (a new place
--            admitted at once) | 'WAITING' | 'ACTIVE' (an existing place)
--            | 'CLOSED' | 'EARLY' (before the window) | 'SOLD_OUT'
--            | 'POW_REQUIRED' | 'POW_INVALID'
local wait, seen, users, active, cfg, stats, cap, draw, calm, pow =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10]
local user, new_token = ARGV[1], ARGV[2]
local default_open, abandon_ms = ARGV[3], tonumber(ARGV[4])
local mode, prequeue_from, opens_at = ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7])
local pre_token, pre_score, pre_key = ARGV[8], ARGV[9], ARGV[10]
local proof = ARGV[11]

local t = rcall('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local live = rcall('HMGET', stats, 'rate', 'sold_out')
local rate, sold_out = live[1] or '', live[2] or ''

local waiting = rcall('ZCARD', wait)
local admit_rate = tonumber(rate) or tonumber(ARGV[19])
-- when a waiting place should ask again; it counts as present until then
local function poll_ms(rank)
  local place = rank
  if mode == 'random' then
    place = math.max(1, math.floor(waiting / 2))
  end
  return poll_interval(place, admit_rate, tonumber(ARGV[20]), tonumber(ARGV[21]))
end

local function answer(outcome, token, rank, expires, poll)
  return {outcome, token, rank, expires, rate, sold_out, now_ms, waiting, poll or 0}
end

local old = rcall('HGET', users, user)
if old then
  local rank = rcall('ZRANK', wait, old)
  if rank then
    local last = tonumber(rcall('ZSCORE', seen, old) or 0)
    if last >= now_ms - abandon_ms then
      local poll = poll_ms(rank + 1)
      if now_ms + poll > last then
        rcall('ZADD', seen, now_ms + poll, old)
      end
      return answer('WAITING', old, rank + 1, 0, poll)
    end
    -- the old place was abandoned: it is lost, as it would be at admission
    rcall('ZREM', wait, old)
    rcall('ZREM', seen, old)
    rcall('HINCRBY', stats, 'abandoned_total', 1)
  else
    local expires = tonumber(rcall('ZSCORE', active, old) or 0)
    if expires > now_ms then
      return answer('ACTIVE', old, 0, expires)
    end
  end
end

local conf = rcall('HMGET', cfg, 'open', 'admit_batch', 'admit_interval_s', 'max_active')
if mode == 'reject' or (conf[1] or default_open) ~= '1' then
  return answer('CLOSED', '', 0, 0)
end
local prequeue = opens_at > 0 and now_ms < opens_at
if prequeue and (prequeue_from == 0 or now_ms < prequeue_from or pre_token == '') then
  return answer('EARLY', '', 0, 0)
end
if sold_out == '1' then
  return answer('SOLD_OUT', '', 0, 0)
end
if proof == 'missing' then
  return answer('POW_REQUIRED', '', 0, 0)
elseif proof == 'bad' then
  return answer('POW_INVALID', '', 0, 0)
elseif proof == 'ok' then
  -- one use, this user's, this concert's (the key is in the concert's slot)
  if rcall('GET', pow) ~= user then
    return answer('POW_INVALID', '', 0, 0)
  end
  rcall('DEL', pow)
end

if prequeue then
  -- the same user always draws the same key: leaving and coming back
  -- returns to the same place, and nobody can draw twice
  rcall('ZADD', wait, pre_score, pre_token)
  rcall('ZADD', seen, opens_at + tonumber(ARGV[17]), pre_token)
  rcall('ZADD', draw, 0, pre_key)
  rcall('HSET', users, user, pre_token)
  return answer('PRE', pre_token, 0, 0)
end

local ttl_ms, max_ms = tonumber(ARGV[12]), tonumber(ARGV[13])
local let_in = mode == 'passthrough'
if mode == 'fifo' and rcall('ZCARD', wait) == 0 then
  local k = tonumber(conf[2] or ARGV[14])
  local interval_ms = tonumber(ARGV[15])
  if conf[3] then
    interval_ms = math.max(1, math.floor(tonumber(conf[3]) * 1000))
  end
  local max_active = tonumber(conf[4] or ARGV[16])
  local room = max_active == 0 or rcall('ZCOUNT', active, '(' .. now_ms, '+inf') < max_active
  if room and tonumber(rcall('GET', calm) or 0) < k then
    if rcall('INCR', calm) == 1 then
      rcall('PEXPIRE', calm, interval_ms)
    end
    let_in = true
  end
end
rcall('HSET', users, user, new_token)
if let_in then
  local expires = start_session(active, cap, new_token, now_ms, ttl_ms, max_ms)
  rcall('HINCRBY', stats, 'admitted_total', 1)
  if mode == 'passthrough' then
    rcall('HINCRBY', stats, 'passthrough_total', 1)
  end
  return answer('IN', new_token, 0, expires)
end
rcall('ZADD', wait, tonumber(ARGV[18]) + now_us, new_token)
waiting = waiting + 1
local rank = rcall('ZRANK', wait, new_token) + 1
local poll = poll_ms(rank)
rcall('ZADD', seen, now_ms + poll, new_token)
return answer('NEW', new_token, rank, 0, poll)
