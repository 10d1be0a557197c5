-- The quick-match queue: a sorted set of waiting players scored by their ticket's last refresh
-- (ms), tickets' JSON in a hash. Pairing pops the other ticket in the same atomic step, so no
-- ticket is ever paired twice.
-- A popped ticket's player is noted in the paired set (scored by when) for one freshness
-- period: the news of the match travels to the player's instance by pub/sub, and until it
-- arrives a refresh must not take the ticket for lost and queue the player again (who would
-- then be paired a second time).
-- A player renamed while waiting has the new name in the names hash, beside the ticket (whose
-- JSON is the instance's to read, not this script's): a pairing hands it back with the ticket.
-- KEYS  1 queue zset  2 tickets hash  3 paired zset  4 names hash
-- ARGV  1 mode
--   enqueue: 2 player  3 ticket JSON  4 freshness ms
--            -> {'queued'} or {'paired', other ticket, its player's name now or ''}
--   cancel:  2 player -> 1 if it was queued
--   rename:  2 player  3 name -> 1 if it is queued
--   queued:  2 player  3 freshness ms -> 1 if it is queued and refreshed within that time
--   refresh: 2 freshness ms  3.. players -> the players neither queued nor just paired
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local mode = ARGV[1]
if mode == 'enqueue' then
  local stale = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', string.format('(%d', now - tonumber(ARGV[4])))
  for _, p in ipairs(stale) do
    redis.call('ZREM', KEYS[1], p)
    redis.call('HDEL', KEYS[2], p)
    redis.call('HDEL', KEYS[4], p)
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', string.format('(%d', now - tonumber(ARGV[4])))
  if not redis.call('ZSCORE', KEYS[1], ARGV[2]) then
    local first = redis.call('ZRANGE', KEYS[1], 0, 0)
    if #first > 0 then
      local other = redis.call('HGET', KEYS[2], first[1])
      local name = redis.call('HGET', KEYS[4], first[1])
      redis.call('ZREM', KEYS[1], first[1])
      redis.call('HDEL', KEYS[2], first[1])
      redis.call('HDEL', KEYS[4], first[1])
      redis.call('ZADD', KEYS[3], now, first[1])
      if other then
        return {'paired', other, name or ''}
      end
    end
  end
  redis.call('ZADD', KEYS[1], now, ARGV[2])
  redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
  -- The ticket carries the name as of now.
  redis.call('HDEL', KEYS[4], ARGV[2])
  return {'queued'}
elseif mode == 'cancel' then
  redis.call('HDEL', KEYS[2], ARGV[2])
  redis.call('HDEL', KEYS[4], ARGV[2])
  return redis.call('ZREM', KEYS[1], ARGV[2])
elseif mode == 'queued' then
  local at = redis.call('ZSCORE', KEYS[1], ARGV[2])
  if at and tonumber(at) >= now - tonumber(ARGV[3]) then
    return 1
  end
  return 0
elseif mode == 'rename' then
  if redis.call('HEXISTS', KEYS[2], ARGV[2]) == 0 then
    return 0
  end
  redis.call('HSET', KEYS[4], ARGV[2], ARGV[3])
  return 1
end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', string.format('(%d', now - tonumber(ARGV[2])))
local missing = {}
for i = 3, #ARGV do
  if redis.call('ZSCORE', KEYS[1], ARGV[i]) then
    redis.call('ZADD', KEYS[1], now, ARGV[i])
  elseif not redis.call('ZSCORE', KEYS[3], ARGV[i]) then
    missing[#missing + 1] = ARGV[i]
  end
end
return missing
