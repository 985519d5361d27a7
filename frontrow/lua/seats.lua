-- seats: the sold and held seats of several dates in one call, for seat
-- maps and availability counts without touching the database.
--
-- KEYS[2i - 1]  sold i   SET sold seats of date i, with '0' once loaded
-- KEYS[2i]      holds i  ZSET seat -> hold expiry (ms) of date i
-- ARGV[1] '1' to return the seat numbers, '0' for counts only
--
-- Returns, per date, {loaded, sold, held}: loaded is 0 when the sold copy
-- is missing (load it from the database and ask again); sold and held are
-- lists of seat numbers or counts.
local rcall = redis.call
local with_seats = ARGV[1] == '1'
local t = rcall('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local out = {}
for i = 1, #KEYS / 2 do
  local sold, holds = KEYS[2 * i - 1], KEYS[2 * i]
  local loaded = rcall('SISMEMBER', sold, '0')
  if with_seats then
    out[i] = {loaded, rcall('SMEMBERS', sold), rcall('ZRANGEBYSCORE', holds, '(' .. now_ms, '+inf')}
  else
    out[i] = {loaded, rcall('SCARD', sold) - loaded, rcall('ZCOUNT', holds, '(' .. now_ms, '+inf')}
  end
end
return out
