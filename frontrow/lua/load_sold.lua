-- load_sold: (re)build a date's sold copy from the database's reservations.
-- Only adds: a seat sold while the database was being read stays sold.
--
-- KEYS[1] sold  BITMAP bit n = seat n sold; bit 0 = the copy is loaded
-- ARGV[1..] sold seat numbers
--
-- Returns the number of seats sold.
local sold = KEYS[1]
rcall('SETBIT', sold, 0, 1)
for i = 1, #ARGV do
  rcall('SETBIT', sold, ARGV[i], 1)
end
return rcall('BITCOUNT', sold) - 1
