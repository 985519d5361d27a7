-- best: hold the best block of `n` adjacent free seats of one row for one
-- user, all or none: rows are tried in the order given (the venue's
-- section order, then row), and within the first row that has a block, the
-- block closest to the row's centre wins. The token's session check (slid,
-- as a poll slides it) and the rate limits are part of the same call.
--
-- KEYS[1] sold    BITMAP sold seats of the date, bit 0 set once loaded
-- KEYS[2] uholds  ZSET hold_id -> hold expiry (ms), this user's holds
-- KEYS[3] active  ZSET token -> session expiry (ms)
-- KEYS[4] cap     HASH token -> absolute session deadline (ms)
-- KEYS[5] users   HASH user -> token
-- KEYS[6], KEYS[7] STRING rate counters, per user and per address
-- KEYS[8] stats   HASH the concert's counters: held_total counts seats held
-- KEYS[9] cfg    HASH the sale's rules: nothing is held before the opening
-- KEYS[10] bought HASH user -> seats bought in the concert (the ticket limit)
-- KEYS[11] claims HASH seat lock -> deadline of this user's first hold of it:
--          a seat this user held within a lifetime is not picked again
-- KEYS[12] skip   HASH '<rows id>:<n>' -> where in ARGV[7] a walk for n seats
--          starts: no row before it has n unsold seats side by side. A sold
--          seat is never unsold, so a row found so stays so, and a late
--          buyer does not walk the thousand rows sold in front of the free ones.
--          '<rows id>:<n>:busy' -> '<build>:<point>': no row before the point
--          has n free seats side by side in this build of KEYS[13] (held_build)
-- KEYS[13] held   BITMAP seats of the date that may be held (bit 0 = built):
--          every live hold's seat, and for a moment some that ended; rebuilt
--          here from the holds ZSETs (see below)
-- KEYS[14] taken  BITMAP this call's scratch: sold or maybe held
-- KEYS[14 + s] holds ZSET seat -> hold expiry (ms) of the venue's section s,
--          every section of the date (a rebuild of KEYS[13] reads them all)
-- ARGV[1] n, ARGV[2] user id, ARGV[3] hold ttl (ms), ARGV[4] most holds per user
-- ARGV[5] the seat lock key without the seat number (…:hold:<schedule>:);
--         the locks are the date's own keys, in the concert's hash slot, but
--         which ones is only known here
-- ARGV[6] the hold id without the seat (h_<concert>.<schedule>.)
-- ARGV[7] the rows, best first: 'section,rank,first seat,seat count,2 x row
--   centre;' groups (section: s of KEYS[14 + s]; a row may come in several:
--   gaps, or seats over a price cap), read only as far as the first row that
--   has a block
-- ARGV[8] token id, ARGV[9] session ttl (ms)
-- ARGV[10] rate window (ms), ARGV[11], ARGV[12] most attempts of KEYS[6], KEYS[7] (0 = no limit)
-- ARGV[13] most seats bought plus held per user in this concert (0 = no limit)
-- ARGV[14] the rows' id (the same for the same ARGV[7])
-- ARGV[15 .. 14 + n] a random suffix for each hold id
--
-- Returns {'HELD', expires_at_ms, seat, hold_id, seat, hold_id, ...}
--   | {'NONE'} | {'LIMIT'} | {'RELOAD'} (the sold copy is missing)
--   | {'TICKET_LIMIT', seats bought}
--   | {'NOT_ACTIVE'} (the session is not live: nothing counted)
--   | {'RATE', ms to wait} | {'SALE_NOT_OPEN', the opening (ms)} | {'NO_RULES'}
local sold, uholds = KEYS[1], KEYS[2]
local n, user, ttl_ms, max_holds = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local lock_prefix, id_prefix = ARGV[5], ARGV[6]

local now_ms = clock_ms()
local closed = booking_closed(KEYS[9], KEYS[8], now_ms)
if closed == 'NO_RULES' then
  return {'NO_RULES'}
elseif closed then
  return {'SALE_NOT_OPEN', closed}
end
if not live_session(KEYS[3], KEYS[4], KEYS[5], ARGV[8], user, tonumber(ARGV[9]), now_ms) then
  return {'NOT_ACTIVE'}
end
if rcall('GETBIT', sold, 0) == 0 then
  return {'RELOAD'}
