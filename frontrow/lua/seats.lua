-- seats: the sold and held seats of a span of one date (a section, or the
-- whole date), for a seat map without touching the database.
--
-- KEYS[1]     sold   BITMAP sold seats of the date, bit 0 set once loaded
-- KEYS[1 + j] holds  ZSET seat -> hold expiry (ms) of each section in the span
-- ARGV[1], ARGV[2] the first and last byte of the bitmap to return (seat n is bit n)
--
-- Returns {loaded, sold, held}: loaded is 0 when the sold copy is missing
-- (load it from the database and ask again); sold is the span's bytes in hex
-- (the client reads bits; hex because replies are decoded as text); held the
-- seats held now.
local sold = KEYS[1]
local now_ms = clock_ms()

local function hex(bytes)
  local out = {}
  for i = 1, #bytes, 4000 do  -- string.byte returns one value per byte: keep the stack small
    local j = math.min(i + 3999, #bytes)
    out[#out + 1] = string.format(string.rep('%02x', j - i + 1), string.byte(bytes, i, j))
  end
  return table.concat(out)
end

local held = {}
for j = 2, #KEYS do
  for _, seat in ipairs(rcall('ZRANGEBYSCORE', KEYS[j], '(' .. now_ms, '+inf')) do
    held[#held + 1] = seat
  end
end
return {rcall('GETBIT', sold, 0), hex(rcall('GETRANGE', sold, ARGV[1], ARGV[2])), held}
