-- status: a queue token's state in one call. Marks a waiting token as
-- present (heartbeat) and slides an active session's expiry.
--
-- KEYS[1] wait    ZSET token -> entered_at (µs)
-- KEYS[2] seen    ZSET waiting token -> last poll (ms)
-- KEYS[3] active  ZSET token -> session expiry (ms)
-- KEYS[4] cap     HASH token -> absolute session deadline (ms)
-- KEYS[5] done    ZSET token -> done at (ms)
-- KEYS[6] stats   HASH counters, 'rate', 'sold_out'
-- ARGV[1] token id
-- ARGV[2] session ttl (ms)
-- ARGV[3] abandon after (ms)
--
-- Returns {state, rank, expires_at_ms, rate, sold_out}
--   state: 'WAITING' | 'ACTIVE' | 'DONE' | 'EXPIRED'; rank is 1-based
local rcall = redis.call
local wait, seen, active, cap, done, stats = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local token, ttl_ms, abandon_ms = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])

local t = rcall('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local live = rcall('HMGET', stats, 'rate', 'sold_out')
local rate, sold_out = live[1] or '', live[2] or ''

if rcall('ZSCORE', done, token) then
  return {'DONE', 0, 0, rate, sold_out}
end

local expires = rcall('ZSCORE', active, token)
if expires then
  expires = tonumber(expires)
  if expires <= now_ms then
    return {'EXPIRED', 0, 0, rate, sold_out}
  end
  local slid = now_ms + ttl_ms
  local deadline = rcall('HGET', cap, token)
  if deadline and tonumber(deadline) < slid then
    slid = tonumber(deadline)
  end
  if slid > expires then
    rcall('ZADD', active, 'XX', slid, token)
    expires = slid
  end
  return {'ACTIVE', 0, expires, rate, sold_out}
end

local rank = rcall('ZRANK', wait, token)
if rank then
  local last = tonumber(rcall('ZSCORE', seen, token) or 0)
  if last < now_ms - abandon_ms then
    rcall('ZREM', wait, token)
    rcall('ZREM', seen, token)
    rcall('HINCRBY', stats, 'abandoned_total', 1)
    return {'EXPIRED', 0, 0, rate, sold_out}
  end
  rcall('ZADD', seen, now_ms, token)
  return {'WAITING', rank + 1, 0, rate, sold_out}
end
return {'EXPIRED', 0, 0, rate, sold_out}
