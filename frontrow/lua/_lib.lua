-- _lib: what several scripts share. frontrow/lua/__init__.py puts this in
-- front of every script (Redis scripts cannot load modules), so each
-- script below may call these and `rcall`.
local rcall = redis.call

-- Redis's own clock in ms: every process agrees on it.
local function clock_ms()
  local t = rcall('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Whether `token` is a live session and still `user`'s place; a live one is
-- slid to now + ttl_ms (never past its absolute deadline in `cap`).
-- Returns the session's expiry (ms), or nil when it is not live.
local function live_session(active, cap, users, token, user, ttl_ms, now_ms)
  local expires = tonumber(rcall('ZSCORE', active, token) or 0)
  if expires <= now_ms or rcall('HGET', users, user) ~= token then
    return nil
  end
  local slid = now_ms + ttl_ms
  local deadline = tonumber(rcall('HGET', cap, token) or slid)
  if deadline < slid then
    slid = deadline
  end
  if slid > expires then
    rcall('ZADD', active, 'XX', slid, token)
    expires = slid
  end
  return expires
end

-- When a waiting browser should ask again (ms): half its expected wait
-- (place / admissions per second), at least min_ms, at most max_ms. Asking
-- at half the remaining wait each time, a browser is never told of its
-- turn more than min_ms late while the estimate holds (or is up to twice
-- too long), and a place an hour back costs a handful of polls, not 120.
-- frontrow/queue/core.py:waiting_poll_ms is its twin for the simulator
-- (tests/queue/test_queue.py checks that both agree).
local function poll_interval(place, rate, min_ms, max_ms)
  -- admission paused (k = 0): no wait to halve; 30 ms a place, so the front
  -- still hears within seconds when it starts again
  local wait_ms = place * 60
  if rate > 0 then
    wait_ms = place / rate * 1000
  end
  return math.floor(math.max(min_ms, math.min(max_ms, wait_ms / 2)))
end

-- Start an active session for `token` at now_ms: it slides by ttl_ms on use
-- and never passes now_ms + max_ms (0 = no absolute cap). Returns its expiry.
local function start_session(active, cap, token, now_ms, ttl_ms, max_ms)
  local expires = now_ms + ttl_ms
  if max_ms > 0 then
    expires = math.min(expires, now_ms + max_ms)
    rcall('HSET', cap, token, now_ms + max_ms)
  end
  rcall('ZADD', active, expires, token)
  return expires
end

-- Count one attempt against fixed-window limits (counter key -> most
-- attempts per window; 0 = no limit). Returns 0 when allowed, else the ms
-- until the tightest full window resets. A refused attempt still counts,
-- so hammering does not pay.
local function count_attempt(rate_keys, limits, window_ms)
  local wait_ms = 0
  for i, key in ipairs(rate_keys) do
    local limit = tonumber(limits[i])
    if limit > 0 then
      local count = rcall('INCR', key)
      if count == 1 then
        rcall('PEXPIRE', key, window_ms)
      end
      if count > limit then
        wait_ms = math.max(wait_ms, rcall('PTTL', key))
      end
    end
  end
  return wait_ms
end

-- End one of `user`'s holds: its seat lock (only if it is still this hold),
-- its place in the date's held seats and in the user's holds.
local function drop_hold(hold, holds, uholds, hold_id, seat, user)
  if rcall('GET', hold) == hold_id .. '|' .. user then
    rcall('DEL', hold)
    rcall('ZREM', holds, seat)
  end
  rcall('ZREM', uholds, hold_id)
end

