-- sweep: trim the indexes of what has already ended by time. Expiry is
-- correct without it (every check compares scores with TIME); the sweep
-- keeps counts exact and memory bounded.
--
-- KEYS[1] active  ZSET token -> session expiry (ms)
-- KEYS[2] cap     HASH token -> absolute session deadline
-- KEYS[3] wait    ZSET token -> entered_at
-- KEYS[4] seen    ZSET waiting token -> last poll (ms)
-- KEYS[5] done    ZSET token -> done at (ms)
-- KEYS[6] stats   HASH expired_total, abandoned_total, users_cursor
-- KEYS[7] users   HASH user -> token
-- KEYS[8] back    ZSET token -> when its lost place was given back
-- ARGV[1] abandon after (ms)
-- ARGV[2] how long DONE tokens are remembered (ms)
-- ARGV[3] most tokens of each kind to remove in this call
-- ARGV[4] how long a given-back token is remembered (ms): a queue token's life
--
-- Each call also walks one HSCAN step of the users hash and forgets users
-- whose token is neither waiting nor live (expired, abandoned, left): enter
-- would give them a new place anyway, and the hash must not grow with every
-- visitor of a long sale.
--
-- Returns {expired, abandoned, stale_seen}; call again while expired or
-- stale_seen equals the limit.
local active, cap, wait, seen, done, stats = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local users, back = KEYS[7], KEYS[8]
local abandon_ms, done_keep_ms, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])

local now_ms = clock_ms()

local expired = rcall('ZRANGEBYSCORE', active, '-inf', now_ms, 'LIMIT', 0, limit)
for _, token in ipairs(expired) do
  rcall('ZREM', active, token)
  rcall('HDEL', cap, token)
end

local abandoned = 0
local stale = rcall('ZRANGEBYSCORE', seen, '-inf', '(' .. (now_ms - abandon_ms), 'LIMIT', 0, limit)
for _, token in ipairs(stale) do
  rcall('ZREM', seen, token)
  abandoned = abandoned + rcall('ZREM', wait, token)
end

rcall('ZREMRANGEBYSCORE', done, '-inf', now_ms - done_keep_ms)
rcall('ZREMRANGEBYSCORE', back, '-inf', now_ms - tonumber(ARGV[4]))

local scan = rcall('HSCAN', users, rcall('HGET', stats, 'users_cursor') or '0', 'COUNT', limit)
rcall('HSET', stats, 'users_cursor', scan[1])
for i = 1, #scan[2], 2 do
  local user, token = scan[2][i], scan[2][i + 1]
  if not rcall('ZSCORE', wait, token)
      and tonumber(rcall('ZSCORE', active, token) or 0) <= now_ms then
    rcall('HDEL', users, user)
  end
end
if #expired > 0 then
  rcall('HINCRBY', stats, 'expired_total', #expired)
end
if abandoned > 0 then
  rcall('HINCRBY', stats, 'abandoned_total', abandoned)
end
return {#expired, abandoned, #stale}
