-- Who is connected to a game, kept as a hash of connection counts per instance lease:
-- field 'c|<lease>|<player>|<role>'. Beside them, per seat M: 'seen|M' once its player was
-- present, 'away|M' = ms since when it has been absent (the forfeit clock).
--
-- KEYS  1 presence hash  2 game hash
-- ARGV  1 mode: 'change', 'sweep', 'read' or 'inspect'
--   change:  2 field  3 delta  4 ttl ms  5 channel  6-9 presence event  10 publish command
--   sweep:   2 dead lease    4 ttl ms  5 channel  6-9 presence event  10 publish command
--   read, inspect: (nothing)
-- The presence event is rendered by the instance, in pieces around X present, O present and
-- the spectator count after the change, which only this script knows.
-- read returns {x present, o present, spectators}.
-- change/sweep return {x present, o present, spectators, x left, o left, entries of the lease}.
-- inspect returns nil for an unknown game, else
--   {now, version, state, x present, o present, x seen, o seen, x away since, o away since},
-- starting the away clock of an absent seat that has none.
local function summary()
  local x, o, n, seen = false, false, 0, {}
  for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
    local _, player, role = string.match(f, '^c|([^|]*)|([^|]*)|([^|]*)$')
    if role == 'X' then
      x = true
    elseif role == 'O' then
      o = true
    elseif role and not seen[player] then
      seen[player] = true
      n = n + 1
    end
  end
  return x, o, n
end

local t = redis.call('TIME')
local now = string.format('%d', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
local mode = ARGV[1]

if mode == 'read' then
  local x, o, n = summary()
  return {x and 1 or 0, o and 1 or 0, n}
end

if mode == 'inspect' then
  local g = redis.call('HMGET', KEYS[2], 'v', 's')
  if not g[1] then
    return false
  end
  local x, o = summary()
  local present = {X = x, O = o}
  local out = {now, g[1], g[2], x and 1 or 0, o and 1 or 0}
  for _, m in ipairs({'X', 'O'}) do
    out[#out + 1] = redis.call('HEXISTS', KEYS[1], 'seen|' .. m)
  end
  for _, m in ipairs({'X', 'O'}) do
    local away = redis.call('HGET', KEYS[1], 'away|' .. m)
    if not present[m] and not away then
      away = now
      redis.call('HSET', KEYS[1], 'away|' .. m, now)
    end
    out[#out + 1] = present[m] and '' or away
  end
  return out
end

local x0, o0, n0 = summary()
local lease
if mode == 'sweep' then
  lease = ARGV[2]
  local prefix = 'c|' .. lease .. '|'
  for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
    if string.sub(f, 1, #prefix) == prefix then
      redis.call('HDEL', KEYS[1], f)
    end
  end
else
  lease = string.match(ARGV[2], '^c|([^|]*)|')
  if redis.call('HINCRBY', KEYS[1], ARGV[2], ARGV[3]) <= 0 then
    redis.call('HDEL', KEYS[1], ARGV[2])
  end
end
local x1, o1, n1 = summary()

local seats = {{'X', x0, x1}, {'O', o0, o1}}
for _, s in ipairs(seats) do
  if s[3] then
    redis.call('HDEL', KEYS[1], 'away|' .. s[1])
    redis.call('HSET', KEYS[1], 'seen|' .. s[1], '1')
  elseif s[2] then
    redis.call('HSET', KEYS[1], 'away|' .. s[1], now)
  end
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
end

if x0 ~= x1 or o0 ~= o1 or n0 ~= n1 then
  redis.call(ARGV[10], ARGV[5], ARGV[6] .. tostring(x1) .. ARGV[7] .. tostring(o1) .. ARGV[8]
    .. string.format('%d', n1) .. ARGV[9])
end

local mine = 0
local prefix = 'c|' .. (lease or '') .. '|'
for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
  if string.sub(f, 1, #prefix) == prefix then
    mine = mine + 1
  end
end
return {x1 and 1 or 0, o1 and 1 or 0, n1, (x0 and not x1) and 1 or 0, (o0 and not o1) and 1 or 0, mine}
