-- Records a finished round in the profiles of its players, exactly once: the marker says it
-- is done; a rating computed from a profile that changed since is not applied.
-- KEYS  1 marker (string with a lifetime)  2 board zset  3 board version (string, bumped when a
--       row the board shows changes; leaderboard.lua)  then per seat: profile hash, history
-- ARGV  1 marker lifetime ms  2 history entries kept  then per seat (7 values): player,
--       history entry JSON, result field ('w', 'dr' or 'l'), expected version ('' when the
--       rating does not change), rating, deviation, volatility
-- Returns 'done', 'already' (the marker was there: nothing changed) or 'stale' (a profile to
-- re-rate changed: nothing changed).
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 'already'
end
local seats = (#KEYS - 3) / 2
local function arg(i, k)
  return ARGV[2 + (i - 1) * 7 + k]
end
for i = 1, seats do
  local expected = arg(i, 4)
  if expected ~= '' and redis.call('HGET', KEYS[2 + 2 * i], 'v') ~= expected then
    return 'stale'
  end
end
redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
local keep = tonumber(ARGV[2])
local boarded = false
for i = 1, seats do
  local profile, history = KEYS[2 + 2 * i], KEYS[3 + 2 * i]
  -- A profile deleted meanwhile gets nothing: no history list may outlive its profile.
  if redis.call('EXISTS', profile) == 1 then
    redis.call('LPUSH', history, arg(i, 2))
    redis.call('LTRIM', history, 0, keep - 1)
    redis.call('HINCRBY', profile, arg(i, 3), 1)
    if arg(i, 4) ~= '' then
      redis.call('HSET', profile, 'r', arg(i, 5), 'd', arg(i, 6), 's', arg(i, 7))
      redis.call('HINCRBY', profile, 'g', 1)
      redis.call('ZADD', KEYS[2], arg(i, 5), arg(i, 1))
    end
    redis.call('HINCRBY', profile, 'v', 1)
    boarded = boarded or redis.call('ZSCORE', KEYS[2], arg(i, 1)) ~= false
  end
end
if boarded then
  redis.call('INCR', KEYS[3])
end
return 'done'
