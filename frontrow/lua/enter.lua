-- enter: take a place in a concert's waiting queue, one place per user.
-- A user who already holds a live place (waiting and present, or active)
-- gets that place back instead of a second one, with no new proof of work.
--
-- The sale's rules are read from cfg (frontrow/rules.py) and judged by
-- Redis's clock: before prequeue_from (or before opens_at without a
-- pre-queue) nobody enters; until the opening is recorded (_lib.lua
-- sale_open) a new place is pre-queued: its score is the first bits of its
-- lottery key and its token id the rest (the caller computes them from the
-- seed), so the line is in draw order at the opening, with nothing to move,
-- and its key joins the draw. From the opening on, places join behind in
-- arrival order (score LATE + µs). Modes: 'reject' takes no new place;
-- 'passthrough' admits a new place at once while nobody waits (the next
-- tick admits whoever does); 'fifo' admits a new place at once while nobody
-- waits, the active cap has room and fewer than k were let in so in this
-- interval (so a crowd forms a line within one interval; the tick's own k
-- is not reduced: the interval in which the line forms may admit up to 2k).
-- A proof of work is checked against the difficulty asked now: a challenge
-- made for fewer bits is refused. While a Redis that lost the line takes it
-- back from the tokens (cfg 'calm_until_ms', rules.lua), nobody goes straight in.
--
-- KEYS[1] wait    ZSET token -> score (lottery bits, or LATE + entered_at µs)
-- KEYS[2] seen    ZSET waiting token -> when it is expected back (ms): now + the
--                 poll interval it is told (a pre-queued place: just after the
--                 opening, so it is not dropped meanwhile)
-- KEYS[3] users   HASH user -> token
-- KEYS[4] active  ZSET token -> session expiry (ms)
-- KEYS[5] cfg     HASH the sale's rules and live settings
-- KEYS[6] stats   HASH counters, 'rate', 'sold_out', 'opened_ms'
-- KEYS[7] cap     HASH token -> absolute session deadline (ms)
-- KEYS[8] draw    ZSET lottery key -> 0, every pre-queued place's key
-- KEYS[9] calm    STRING places let in at once this interval (PX interval)
-- KEYS[10] pow    STRING user id the presented challenge was given to
-- KEYS[11], KEYS[12] STRING rate counters of entering, per user and per address
-- ARGV[1] user id
-- ARGV[2] token id to use for a new place after the opening
-- ARGV[3] abandon after (ms): a waiting place not polled for this long is lost
-- ARGV[4] token id, ARGV[5] score and ARGV[6] lottery key of a pre-queued
--         place ('' when the caller does not know the seed yet)
-- ARGV[7] proof of work: 'missing', 'bad' (its hash fails) or 'ok' (its hash
--         holds for the bits its challenge was made for: the challenge is
--         checked and spent here)
-- ARGV[8] the bits the presented challenge was made for
-- ARGV[9] session ttl (ms), ARGV[10] absolute session cap (ms, 0 = none)
-- ARGV[11] default admit batch, ARGV[12] default admit interval (ms),
-- ARGV[13] default max active (0 = no cap)
-- ARGV[14] how long after opens_at a pre-queued place counts as present (ms)
-- ARGV[15] LATE, the score offset of places taken from the opening on
-- ARGV[16] admissions per second to assume before any is observed
-- ARGV[17], ARGV[18] the shortest and longest poll interval (ms)
-- ARGV[19] rate window (ms), ARGV[20], ARGV[21] most attempts of KEYS[11],
--          KEYS[12] (0 = not counted: no limit, or the attempt counted already)
--
-- Returns {outcome, token, rank, expires_at_ms, rate, sold_out, now_ms, waiting, poll_ms,
--          mode, prequeue_ms, opens_ms, score, born_ms} (poll_ms: the poll
--          interval of a waiting place, _lib.lua poll_interval; then the rules
--          in force; score and born_ms are for the token, by which status.lua
--          gives a place back that Redis lost: the place's score in the line
--          (an admitted place's: the admission frontier, stats 'admitted_upto',
--          every score up to it was admitted; -1 when none) and when this
--          Redis's state of the concert began)
--   outcome: 'NEW' | 'PRE' (a new pre-queued place) | 'IN' (a new place
--            admitted at once) | 'WAITING' | 'ACTIVE' (an existing place)
--            | 'CLOSED' | 'EARLY' (before the window) | 'SOLD_OUT'
--            | 'POW_REQUIRED' | 'POW_INVALID' | 'NEED_SEED' (a pre-queued place
--            needs its key: call again with it, not counted again) | 'NO_RULES'
--            (restore them first; nothing was counted)
--   Or {'RATE', ms to wait}: too many attempts (counted all the same, so
--   hammering does not pay).
local wait, seen, users, active, cfg, stats, cap, draw, calm, pow =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10]
local user, new_token, abandon_ms = ARGV[1], ARGV[2], tonumber(ARGV[3])
local pre_token, pre_score, pre_key = ARGV[4], ARGV[5], ARGV[6]
local proof, proof_bits = ARGV[7], tonumber(ARGV[8])

local rules = sale_rules(cfg)
if not rules then
  return {'NO_RULES'}
