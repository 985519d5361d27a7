-- lottery: a concert's lottery as the public sees it. The seed is shown only
-- once the opening is recorded (this call records it when it is due), by
-- the same record that ends pre-queueing: no entry can be pre-queued after
-- anyone could read the seed.
--
-- KEYS[1] cfg    HASH the sale's rules (seed, commitment, prequeue_ms, opens_ms)
-- KEYS[2] stats  HASH 'opened_ms' once the opening is recorded
-- KEYS[3] draw   ZSET the pre-queued places' lottery keys
--
-- Returns {'NO_RULES'} | {'NONE'} (no pre-queue scheduled) |
--   {'LOTTERY', prequeue_ms, opens_ms, commitment, seed ('' until the opening),
--    entries (-1 until the opening)}
local cfg, stats, draw = KEYS[1], KEYS[2], KEYS[3]

local rules = sale_rules(cfg)
if not rules then
  return {'NO_RULES'}
end
local secret = rcall('HMGET', cfg, 'seed', 'commitment')
if rules.prequeue_ms == 0 or not secret[1] or secret[1] == '' then
  return {'NONE'}
end
if sale_open(rules, stats, clock_ms()) then
  return {'LOTTERY', rules.prequeue_ms, rules.opens_ms, secret[2], secret[1], rcall('ZCARD', draw)}
end
return {'LOTTERY', rules.prequeue_ms, rules.opens_ms, secret[2], '', -1}
