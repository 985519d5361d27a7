-- counts: sold and live held seats of several groups in one call, without
-- reading a seat: dates (for /dates and the metrics) or the sections of one
-- date (for /sections). Holds live in one ZSET per section (seat -> expiry),
-- so live ones are a ZCOUNT; sold seats are a bitmap per date, so a date's
-- or a section's span is one BITCOUNT. O(dates + sections), not O(seats).
--
-- KEYS, group after group: the date's sold BITMAP (bit 0 set once loaded),
--   then the holds ZSETs of the group's sections
-- ARGV[3i - 2] how many holds keys group i has
-- ARGV[3i - 1], ARGV[3i] the group's first and last seat (0, 0: the whole date)
--
-- Returns, per group, {loaded, sold, held}: loaded is 0 when the date's sold
-- copy is missing (load it from the database and ask again).
local now_ms = clock_ms()
local out, at = {}, 1
for i = 1, #ARGV / 3 do
  local n, first, last = tonumber(ARGV[3 * i - 2]), tonumber(ARGV[3 * i - 1]), tonumber(ARGV[3 * i])
  local sold = KEYS[at]
  local loaded = rcall('GETBIT', sold, 0)
  local count
  if last == 0 then
    count = rcall('BITCOUNT', sold) - loaded
  else
    count = rcall('BITCOUNT', sold, first, last, 'BIT')
  end
  local held = 0
  for j = 1, n do
    held = held + rcall('ZCOUNT', KEYS[at + j], '(' .. now_ms, '+inf')
  end
  out[i] = {loaded, count, held}
  at = at + 1 + n
end
return out
