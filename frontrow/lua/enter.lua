-- enter: take a place in a concert's waiting queue, one place per user.
-- A user who already holds a live place (waiting and present, or active)
-- gets that place back instead of a second one.
--
-- KEYS[1] wait    ZSET token -> entered_at (µs)
-- KEYS[2] seen    ZSET waiting token -> last poll (ms)
-- KEYS[3] users   HASH user -> token
-- KEYS[4] active  ZSET token -> session expiry (ms)
-- KEYS[5] cfg     HASH live settings ('open')
-- KEYS[6] stats   HASH counters, 'rate', 'sold_out'
-- ARGV[1] user id
-- ARGV[2] token id to use for a new place
-- ARGV[3] '1' when the concert is open by default, else '0'
-- ARGV[4] abandon after (ms): a waiting place not polled for this long is lost
--
-- Returns {outcome, token, rank, expires_at_ms, rate, sold_out}
--   outcome: 'NEW' | 'WAITING' | 'ACTIVE' (an existing place) | 'CLOSED'
--            | 'SOLD_OUT' (no new place: nothing is left to sell)
local rcall = redis.call
local wait, seen, users, active, cfg, stats = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local user, new_token = ARGV[1], ARGV[2]
local default_open, abandon_ms = ARGV[3], tonumber(ARGV[4])

local t = rcall('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local live = rcall('HMGET', stats, 'rate', 'sold_out')
local rate, sold_out = live[1] or '', live[2] or ''

local old = rcall('HGET', users, user)
if old then
  local rank = rcall('ZRANK', wait, old)
  if rank then
    local last = tonumber(rcall('ZSCORE', seen, old) or 0)
    if last >= now_ms - abandon_ms then
      rcall('ZADD', seen, now_ms, old)
      return {'WAITING', old, rank + 1, 0, rate, sold_out}
    end
    -- the old place was abandoned: it is lost, as it would be at admission
    rcall('ZREM', wait, old)
    rcall('ZREM', seen, old)
    rcall('HINCRBY', stats, 'abandoned_total', 1)
  else
    local expires = tonumber(rcall('ZSCORE', active, old) or 0)
    if expires > now_ms then
      return {'ACTIVE', old, 0, expires, rate, sold_out}
    end
  end
end

local open = rcall('HGET', cfg, 'open') or default_open
if open ~= '1' then
  return {'CLOSED', '', 0, 0, rate, sold_out}
end
if sold_out == '1' then
  return {'SOLD_OUT', '', 0, 0, rate, sold_out}
end
rcall('ZADD', wait, now_us, new_token)
rcall('ZADD', seen, now_ms, new_token)
rcall('HSET', users, user, new_token)
return {'NEW', new_token, rcall('ZRANK', wait, new_token) + 1, 0, rate, sold_out}
