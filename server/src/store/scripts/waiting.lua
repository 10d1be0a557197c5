-- A player's games waiting for an opponent, capped: a sorted set of game ids scored by when
-- each was held (ms, Redis clock). Entries older than the game lifetime are dropped.
-- KEYS  1 waiting zset
-- ARGV  1 mode: 'hold' (2 game id  3 cap  4 ttl ms) or 'release' (2 game id)
-- hold returns {1} when the game is held (added now, or already), else {0, held game ids...}.
-- release returns 1 if the game was held, else 0.
if ARGV[1] == 'release' then
  return redis.call('ZREM', KEYS[1], ARGV[2])
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('(%d', now - ttl))
if redis.call('ZSCORE', KEYS[1], ARGV[2]) or redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], now, ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ttl)
  return {1}
end
local out = {0}
for _, g in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  out[#out + 1] = g
end
return out
