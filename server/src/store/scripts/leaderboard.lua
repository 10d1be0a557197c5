-- The leaderboard: the top rows, and one player's row with its neighbours. Reads the
-- profiles of the players it lists, whose keys are KEYS[1]'s slot ({profiles}) by design.
-- KEYS  1 board zset
-- ARGV  1 profile key prefix  2 top rows  3 player or ''  4 rows either side of the player
-- Returns {top count, top rows..., player's rank (0-based) or -1, first rank of around,
-- around rows...}; a row is {name, rating, deviation, wins, draws, losses}.
local function rows(from, to, out)
  for _, p in ipairs(redis.call('ZREVRANGE', KEYS[1], from, to)) do
    local f = redis.call('HMGET', ARGV[1] .. p, 'name', 'r', 'd', 'w', 'dr', 'l')
    out[#out + 1] = f
  end
end
local out = {0}
local top = tonumber(ARGV[2])
if top > 0 then
  rows(0, top - 1, out)
end
out[1] = #out - 1
local rank = ARGV[3] ~= '' and redis.call('ZREVRANK', KEYS[1], ARGV[3]) or nil
if not rank then
  out[#out + 1] = -1
  return out
end
local k = tonumber(ARGV[4])
local first = math.max(0, rank - k)
out[#out + 1] = rank
out[#out + 1] = first
rows(first, rank + k, out)
return out
