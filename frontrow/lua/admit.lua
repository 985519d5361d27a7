-- admit: one admission tick. Takes the concert's lease for one interval;
-- the admitter that gets it admits up to k waiting tokens in arrival order,
-- bounded by the active-session cap, dropping tokens that stopped polling.
--
-- With a target booking p99 (cfg 'admit_target_p99_ms', else ARGV[8]; 0 =
-- off), k is not the configured one but stats 'auto_batch', which this
-- script moves within [ARGV[11], ARGV[12]] once per new p99 report
-- (frontrow/pace.py): over the target it drops by a quarter; under 0.8 of
-- it, and only when this tick's batch was full (people are waiting for
-- more), it grows by a tenth. TCP's shape (slow up, fast down), kept gentle
-- because the people admitted now load the booking path minutes later.
--
-- KEYS[1] tick    STRING lease 'taken_at_ms|owner', PX interval
-- KEYS[2] wait    ZSET token -> entered_at
-- KEYS[3] seen    ZSET waiting token -> last poll (ms)
-- KEYS[4] active  ZSET token -> session expiry (ms)
-- KEYS[5] cap     HASH token -> absolute session deadline (ms)
-- KEYS[6] cfg     HASH the sale's rules and live settings: admit_batch, admit_interval_s,
--                 max_active, mode, opens_ms (frontrow/rules.py)
-- KEYS[7] stats   HASH admitted_total, abandoned_total, rate, ticks, last_tick_ms, sold_out,
--                 opened_ms (the opening), batch, auto_batch, auto_report_ms
-- KEYS[8] fresh   ZSET token -> admitted at (ms), until its first poll after
--                 (status.lua); kept one session ttl at most
-- ARGV[1] default admit batch (k)
-- ARGV[2] default admit interval (ms)
-- ARGV[3] default max active (0 = no cap)
-- ARGV[4] session ttl (ms)
-- ARGV[5] absolute session cap (ms, 0 = none)
-- ARGV[6] abandon after (ms)
-- ARGV[7] lease owner (for debugging who ticked)
-- ARGV[8] default target booking p99 (ms, 0 = fixed k)
-- ARGV[9] observed booking p99 (ms), ARGV[10] its report's time (ms, 0 = none)
-- ARGV[11] smallest k, ARGV[12] largest k
-- ARGV[13] seats of the dates on sale neither sold nor held (-1 = not known):
--          at 0 nobody is let in (see below)
-- ARGV[14] 1: nor more than ARGV[13] less one a live session (see below)
--
-- The rules: nobody is admitted before the opening is recorded (_lib.lua
-- sale_open; this tick records it when it is due). Mode 'random' admits
-- uniformly among the present waiting places; 'passthrough' admits every
-- waiting place (the room is switched off: no k, no cap), so nobody who
-- waits stays behind a newcomer; any other mode admits k in line order
-- (pre-queued places first, by lottery key, then arrivals). While every seat
-- on sale is sold or held (ARGV[13] = 0), the tick lets nobody in: a buyer
-- admitted then would find nothing, and keeps a place in line instead, to be
-- let in when a hold ends unpaid or told the concert sold out. With ARGV[14]
-- (FRONTROW_ADMIT_WITHIN_SEATS) a tick also lets in no more than the free
-- seats less one for each live session: those already in will take at least
-- that many. Counting every live session, a buyer who already holds seats
-- too, errs towards letting in fewer, by at most the carts being paid; their
-- payments end their sessions and the next tick corrects it. (enter.lua
-- still admits an arrival to an empty line at once: the API's fifo rule.)
--
-- The admission frontier (stats 'admitted_upto'): the highest score taken
-- from the line in score order, so every place that scores no more was
-- admitted or let go; a token whose lost place scores no more gets its
-- session back (status.lua). Random draws do not move it. While a Redis that
-- lost the line takes it back from the tokens (cfg 'calm_until_ms'), nobody
-- is admitted: the people in it come back first.
--
-- Returns {admitted, abandoned, next_tick_in_ms, opened, frontier}; admitted
-- is -1 when another admitter already ticked in this interval; opened is 1
-- when this call recorded the opening; frontier is -1 before any admission.
-- stats 'batch' is the k of the last tick.
-- Or {'NO_RULES'}: Redis has no rules for the concert; nothing was done.
local tick, wait, seen, active, cap, cfg, stats, fresh =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local rules = sale_rules(cfg)
if not rules then
  return {'NO_RULES'}
end
local mode = rules.mode

local conf = rcall('HMGET', cfg, 'admit_batch', 'admit_interval_s', 'max_active',
  'admit_target_p99_ms', 'calm_until_ms')
local k = tonumber(conf[1] or ARGV[1])
local target = tonumber(conf[4] or ARGV[8])
local k_min, k_max = tonumber(ARGV[11]), tonumber(ARGV[12])
local interval_ms = tonumber(ARGV[2])
if conf[2] then
  interval_ms = math.max(1, math.floor(tonumber(conf[2]) * 1000))
end
local max_active = tonumber(conf[3] or ARGV[3])
local ttl_ms, session_max_ms, abandon_ms = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])

