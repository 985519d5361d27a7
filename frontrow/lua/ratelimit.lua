-- ratelimit: count one attempt against several fixed-window limits at once
-- (per user, per client address); refuse when any is over its limit.
--
-- KEYS[i]  STRING counter of limit i, expiring with its window
-- ARGV[1]  window (ms)
-- ARGV[1 + i] most attempts allowed by limit i in one window
--
-- Returns 0 when allowed, else the ms until the tightest full window resets.
-- A refused attempt is still counted, so hammering does not pay.
return count_attempt(KEYS, {unpack(ARGV, 2)}, tonumber(ARGV[1]))
