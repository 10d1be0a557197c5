-- A player's profile: create it, replace its recovery code, read it, delete it, rename it,
-- note the address it said hello from. Every key is in the {profiles} slot.
-- KEYS  1 profile hash  2 history list  3 codes hash (code hash -> player)  4 board zset
--       5 board version (string: bumped when a row the board shows changes; leaderboard.lua)
-- ARGV  1 mode  2 player, then by mode:
--   create  3 name  4 address  5 code hash  6 rating  7 deviation  8 volatility
--           -> 1 created, 0 existed (its code replaced)
--   code    3 code hash                     -> 1, or 0 without a profile
--   read    3 history entries to return     -> {} without a profile, else
--           {record fields (as FIELDS below)..., rank or -1, history entries...}
--   delete                                  -> 1, or 0 without a profile
--   rename  3 name                          -> 1, or 0 without a profile
--   seen    3 address                       -> {} without a profile, else the record fields
-- A profile's fields: name, r rating, d deviation, s volatility, w/dr/l wins, draws, losses,
-- g rated rounds, a address hash, c code hash, v version (bumped by every write), t created.
local FIELDS = {'name', 'r', 'd', 's', 'w', 'dr', 'l', 'g', 'a', 'v', 't'}
local mode, player = ARGV[1], ARGV[2]
local exists = redis.call('EXISTS', KEYS[1]) == 1

local function set_code(code)
  local old = redis.call('HGET', KEYS[1], 'c')
  if old then
    redis.call('HDEL', KEYS[3], old)
  end
  redis.call('HSET', KEYS[1], 'c', code)
  redis.call('HSET', KEYS[3], code, player)
  redis.call('HINCRBY', KEYS[1], 'v', 1)
end

if mode == 'create' then
  if exists then
    set_code(ARGV[5])
    return 0
  end
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('HSET', KEYS[1], 'name', ARGV[3], 'r', ARGV[6], 'd', ARGV[7], 's', ARGV[8],
    'w', 0, 'dr', 0, 'l', 0, 'g', 0, 'a', ARGV[4], 'v', 0, 't', now)
  set_code(ARGV[5])
  return 1
end
if not exists then
  if mode == 'read' or mode == 'seen' then
    return {}
  end
  return 0
end
if mode == 'code' then
  set_code(ARGV[3])
  return 1
elseif mode == 'read' then
  local out = redis.call('HMGET', KEYS[1], unpack(FIELDS))
  out[#out + 1] = redis.call('ZREVRANK', KEYS[4], player) or -1
  local n = tonumber(ARGV[3])
  if n > 0 then
    for _, e in ipairs(redis.call('LRANGE', KEYS[2], 0, n - 1)) do
      out[#out + 1] = e
    end
  end
  return out
elseif mode == 'delete' then
  local code = redis.call('HGET', KEYS[1], 'c')
  if code then
    redis.call('HDEL', KEYS[3], code)
  end
  redis.call('DEL', KEYS[1], KEYS[2])
  if redis.call('ZREM', KEYS[4], player) == 1 then
    redis.call('INCR', KEYS[5])
  end
  return 1
elseif mode == 'rename' then
  if redis.call('HGET', KEYS[1], 'name') ~= ARGV[3] then
    redis.call('HSET', KEYS[1], 'name', ARGV[3])
    redis.call('HINCRBY', KEYS[1], 'v', 1)
    if redis.call('ZSCORE', KEYS[4], player) then
      redis.call('INCR', KEYS[5])
    end
  end
  return 1
elseif mode == 'seen' then
  if redis.call('HGET', KEYS[1], 'a') ~= ARGV[3] then
    redis.call('HSET', KEYS[1], 'a', ARGV[3])
    redis.call('HINCRBY', KEYS[1], 'v', 1)
  end
  return redis.call('HMGET', KEYS[1], unpack(FIELDS))
end
return redis.error_reply('unknown mode ' .. tostring(mode))
