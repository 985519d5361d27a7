-- load_sold: (re)build a date's sold copy from the database's reservations.
-- Only adds: a seat sold while the database was being read stays sold.
--
-- KEYS[1] sold  SET sold seats of the date
-- ARGV[1..] sold seat numbers
--
-- Returns the size of the sold copy, without the marker.
local rcall = redis.call
local sold = KEYS[1]
rcall('SADD', sold, '0')
for i = 1, #ARGV, 1000 do
  rcall('SADD', sold, unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
return rcall('SCARD', sold) - 1
