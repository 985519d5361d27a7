-- rules: write a concert's sale rules and live settings into its cfg hash,
-- whole, as the database has them (frontrow/rules.py). 'restore' writes
-- them only where Redis has none (a Redis that came back empty, or a
-- concert not seen since this version); 'change' (the admin PATCH, inside
-- its database transaction, and the catalog import) writes them always, but
-- first refuses, atomically with every entry and admission tick, to move
-- the sale's times once the opening is recorded, or to move the opening
-- earlier once anyone is pre-queued.
--
-- The first rules written into a Redis mark when its state of the concert
-- began (cfg 'born_ms'): a token issued before it took its place
-- in a Redis that has lost it, and gets it back (status.lua). With the
-- admission frontier the database kept, admission and going straight in
-- wait a moment (cfg 'calm_until_ms') for the people in line to come back.
--
-- KEYS[1] cfg    HASH the rules ('rules' marks them present) and live settings
-- KEYS[2] stats  HASH 'opened_ms' once the opening is recorded
-- KEYS[3] draw   ZSET the pre-queued places' lottery keys
-- ARGV[1] 'restore' | 'change'
-- ARGV[2], ARGV[3] opens_at and prequeue_from before the change, as the
--         database had them (ms, 0 = none): judged by when Redis has none
-- ARGV[4], ARGV[5] the new opens_at and prequeue_from (ms, 0 = none)
-- ARGV[6] the admission frontier the database kept ('' = none)
-- ARGV[7] how long admission waits after rules came back into an empty Redis (ms)
-- ARGV[8], ARGV[9], ... field, value pairs; an empty value deletes the field
--         (a live setting that is not set falls back to the environment's)
--
-- Returns 'OK' | 'KEPT' (restore: rules were there) | 'SALE_STARTED' | 'PREQUEUE_TAKEN'
local cfg, stats, draw = KEYS[1], KEYS[2], KEYS[3]
local how = ARGV[1]
local new_opens, new_prequeue = tonumber(ARGV[4]), tonumber(ARGV[5])

local current = sale_rules(cfg)
if how == 'restore' and current then
  return 'KEPT'
end
current = current or {opens_ms = tonumber(ARGV[2]), prequeue_ms = tonumber(ARGV[3])}
local moved = current.opens_ms ~= new_opens or current.prequeue_ms ~= new_prequeue
if how == 'change' and moved then
  if sale_open(current, stats, clock_ms()) and current.opens_ms > 0 then
    return 'SALE_STARTED'
  end
  local earlier = current.opens_ms > 0 and (new_opens == 0 or new_opens < current.opens_ms)
  if earlier and rcall('ZCARD', draw) > 0 then
    return 'PREQUEUE_TAKEN'
  end
end
for i = 8, #ARGV, 2 do
  if how == 'restore' then
    -- a setting Redis already has was set while the database was away: keep it
    if ARGV[i + 1] ~= '' then
      rcall('HSETNX', cfg, ARGV[i], ARGV[i + 1])
    end
  elseif ARGV[i + 1] == '' then
    rcall('HDEL', cfg, ARGV[i])
  else
    rcall('HSET', cfg, ARGV[i], ARGV[i + 1])
  end
end
rcall('HSET', cfg, 'rules', '1')
local now_ms = clock_ms()
if rcall('HSETNX', cfg, 'born_ms', now_ms) == 1 then
  if ARGV[6] ~= '' then
    rcall('HSETNX', stats, 'admitted_upto', ARGV[6])
    rcall('HSET', cfg, 'calm_until_ms', now_ms + tonumber(ARGV[7]))
  end
end
return 'OK'
