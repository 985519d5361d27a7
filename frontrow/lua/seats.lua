-- seats: the sold and held seats of several dates in one call, for seat
-- maps and availability counts without touching the database.
--
-- KEYS[2i - 1]  sold i   BITMAP sold seats of date i, bit 0 set once loaded
-- KEYS[2i]      holds i  ZSET seat -> hold expiry (ms) of date i
-- ARGV[1]       '1' for the seats themselves, '0' for counts only
-- ARGV[2i], ARGV[2i + 1]  with seats: the first and last byte of date i's
--               bitmap to return (a section's span; seat n is bit n)
--
-- Returns, per date, {loaded, sold, held}: loaded is 0 when the sold copy
-- is missing (load it from the database and ask again). With seats, sold is
-- the bitmap's bytes in hex (the client reads bits; hex because replies are
-- decoded as text) and held the list of held seats; else both are counts.
local with_seats = ARGV[1] == '1'
local now_ms = clock_ms()

local function hex(bytes)
  local out = {}
  for i = 1, #bytes, 4000 do  -- string.byte returns one value per byte: keep the stack small
    local j = math.min(i + 3999, #bytes)
    out[#out + 1] = string.format(string.rep('%02x', j - i + 1), string.byte(bytes, i, j))
  end
  return table.concat(out)
end

local out = {}
for i = 1, #KEYS / 2 do
  local sold, holds = KEYS[2 * i - 1], KEYS[2 * i]
  local loaded = rcall('GETBIT', sold, 0)
  if with_seats then
    local bytes = rcall('GETRANGE', sold, ARGV[2 * i], ARGV[2 * i + 1])
    out[i] = {loaded, hex(bytes), rcall('ZRANGEBYSCORE', holds, '(' .. now_ms, '+inf')}
  else
    out[i] = {loaded, rcall('BITCOUNT', sold) - loaded, rcall('ZCOUNT', holds, '(' .. now_ms, '+inf')}
  end
end
return out
