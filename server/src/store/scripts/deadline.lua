-- Due dates of games (forfeit clocks, match starts): a sorted set of game ids scored by ms.
-- KEYS  1 deadlines zset
-- ARGV  1 mode
--   set:    2 game  3 at ms        -> keeps the earlier of the two dates
--   due:    2 most                 -> {now, game1, at1, game2, at2, ...}, oldest first
--   settle: 2 game  3 due it had  4 next date or '' -> moves or removes it only if unchanged,
--           so a date set meanwhile by another instance is never lost
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local mode = ARGV[1]
if mode == 'set' then
  return redis.call('ZADD', KEYS[1], 'LT', ARGV[3], ARGV[2])
elseif mode == 'due' then
  local out = {string.format('%d', now)}
  local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', string.format('%d', now), 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[2]))
  for _, v in ipairs(due) do
    out[#out + 1] = v
  end
  return out
end
local score = redis.call('ZSCORE', KEYS[1], ARGV[2])
if not score or tonumber(score) ~= tonumber(ARGV[3]) then
  return 0
end
if ARGV[4] == '' then
  redis.call('ZREM', KEYS[1], ARGV[2])
else
  redis.call('ZADD', KEYS[1], ARGV[4], ARGV[2])
end
return 1
