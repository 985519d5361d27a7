-- admit: one admission tick. Takes the concert's lease for one interval;
-- the admitter that gets it admits up to k waiting tokens in arrival order,
-- bounded by the active-session cap, dropping tokens that stopped polling.
--
-- KEYS[1] tick    STRING lease 'taken_at_ms|owner', PX interval
-- KEYS[2] wait    ZSET token -> entered_at
-- KEYS[3] seen    ZSET waiting token -> last poll (ms)
-- KEYS[4] active  ZSET token -> session expiry (ms)
-- KEYS[5] cap     HASH token -> absolute session deadline (ms)
-- KEYS[6] cfg     HASH live settings: admit_batch, admit_interval_s, max_active
-- KEYS[7] stats   HASH admitted_total, abandoned_total, rate, ticks, last_tick_ms, sold_out
-- ARGV[1] default admit batch (k)
-- ARGV[2] default admit interval (ms)
-- ARGV[3] default max active (0 = no cap)
-- ARGV[4] session ttl (ms)
-- ARGV[5] absolute session cap (ms, 0 = none)
-- ARGV[6] abandon after (ms)
-- ARGV[7] lease owner (for debugging who ticked)
--
-- Returns {admitted, abandoned, next_tick_in_ms}; admitted is -1 when
-- another admitter already ticked in this interval.
local rcall = redis.call
local tick, wait, seen, active, cap, cfg, stats =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]

local conf = rcall('HMGET', cfg, 'admit_batch', 'admit_interval_s', 'max_active')
local k = tonumber(conf[1] or ARGV[1])
local interval_ms = tonumber(ARGV[2])
if conf[2] then
  interval_ms = math.max(1, math.floor(tonumber(conf[2]) * 1000))
end
local max_active = tonumber(conf[3] or ARGV[3])
local ttl_ms, session_max_ms, abandon_ms = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])

local t = rcall('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- The lease says when it was taken, not only until when: a shorter interval
-- set meanwhile frees it at taken + new interval, not at the old expiry.
local lease = rcall('GET', tick)
local taken = lease and tonumber(string.match(lease, '^(%d+)|'))
if taken and taken + interval_ms > now_ms then
  return {-1, 0, taken + interval_ms - now_ms}
end
rcall('SET', tick, now_ms .. '|' .. ARGV[7], 'PX', interval_ms)
local st = rcall('HMGET', stats, 'sold_out', 'rate', 'ticks', 'last_tick_ms')
if st[1] == '1' then
  return {0, 0, interval_ms}
end

local quota = k
if max_active > 0 then
  local live = rcall('ZCOUNT', active, '(' .. now_ms, '+inf')
  quota = math.max(0, math.min(quota, max_active - live))
end

local expires = now_ms + ttl_ms
local deadline = 0
if session_max_ms > 0 then
  deadline = now_ms + session_max_ms
  expires = math.min(expires, deadline)
end
local cutoff = now_ms - abandon_ms
local admitted, abandoned = 0, 0
while admitted < quota do
  local popped = rcall('ZPOPMIN', wait, quota - admitted)
  if #popped == 0 then
    break
  end
  for i = 1, #popped, 2 do
    local token = popped[i]
    local last = tonumber(rcall('ZSCORE', seen, token) or 0)
    rcall('ZREM', seen, token)
    if last < cutoff then
      abandoned = abandoned + 1
    else
      rcall('ZADD', active, expires, token)
      if deadline > 0 then
        rcall('HSET', cap, token, deadline)
      end
      admitted = admitted + 1
    end
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
rcall('HSET', stats, 'rate', string.format('%.3f', rate), 'ticks', ticks, 'last_tick_ms', now_ms)
if admitted > 0 then
  rcall('HINCRBY', stats, 'admitted_total', admitted)
end
if abandoned > 0 then
  rcall('HINCRBY', stats, 'abandoned_total', abandoned)
end
return {admitted, abandoned, interval_ms}
