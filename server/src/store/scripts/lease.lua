-- Instance leases: a sorted set of lease ids scored by expiry (ms, Redis clock).
-- KEYS  1 leases zset
-- ARGV  1 mode: 'renew' (2 lease, 3 ttl ms) -> 1 if the lease was still registered, else 0
--               'expired' -> lease ids whose expiry has passed
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if ARGV[1] == 'renew' then
  local known = redis.call('ZSCORE', KEYS[1], ARGV[2])
  redis.call('ZADD', KEYS[1], string.format('%d', now + tonumber(ARGV[3])), ARGV[2])
  return known and 1 or 0
end
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', string.format('(%d', now))
