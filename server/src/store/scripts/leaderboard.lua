-- The leaderboard: the top rows, and one player's row with its neighbours. Reads the
-- profiles of the players it lists, whose keys are KEYS[1]'s slot ({profiles}) by design.
-- The top rows are most of the work (one HMGET per row: 251 us of Redis with 100, 35 without),
-- and the same for every caller until a row changes: a caller that holds them at the board's
-- current version is sent only its own rows.
-- KEYS  1 board zset  2 board version (string; bumped by profile.lua and record_round.lua
--       whenever a row the board shows changes)
-- ARGV  1 profile key prefix  2 top rows  3 player or ''  4 rows either side of the player
--       5 the board version whose top rows the caller holds, or ''
-- Returns {board version, top count or -1 (the caller's top rows are current), top rows...,
-- player's rank (0-based) or -1, first rank of around, around rows...}; a row is
-- {name, rating, deviation, wins, draws, losses}.
local function rows(from, to, out)
  for _, p in ipairs(redis.call('ZREVRANGE', KEYS[1], from, to)) do
    local f = redis.call('HMGET', ARGV[1] .. p, 'name', 'r', 'd', 'w', 'dr', 'l')
    out[#out + 1] = f
  end
end
local version = redis.call('GET', KEYS[2]) or '0'
local out = {version, -1}
local top = tonumber(ARGV[2])
if ARGV[5] ~= version then
  if top > 0 then
    rows(0, top - 1, out)
  end
  out[2] = #out - 2
end
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