local now_ms = clock_ms()
local frontier = tonumber(rcall('HGET', stats, 'admitted_upto') or -1)
local calm_until = tonumber(conf[5] or 0)
if calm_until > now_ms then
  return {0, 0, math.min(interval_ms, calm_until - now_ms), 0, frontier}
end
local is_open, just_opened = sale_open(rules, stats, now_ms)
if not is_open then
  return {0, 0, math.min(interval_ms, rules.opens_ms - now_ms), 0, frontier}
end
local opened = just_opened and 1 or 0
-- The lease says when it was taken, not only until when: a shorter interval
-- set meanwhile frees it at taken + new interval, not at the old expiry.
local lease = rcall('GET', tick)
local taken = lease and tonumber(string.match(lease, '^(%d+)|'))
if taken and taken + interval_ms > now_ms then
  return {-1, 0, taken + interval_ms - now_ms, 0, frontier}
end
rcall('SET', tick, now_ms .. '|' .. ARGV[7], 'PX', interval_ms)
local st = rcall('HMGET', stats, 'sold_out', 'rate', 'ticks', 'last_tick_ms', 'auto_batch',
  'auto_report_ms')
if st[1] == '1' then
  return {0, 0, interval_ms, opened, frontier}
end
if target > 0 then
  k = math.max(k_min, math.min(k_max, tonumber(st[5] or k)))
end

local quota = k
local free = tonumber(ARGV[13])
if mode == 'passthrough' then
  quota = rcall('ZCARD', wait)
elseif free == 0 then
  quota = 0
else
  local within_seats = ARGV[14] == '1' and free > 0
  if max_active > 0 or within_seats then
    local live = rcall('ZCOUNT', active, '(' .. now_ms, '+inf')
    if max_active > 0 then
      quota = math.min(quota, max_active - live)
    end
    if within_seats then
      quota = math.min(quota, free - live)
    end
    quota = math.max(0, quota)
  end
end

local cutoff = now_ms - abandon_ms
local admitted, abandoned = 0, 0
local function take(token)
  local last = tonumber(rcall('ZSCORE', seen, token) or 0)
  rcall('ZREM', seen, token)
  if last < cutoff then
    abandoned = abandoned + 1
  else
    start_session(active, cap, token, now_ms, ttl_ms, session_max_ms)
    rcall('ZADD', fresh, now_ms, token)
    admitted = admitted + 1
  end
end
while admitted < quota do
  local taken_now
  if mode == 'random' then
    taken_now = rcall('ZRANDMEMBER', wait, quota - admitted)
    for _, token in ipairs(taken_now) do
      rcall('ZREM', wait, token)
      take(token)
    end
  else
    local popped = rcall('ZPOPMIN', wait, quota - admitted)
    taken_now = popped
    for i = 1, #popped, 2 do
      take(popped[i])
    end
    if #popped > 0 then
      frontier = math.max(frontier, tonumber(popped[#popped]))
    end
  end
  if #taken_now == 0 then
    break
  end
end

-- The observed rate only counts ticks where demand exceeded what was
-- admitted; an empty queue says nothing about how fast we can admit.
local configured = k * 1000 / interval_ms
local rate = tonumber(st[2] or configured)
local ticks = tonumber(st[3] or 0)
local last_tick = tonumber(st[4] or 0)
if rcall('ZCARD', wait) > 0 then
  local dt = now_ms - last_tick
  if last_tick == 0 or dt > 3 * interval_ms then
    dt = interval_ms
  end
  local observed = admitted * 1000 / math.max(dt, 1)
  ticks = ticks + 1
  if ticks <= 3 then
    rate = configured
  else
    rate = 0.8 * rate + 0.2 * observed
  end
end
rcall('HSET', stats, 'rate', string.format('%.3f', rate), 'ticks', ticks, 'last_tick_ms', now_ms,
  'batch', k)

local p99, report_ms = tonumber(ARGV[9]), tonumber(ARGV[10])
if target > 0 and report_ms > tonumber(st[6] or 0) then
  local next_k = k
  if p99 > target then
    next_k = math.max(k_min, math.floor(k * 0.75))
  elseif p99 < 0.8 * target and admitted >= k then
    next_k = math.min(k_max, k + math.max(1, math.floor(k / 10)))
  end
  rcall('HSET', stats, 'auto_batch', next_k, 'auto_report_ms', report_ms)
end
if admitted > 0 then
  rcall('HINCRBY', stats, 'admitted_total', admitted)
end
-- an admission nobody came back for within a session is no longer waiting on them
rcall('ZREMRANGEBYSCORE', fresh, '-inf', '(' .. (now_ms - ttl_ms))
if abandoned > 0 then
  rcall('HINCRBY', stats, 'abandoned_total', abandoned)
end
if frontier >= 0 then
  rcall('HSET', stats, 'admitted_upto', string.format('%.0f', frontier))
end
return {admitted, abandoned, interval_ms, opened, frontier}