end
local wait_ms = count_attempt({KEYS[6], KEYS[7]}, {ARGV[11], ARGV[12]}, tonumber(ARGV[10]))
if wait_ms > 0 then
  return {'RATE', wait_ms}
end
rcall('ZREMRANGEBYSCORE', uholds, '-inf', now_ms)
if rcall('ZCARD', uholds) + n > max_holds then
  return {'LIMIT'}
end
local paid = over_ticket_limit(KEYS[10], uholds, user, n, tonumber(ARGV[13]))
if paid then
  return {'TICKET_LIMIT', paid}
end

local claimed = {} -- seats this user may not hold again
local claims = rcall('HGETALL', KEYS[11])
for i = 1, #claims, 2 do
  local lock = claims[i]
  if string.sub(lock, 1, #lock_prefix) == lock_prefix
      and tonumber(claims[i + 1]) + ttl_ms > now_ms then
    claimed[#claimed + 1] = tonumber(string.sub(lock, #lock_prefix + 1))
  end
end

-- A row's seats as one character a seat, '1' taken and '0' not, so that
-- runs of free seats are found by string.find at C speed, not by a Lua
-- step a seat.
local BIT = {128, 64, 32, 16, 8, 4, 2, 1} -- seat n is bit 7 - n % 8 of its byte
local CHARS = {} -- a byte's 8 characters, made once a call for each byte seen
local function seat_chars(bytes, lo, hi, first, count)
  local parts = {}
  for i = 1, hi - lo + 1 do
    local byte = string.byte(bytes, i) or 0 -- past the bitmap's end: unsold
    local chars = CHARS[byte]
    if not chars then
      local t = {}
      for b = 1, 8 do
        t[b] = byte % (BIT[b] + BIT[b]) >= BIT[b] and '1' or '0'
      end
      chars = table.concat(t)
      CHARS[byte] = chars
    end
    parts[i] = chars
  end
  local offset = first - lo * 8 + 1 -- the row's first seat in the bytes' characters
  return string.sub(table.concat(parts), offset, offset + count - 1)
end

-- Held seats come from a bitmap, not from each section's holds: reading a
-- section's live holds (a ZRANGEBYSCORE and a table of them) every call
-- took Redis from 0.2 to 1.5 ms a call as a rush's holds built up in the
-- front sections (python -m bench.best). Every live hold's seat is set in
-- it: hold.lua and this script set the bit with the hold. A hold that ended
-- leaves its bit until the bitmap is rebuilt from the holds ZSETs
-- (O(sections + live holds)): at once when one ended early anywhere in the
-- concert (release, leave, a payment's other holds: they count 'freed' in
-- stats), else when HELD_REBUILD_MS have passed (holds that ran out).
local HELD_REBUILD_MS = 1000
local held = KEYS[13]
local built = rcall('HMGET', KEYS[12], 'held_at', 'held_freed', 'held_build')
local build = built[3] or '0'
local freed = rcall('HGET', KEYS[8], 'freed') or '0'
if tonumber(built[1] or 0) + HELD_REBUILD_MS <= now_ms or built[2] ~= freed
    or rcall('GETBIT', held, 0) == 0 then
  rcall('DEL', held)
  rcall('SETBIT', held, 0, 1)
  for s = 15, #KEYS do
    for _, seat in ipairs(rcall('ZRANGEBYSCORE', KEYS[s], '(' .. now_ms, '+inf')) do
      rcall('SETBIT', held, seat, 1)
    end
  end
  build = tostring(rcall('HINCRBY', KEYS[12], 'held_build', 1))
  rcall('HSET', KEYS[12], 'held_at', now_ms, 'held_freed', freed)
end

-- The whole sold copy in one read (6 KB for 50,000 seats): a late buyer
-- passes hundreds of rows, and a call to Redis for each row's bytes cost
-- more than the rest of the walk. Sold or held, the same: one BITOP.
local bitmap = rcall('GET', sold) or ''
rcall('BITOP', 'OR', KEYS[14], sold, held)
local takenmap = rcall('GET', KEYS[14]) or ''
local rows, skip_field = ARGV[7], ARGV[14] .. ':' .. n
local blank = string.rep('0', n) -- n free seats side by side
local skips = rcall('HMGET', KEYS[12], skip_field, skip_field .. ':busy')
local from = tonumber(skips[1] or 1)
-- Between two builds of the held bitmap a seat only becomes taken, so a
-- row with no n free seats side by side stays so until the next build:
-- walks of this build start past such rows (the build and the point,
-- '<build>:<point>'). In a rush the rows in front are held by the buyers
-- paying for them; every buyer walked them again.
local start, passed = from, skips[2]
if passed then
  local sep = string.find(passed, ':', 1, true)
  if string.sub(passed, 1, sep - 1) == build then
    start = math.max(from, tonumber(string.sub(passed, sep + 1)))
  end
end
local pos, skip_to, pass_to = start, from, start
local best, best_distance, best_rank, best_section
while true do
  local at = pos
  local _, stop, sec, r, f, c, m = string.find(rows, '^(%d+),(%d+),(%d+),(%d+),(%d+);', pos)
  if not stop then
    break
  end
  pos = stop + 1
  local section, rank, first, count = tonumber(sec), tonumber(r), tonumber(f), tonumber(c)
  local centre2 = tonumber(m)
  if best_rank and rank ~= best_rank then
    break -- an earlier row has a block: it is better than anything further back
  end
  local lo, hi = math.floor(first / 8), math.floor((first + count - 1) / 8)
  -- A row whose bytes are all there and all set is sold out: skipped at C
  -- speed. As a date sells from the front, most rows a late buyer passes
  -- are such rows. (Bytes past the bitmap's end are unsold seats.) A row
  -- whose seats are all sold or held is passed as fast, and walked again
  -- after the held bitmap's next build: holds end.
  local bytes = string.sub(bitmap, lo + 1, hi + 1)
  local busy = string.sub(takenmap, lo + 1, hi + 1)
  local roomy, blocked = false, true
  if #bytes > hi - lo and not string.find(bytes, '[^\255]') then
    count = 0
  elseif #busy > hi - lo and not string.find(busy, '[^\255]') then
    count, roomy = 0, true
  end
  if count > 0 then
    roomy = roomy or string.find(seat_chars(bytes, lo, hi, first, count), blank, 1, true) ~= nil
    local taken = seat_chars(busy, lo, hi, first, count)
    local from_i, to_i = string.find(taken, blank, 1, true)
    blocked = not from_i -- for everyone: seats this buyer held count below
    for _, seat in ipairs(claimed) do
      if from_i and seat >= first and seat < first + count then
        local i = seat - first + 1
        taken = string.sub(taken, 1, i - 1) .. '1' .. string.sub(taken, i + 1)
        from_i, to_i = string.find(taken, blank, 1, true)
      end
    end
    -- The block of a run of free seats nearest the row's centre is the
    -- run's start or end or the centred block; the first of two as near.
    while from_i do
      _, to_i = string.find(taken, '^0*', to_i + 1)
      local centred = math.floor((centre2 - n + 1) / 2)
      centred = math.min(math.max(centred, first + from_i - 1), first + to_i - n)
      local distance = math.abs(2 * centred + n - 1 - centre2)
      if not best_distance or distance < best_distance then
        best, best_distance, best_rank, best_section = centred, distance, rank, section
      end
      from_i, to_i = string.find(taken, blank, to_i + 1, true)
    end
  end
  if skip_to == at and not roomy then
    skip_to = pos
  end
  if pass_to == at and blocked then
    pass_to = pos
  end
end
if skip_to > from then
  rcall('HSET', KEYS[12], skip_field, skip_to)
end
if pass_to > start then
  rcall('HSET', KEYS[12], skip_field .. ':busy', build .. ':' .. pass_to)
end
if not best then
  return {'NONE'}
end

local expires = now_ms + ttl_ms
local out = {'HELD', expires}
for j = 0, n - 1 do
  local seat = best + j
  local hold_id = id_prefix .. seat .. '.' .. ARGV[15 + j]
  rcall('SET', lock_prefix .. seat, hold_id .. '|' .. user, 'PX', ttl_ms)
  record_claim(KEYS[11], lock_prefix .. seat, expires, now_ms, ttl_ms)
  rcall('ZADD', KEYS[14 + best_section], expires, seat)
  rcall('SETBIT', held, seat, 1)
  rcall('ZADD', uholds, expires, hold_id)
  out[#out + 1] = seat
  out[#out + 1] = hold_id
end
rcall('PEXPIRE', uholds, ttl_ms + 60000)
rcall('HINCRBY', KEYS[8], 'held_total', n)
return out
