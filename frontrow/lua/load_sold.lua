-- load_sold: (re)build a date's sold copy from the database's reservations.
-- Only adds: a seat sold while the database was being read stays sold.
--
-- KEYS[1] sold  SET sold seats of the date
-- KEYS[2] stats HASH of the concert ('sold_out')
-- ARGV[1] '1' when the whole concert is sold out, '0' when a seat is left
--         (the database is the truth: a catalog import may add dates)
-- ARGV[2..] sold seat numbers
--
-- Returns the size of the sold copy, without the marker.
local rcall = redis.call
local sold, stats = KEYS[1], KEYS[2]
rcall('SADD', sold, '0')
for i = 2, #ARGV, 1000 do
  rcall('SADD', sold, unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
if ARGV[1] == '1' then
  rcall('HSET', stats, 'sold_out', '1')
else
  rcall('HDEL', stats, 'sold_out')
end
return rcall('SCARD', sold) - 1
