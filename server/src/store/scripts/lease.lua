-- Instance leases: a sorted set of living lease ids scored by expiry (ms, Redis clock), and a
-- sorted set of the lapsed ones another instance is sweeping, scored by when that claim lapses.
-- A claim moves a lease from the first to the second, so exactly one instance sweeps it, and
-- the lapsed instance announces its presence again only after the sweep has ended (its
-- entries announced earlier would be swept with the old ones).
-- KEYS  1 leases zset   2 sweeps zset
-- ARGV  1 mode:
--   'renew' (2 lease, 3 ttl ms) -> 1 renewed; 2 being swept (nothing changed: wait);
--           0 unknown (first start, or swept): registered now, announce presence again
--   'claim' (2 claim ttl ms)    -> lapsed leases (and lapsed claims) now claimed by the caller
--   'done'  (2 lease)           -> the sweep of the lease ended: forget it
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if ARGV[1] == 'renew' then
  if redis.call('ZSCORE', KEYS[2], ARGV[2]) then
    return 2
  end
  local known = redis.call('ZSCORE', KEYS[1], ARGV[2])
  redis.call('ZADD', KEYS[1], string.format('%d', now + tonumber(ARGV[3])), ARGV[2])
  return known and 1 or 0
end
if ARGV[1] == 'done' then
  redis.call('ZREM', KEYS[1], ARGV[2])
  redis.call('ZREM', KEYS[2], ARGV[2])
  return 1
end
local past = string.format('(%d', now)
local until_ms = string.format('%d', now + tonumber(ARGV[2]))
local claimed = {}
for _, key in ipairs(KEYS) do
  for _, lease in ipairs(redis.call('ZRANGEBYSCORE', key, '-inf', past, 'LIMIT', 0, 100)) do
    claimed[#claimed + 1] = lease
  end
end
for _, lease in ipairs(claimed) do
  redis.call('ZREM', KEYS[1], lease)
  redis.call('ZADD', KEYS[2], until_ms, lease)
end
return claimed
