-- The lobby: games waiting for an opponent ('open') and games in play ('live'), each a sorted
-- set scored by last update (ms), with the entries' JSON in a hash.
-- KEYS  1 open zset  2 live zset  3 info hash
-- ARGV  1 mode
--   update: 2 game id  3 status  4 entry JSON  5 channel  6 change message JSON  7 publish cmd
--   list:   2 most entries per list  3 ttl ms (older entries are pruned)
-- list returns {{open entries...}, {live entries...}}, newest first.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if ARGV[1] == 'update' then
  local g, status = ARGV[2], ARGV[3]
  if status == 'waiting' then
    redis.call('ZADD', KEYS[1], now, g)
    redis.call('ZREM', KEYS[2], g)
    redis.call('HSET', KEYS[3], g, ARGV[4])
  elseif status == 'playing' then
    redis.call('ZREM', KEYS[1], g)
    redis.call('ZADD', KEYS[2], now, g)
    redis.call('HSET', KEYS[3], g, ARGV[4])
  else
    redis.call('ZREM', KEYS[1], g)
    redis.call('ZREM', KEYS[2], g)
    redis.call('HDEL', KEYS[3], g)
  end
  redis.call(ARGV[7], ARGV[5], ARGV[6])
  return 1
end

local cutoff = string.format('(%d', now - tonumber(ARGV[3]))
local out = {}
for i = 1, 2 do
  for _, g in ipairs(redis.call('ZRANGEBYSCORE', KEYS[i], '-inf', cutoff)) do
    redis.call('ZREM', KEYS[i], g)
    redis.call('HDEL', KEYS[3], g)
  end
  local ids = redis.call('ZREVRANGE', KEYS[i], 0, tonumber(ARGV[2]) - 1)
  local entries = {}
  if #ids > 0 then
    for _, e in ipairs(redis.call('HMGET', KEYS[3], unpack(ids))) do
      if e then
        entries[#entries + 1] = e
      end
    end
  end
  out[i] = entries
end
return out
