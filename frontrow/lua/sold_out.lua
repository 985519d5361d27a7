-- sold_out: set or clear a concert's sold-out flag from the sold copies of
-- its dates still to come. The copies only ever grow, so a flag derived from
-- them is never cleared while every date is full, whichever payment or
-- repair runs last; a date whose copy is not loaded counts as not full.
--
-- KEYS[1]     stats   HASH of the concert ('sold_out')
-- KEYS[1 + i] sold i  BITMAP sold seats of date i, bit 0 set once loaded
-- ARGV[i]     number of seats of date i
--
-- Returns 1 when the concert is sold out, else 0.
local stats = KEYS[1]
local full = #KEYS > 1
for i = 2, #KEYS do
  local sold = KEYS[i]
  if rcall('GETBIT', sold, 0) == 0 or rcall('BITCOUNT', sold) - 1 < tonumber(ARGV[i - 1]) then
    full = false
    break
  end
end
if full then
  rcall('HSET', stats, 'sold_out', '1')
  return 1
end
rcall('HDEL', stats, 'sold_out')
return 0
