-- Who is connected to a game, kept as a hash of connection counts per instance lease:
-- field 'c|<lease>|<player>|<role>'. Beside them, per seat M: 'seen|M' once its player was
-- present, 'away|M' = ms since when it has been absent (the forfeit clock), 'why|M' =
-- 'left' or 'disconnected' while a seat its player went from is empty.
--
-- KEYS  1 presence hash  2 game hash
-- ARGV  1 mode: 'change', 'sweep', 'read' or 'inspect'
--   change:  2 field  3 delta, or '=' and the count  4 ttl ms  5 channel  6-9 absence pieces  10 publish command
--            11 why a seat that empties is empty: 'left' or 'disconnected'
--            12.. the presence event's template
--   sweep:   2 dead lease    4 ttl ms  5 channel  6-9 absence pieces  10 publish command
--            11 why  12.. template
--   read, inspect: (nothing)
-- The presence event is rendered by the instance as a template: text ('=' and the text) and
-- named slots ('$' and the name) for the values only this script knows after the change:
-- 'x' and 'o' (the seat's player is here: true/false), 'n' (spectators), 'xa' and 'oa' (the
-- seat's absence). Where each goes is the template's business. An absence is written with the
-- absence pieces: 'null' (6), or the opening for 'left' (7) or 'disconnected' (8), the
-- milliseconds since the player went, the close (9).
-- An absence in a reply is {x away ms, o away ms, x why, o why}: ms -1 and why 0 for a seat
-- that is present or whose player never went; why 1 left, 2 disconnected.
-- read returns {x present, o present, spectators, absence}.
-- change/sweep return {x present, o present, spectators, x left, o left, entries of the lease,
-- absence}.
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

-- How long ago and why the player of seat m went, if it is empty after having been taken.
local function away_of(m, present)
  if present then
    return -1, 0
  end
  local why = redis.call('HGET', KEYS[1], 'why|' .. m)
  local since = redis.call('HGET', KEYS[1], 'away|' .. m)
  if not why or not since then
    return -1, 0
  end
  return math.max(0, tonumber(now) - tonumber(since)), (why == 'left') and 1 or 2
end

local function away_text(ms, why)
  if why == 0 then
    return ARGV[6]
  end
  return ARGV[6 + why] .. string.format('%d', ms) .. ARGV[9]
end

if mode == 'read' then
  local x, o, n = summary()
  local xa, xw = away_of('X', x)
  local oa, ow = away_of('O', o)
  return {x and 1 or 0, o and 1 or 0, n, xa, oa, xw, ow}
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
  local count
  if string.sub(ARGV[3], 1, 1) == '=' then
    count = tonumber(string.sub(ARGV[3], 2))
    redis.call('HSET', KEYS[1], ARGV[2], count)
  else
    count = redis.call('HINCRBY', KEYS[1], ARGV[2], ARGV[3])
  end
  if count <= 0 then
    redis.call('HDEL', KEYS[1], ARGV[2])
  end
end
local x1, o1, n1 = summary()

local seats = {{'X', x0, x1}, {'O', o0, o1}}
for _, s in ipairs(seats) do
  if s[3] then
    redis.call('HDEL', KEYS[1], 'away|' .. s[1], 'why|' .. s[1])
    redis.call('HSET', KEYS[1], 'seen|' .. s[1], '1')
  elseif s[2] then
    redis.call('HSET', KEYS[1], 'away|' .. s[1], now, 'why|' .. s[1], ARGV[11])
  end
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
end

local xa, xw = away_of('X', x1)
local oa, ow = away_of('O', o1)
if x0 ~= x1 or o0 ~= o1 or n0 ~= n1 then
  local values = {x = tostring(x1), o = tostring(o1), n = string.format('%d', n1),
    xa = away_text(xa, xw), oa = away_text(oa, ow)}
  local parts = {}
  for i = 12, #ARGV do
    local a = ARGV[i]
    if string.sub(a, 1, 1) == '$' then
      parts[#parts + 1] = values[string.sub(a, 2)]
    else
      parts[#parts + 1] = string.sub(a, 2)
    end
  end
  redis.call(ARGV[10], ARGV[5], table.concat(parts))
end

local mine = 0
local prefix = 'c|' .. (lease or '') .. '|'
for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
  if string.sub(f, 1, #prefix) == prefix then
    mine = mine + 1
  end
end
return {x1 and 1 or 0, o1 and 1 or 0, n1, (x0 and not x1) and 1 or 0, (o0 and not o1) and 1 or 0, mine,
  xa, oa, xw, ow}
