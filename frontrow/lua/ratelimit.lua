-- ratelimit: count one attempt against several fixed-window limits at once
-- (per user, per client address); refuse when any is over its limit.
--
-- KEYS[i]  STRING counter of limit i, expiring with its window
-- ARGV[1]  window (ms)
-- ARGV[1 + i] most attempts allowed by limit i in one window
--
-- Returns 0 when allowed, else the ms until the tightest full window resets.
-- A refused attempt is still counted, so hammering does not pay.
local rcall = redis.call
local window_ms = tonumber(ARGV[1])
local wait_ms = 0
for i, key in ipairs(KEYS) do
  local count = rcall('INCR', key)
  if count == 1 then
    rcall('PEXPIRE', key, window_ms)
  end
  if count > tonumber(ARGV[1 + i]) then
    wait_ms = math.max(wait_ms, rcall('PTTL', key))
  end
end
return wait_ms