end
local wait_ms = count_attempt({KEYS[11], KEYS[12]}, {ARGV[20], ARGV[21]}, tonumber(ARGV[19]))
if wait_ms > 0 then
  return {'RATE', wait_ms}
end
local mode = rules.mode
local t = rcall('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local live = rcall('HMGET', stats, 'rate', 'sold_out', 'admitted_upto')
local rate, sold_out = live[1] or '', live[2] or ''
local upto = tonumber(live[3] or -1)

local waiting = rcall('ZCARD', wait)
local admit_rate = tonumber(rate) or tonumber(ARGV[16])
-- when a waiting place should ask again; it counts as present until then
local function poll_ms(rank)
  local place = rank
  if mode == 'random' then
    place = math.max(1, math.floor(waiting / 2))
  end
  return poll_interval(place, admit_rate, tonumber(ARGV[17]), tonumber(ARGV[18]))
end

local function answer(outcome, token, rank, expires, poll, score)
  return {outcome, token, rank, expires, rate, sold_out, now_ms, waiting, poll or 0,
    mode, rules.prequeue_ms, rules.opens_ms, score or -1, rules.born_ms}
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
      return answer('WAITING', old, rank + 1, 0, poll, tonumber(rcall('ZSCORE', wait, old)))
    end
    -- the old place was abandoned: it is lost, as it would be at admission
    rcall('ZREM', wait, old)
    rcall('ZREM', seen, old)
    rcall('HINCRBY', stats, 'abandoned_total', 1)
  else
    local expires = tonumber(rcall('ZSCORE', active, old) or 0)
    if expires > now_ms then
      return answer('ACTIVE', old, 0, expires, 0, upto)
    end
  end
end

local conf = rcall('HMGET', cfg, 'admit_batch', 'admit_interval_s', 'max_active', 'calm_until_ms')
if mode == 'reject' or rules.open ~= '1' then
  return answer('CLOSED', '', 0, 0)
end
local prequeue = not sale_open(rules, stats, now_ms)
if prequeue and (rules.prequeue_ms == 0 or now_ms < rules.prequeue_ms) then
  return answer('EARLY', '', 0, 0)
end
if prequeue and pre_token == '' then
  return answer('NEED_SEED', '', 0, 0)
end
if sold_out == '1' then
  return answer('SOLD_OUT', '', 0, 0)
end
if rules.pow_bits > 0 then
  if proof == 'missing' then
    return answer('POW_REQUIRED', '', 0, 0)
  end
  -- one use, this user's, this concert's (the key is in the concert's slot),
  -- made for at least the difficulty asked now
  if proof ~= 'ok' or proof_bits < rules.pow_bits or rcall('GET', pow) ~= user then
    return answer('POW_INVALID', '', 0, 0)
  end
  rcall('DEL', pow)
end

if prequeue then
  -- the same user always draws the same key: leaving and coming back
  -- returns to the same place, and nobody can draw twice
  rcall('ZADD', wait, pre_score, pre_token)
  rcall('ZADD', seen, rules.opens_ms + tonumber(ARGV[14]), pre_token)
  rcall('ZADD', draw, 0, pre_key)
  rcall('HSET', users, user, pre_token)
  rcall('HINCRBY', stats, 'entered_total', 1) -- arrivals, beside admissions (the console)
  return answer('PRE', pre_token, 0, 0, 0, pre_score)
end

local ttl_ms, max_ms = tonumber(ARGV[9]), tonumber(ARGV[10])
local score = tonumber(ARGV[15]) + now_us
-- nobody waiting is ever behind a newcomer, in passthrough too, nor behind
-- someone whose lost place is being given back
local settled = tonumber(conf[4] or 0) <= now_ms
local let_in = mode == 'passthrough' and waiting == 0 and settled
if mode == 'fifo' and waiting == 0 and settled then
  local k = tonumber(conf[1] or ARGV[11])
  local interval_ms = tonumber(ARGV[12])
  if conf[2] then
    interval_ms = math.max(1, math.floor(tonumber(conf[2]) * 1000))
  end
  local max_active = tonumber(conf[3] or ARGV[13])
  local room = max_active == 0 or rcall('ZCOUNT', active, '(' .. now_ms, '+inf') < max_active
  if room and tonumber(rcall('GET', calm) or 0) < k then
    if rcall('INCR', calm) == 1 then
      rcall('PEXPIRE', calm, interval_ms)
    end
    let_in = true
  end
end
rcall('HSET', users, user, new_token)
rcall('HINCRBY', stats, 'entered_total', 1)
if let_in then
  local expires = start_session(active, cap, new_token, now_ms, ttl_ms, max_ms)
  rcall('HINCRBY', stats, 'admitted_total', 1)
  if mode == 'passthrough' then
    rcall('HINCRBY', stats, 'passthrough_total', 1)
  end
  -- nobody waited: every place before this one was admitted (or let go)
  if score > upto then
    rcall('HSET', stats, 'admitted_upto', string.format('%.0f', score))
  end
  return answer('IN', new_token, 0, expires, 0, score)
end
rcall('ZADD', wait, score, new_token)
waiting = waiting + 1
local rank = rcall('ZRANK', wait, new_token) + 1
local poll = poll_ms(rank)
rcall('ZADD', seen, now_ms + poll, new_token)
return answer('NEW', new_token, rank, 0, poll, score)
