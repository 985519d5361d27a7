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
-- its place in the date's held seats and in the user's holds. Returns 1 when
-- it ended a live hold, else 0.
local function drop_hold(hold, holds, uholds, hold_id, seat, user)
  local ended = 0
  if rcall('GET', hold) == hold_id .. '|' .. user then
    rcall('DEL', hold)
    rcall('ZREM', holds, seat)
    ended = 1
  end
  rcall('ZREM', uholds, hold_id)
  return ended
end


-- Whether n more seats would take the user past the ticket limit (0 = none):
-- seats bought in the concert (the bought hash, kept by finalize) plus live
-- holds. Returns the seats bought when they would, else false. The payment's
-- own statement enforces the limit again: this is the early answer.
local function over_ticket_limit(bought, uholds, user, n, limit)
  if limit <= 0 then
    return false
  end
  local paid = tonumber(rcall('HGET', bought, user) or '0')
  if paid + rcall('ZCARD', uholds) + n > limit then
    return paid
  end
  return false
end

-- A user's claim on one seat lasts one hold lifetime from their first hold
-- of it, however often they release it and take it again; then the seat is
-- left to others for another lifetime. claims: HASH seat lock key -> that
-- first hold's deadline (ms). Returns the deadline a new hold of the seat
-- gets (nil: a new claim, now + ttl), or false while it is left to others.
local function claim_deadline(claims, lock, now_ms, ttl_ms)
  local first = tonumber(rcall('HGET', claims, lock))
  if not first or first + ttl_ms <= now_ms then
    return nil
  end
  return first > now_ms and first
end

local function record_claim(claims, lock, deadline, now_ms, ttl_ms)
  rcall('HSET', claims, lock, deadline)
  -- every record is within two lifetimes of now, so this keeps them all
  rcall('PEXPIRE', claims, 2 * ttl_ms)
  if rcall('HLEN', claims) > 64 then -- a busy buyer: forget the records that ended
    local all = rcall('HGETALL', claims)
    for i = 1, #all, 2 do
      if tonumber(all[i + 1]) + ttl_ms <= now_ms then
        rcall('HDEL', claims, all[i])
      end
    end
  end
end

-- The sale's rules, as frontrow/rules.py writes them into the concert's cfg
-- hash: {mode, opens_ms, prequeue_ms, pow_bits, on_sale, open, born_ms}, or
-- nil when the hash has none (a Redis that came back empty): the caller
-- restores them from the database and calls again, and decides nothing
-- meanwhile. born_ms: when this Redis's state of the concert began (rules.lua).
local function sale_rules(cfg)
  local r = rcall('HMGET', cfg, 'rules', 'mode', 'opens_ms', 'prequeue_ms', 'pow_bits',
    'on_sale', 'open', 'born_ms')
  if not r[1] then
    return nil
  end
  return {mode = r[2], opens_ms = tonumber(r[3]), prequeue_ms = tonumber(r[4]),
    pow_bits = tonumber(r[5]), on_sale = r[6], open = r[7] or r[6], born_ms = tonumber(r[8] or 0)}
end

-- Whether the sale is open at now_ms: it has no opening time, or its opening
-- is recorded (stats 'opened_ms'), or it is due, and then this call records
-- it. The record is the one moment every process agrees on: the seed is
-- published, pre-queueing ends and the times become final from it on.
-- Returns open, and whether this very call recorded the opening.
local function sale_open(rules, stats, now_ms)
  if rules.opens_ms == 0 or rcall('HEXISTS', stats, 'opened_ms') == 1 then
    return true, false
  end
  if now_ms < rules.opens_ms then
    return false, false
  end
  rcall('HSETNX', stats, 'opened_ms', now_ms)
  return true, true
end

-- For the scripts that hold and pay: nil while the sale is open, else why
-- not: 'NO_RULES' (restore them), or the opening (ms) still to come.
local function booking_closed(cfg, stats, now_ms)
  local rules = sale_rules(cfg)
  if not rules then
    return 'NO_RULES'
  end
  if sale_open(rules, stats, now_ms) then
    return nil
  end
  return rules.opens_ms
end
