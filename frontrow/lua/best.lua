-- best: hold the best block of `n` adjacent free seats of one row for one
-- user, all or none: rows are tried in the order given (the venue's
-- section order, then row), and within the first row that has a block, the
-- block closest to the row's centre wins. The token's session check (slid,
-- as a poll slides it) and the rate limits are part of the same call.
--
-- KEYS[1] sold    BITMAP sold seats of the date, bit 0 set once loaded
-- KEYS[2] holds   ZSET seat -> hold expiry (ms), the date's held seats
-- KEYS[3] uholds  ZSET hold_id -> hold expiry (ms), this user's holds
-- KEYS[4] active  ZSET token -> session expiry (ms)
-- KEYS[5] cap     HASH token -> absolute session deadline (ms)
-- KEYS[6] users   HASH user -> token
-- KEYS[7], KEYS[8] STRING rate counters, per user and per address
-- KEYS[9] stats   HASH the concert's counters: held_total counts seats held
-- ARGV[1] n, ARGV[2] user id, ARGV[3] hold ttl (ms), ARGV[4] most holds per user
-- ARGV[5] the seat lock key without the seat number (…:hold:<schedule>:);
--         the locks are the date's own keys, in the concert's hash slot, but
--         which ones is only known here
-- ARGV[6] the hold id without the seat (h_<concert>.<schedule>.)
-- ARGV[7] the rows, best first: 'rank,first seat,seat count,2 x row centre;'
--   groups (a row may come in several: gaps, or seats over a price cap),
--   read only as far as the first row that has a block
-- ARGV[8] token id, ARGV[9] session ttl (ms)
-- ARGV[10] rate window (ms), ARGV[11], ARGV[12] most attempts of KEYS[7], KEYS[8] (0 = no limit)
-- ARGV[13 .. 12 + n] a random suffix for each hold id
--
-- Returns {'HELD', expires_at_ms, seat, hold_id, seat, hold_id, ...}
--   | {'NONE'} | {'LIMIT'} | {'RELOAD'} (the sold copy is missing)
--   | {'NOT_ACTIVE'} (the session is not live: nothing counted)
--   | {'RATE', ms to wait}
local sold, holds, uholds = KEYS[1], KEYS[2], KEYS[3]
local n, user, ttl_ms, max_holds = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local lock_prefix, id_prefix = ARGV[5], ARGV[6]

local now_ms = clock_ms()
if not live_session(KEYS[4], KEYS[5], KEYS[6], ARGV[8], user, tonumber(ARGV[9]), now_ms) then
  return {'NOT_ACTIVE'}
end
if rcall('GETBIT', sold, 0) == 0 then
  return {'RELOAD'}
end
local wait_ms = count_attempt({KEYS[7], KEYS[8]}, {ARGV[11], ARGV[12]}, tonumber(ARGV[10]))
if wait_ms > 0 then
  return {'RATE', wait_ms}
end
rcall('ZREMRANGEBYSCORE', uholds, '-inf', now_ms)
if rcall('ZCARD', uholds) + n > max_holds then
  return {'LIMIT'}
end

local taken = {}
for _, seat in ipairs(rcall('ZRANGEBYSCORE', holds, '(' .. now_ms, '+inf')) do
  taken[tonumber(seat)] = true
end

local best, best_distance, best_rank
for r, f, c, m in string.gmatch(ARGV[7], '(%d+),(%d+),(%d+),(%d+);') do
  local rank, first, count, centre2 = tonumber(r), tonumber(f), tonumber(c), tonumber(m)
  if best_rank and rank ~= best_rank then
    break -- an earlier row has a block: it is better than anything further back
  end
  local lo = math.floor(first / 8)
  local bytes = rcall('GETRANGE', sold, lo, math.floor((first + count - 1) / 8))
  local free = 0
  for seat = first, first + count - 1 do
    local byte = string.byte(bytes, math.floor(seat / 8) - lo + 1) or 0
    local is_sold = math.floor(byte / 2 ^ (7 - seat % 8)) % 2 == 1
    if is_sold or taken[seat] then
      free = 0
    else
      free = free + 1
      if free >= n then
        local start = seat - n + 1
        local distance = math.abs(2 * start + n - 1 - centre2)
        if not best_distance or distance < best_distance then
          best, best_distance, best_rank = start, distance, rank
        end
      end
    end
  end
end
if not best then
  return {'NONE'}
end

local expires = now_ms + ttl_ms
local out = {'HELD', expires}
for j = 0, n - 1 do
  local seat = best + j
  local hold_id = id_prefix .. seat .. '.' .. ARGV[13 + j]
  rcall('SET', lock_prefix .. seat, hold_id .. '|' .. user, 'PX', ttl_ms)
  rcall('ZADD', holds, expires, seat)
  rcall('ZADD', uholds, expires, hold_id)
  out[#out + 1] = seat
  out[#out + 1] = hold_id
end
rcall('PEXPIRE', uholds, ttl_ms + 60000)
rcall('HINCRBY', KEYS[9], 'held_total', n)
return out
