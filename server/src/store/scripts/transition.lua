-- One game transition, atomically: a compare-and-set on the game's version that, in the same
-- step, checks the actor's seat and move budget, writes the new state, appends the event to the
-- game's log and publishes it. Nothing changes unless every check passes.
--
-- KEYS  1 game hash   2 log stream   3 applied move ids (zset)   4 actor's move budget
--       5 chat stream 6 presence hash (only to keep every key of the game on one lifetime)
-- ARGV  1 expected version       2 actor player id    3 seat check: '-', 'holds' or 'claims'
--       4 seat field: 'x' or 'o' 5 new state JSON     6 event JSON
--       7 channel                8 ttl ms             9 log length kept
--      10 client move id or ''  11 budget interval us or '' (no limit)
--      12 budget tolerance us   13 move ids kept     14 publish command (PUBLISH / SPUBLISH),
--                                                        or '' when the caller publishes
--                                                        after a WAIT (publish_logged.lua)
local cur = redis.call('HMGET', KEYS[1], 'v', 'x', 'o')
if not cur[1] then
  return {'unknown'}
end

local member = ARGV[2] .. '|' .. ARGV[10]
if ARGV[10] ~= '' then
  local done = redis.call('ZSCORE', KEYS[3], member)
  if done then
    if ARGV[14] == '' then
      -- A write, so that the caller's WAIT also covers the first attempt, which may have
      -- come through another connection and not reached the replicas yet.
      redis.call('PEXPIRE', KEYS[3], ARGV[8])
    end
    return {'duplicate', done}
  end
end

if cur[1] ~= ARGV[1] then
  return {'stale', cur[1], redis.call('HGET', KEYS[1], 's'), cur[2] or '', cur[3] or ''}
end

local holder = cur[3]
if ARGV[4] == 'x' then
  holder = cur[2]
end
if ARGV[3] == 'holds' and holder ~= ARGV[2] then
  return {'not_seated'}
end
if ARGV[3] == 'claims' and holder then
  return {'seat_taken'}
end

-- GCRA on Redis's clock; mirrors ratelimit::gcra.
if ARGV[11] ~= '' then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local tat = tonumber(redis.call('GET', KEYS[4]) or now)
  if tat < now then
    tat = now
  end
  local allow_at = tat - tonumber(ARGV[12])
  if now < allow_at then
    return {'limited', string.format('%d', allow_at - now)}
  end
  local new_tat = tat + tonumber(ARGV[11])
  redis.call('SET', KEYS[4], string.format('%d', new_tat), 'PX',
    string.format('%d', math.floor((new_tat - now) / 1000) + 1))
end

local v = string.format('%d', tonumber(ARGV[1]) + 1)
if ARGV[3] == 'claims' then
  redis.call('HSET', KEYS[1], ARGV[4], ARGV[2])
end
redis.call('HSET', KEYS[1], 'v', v, 's', ARGV[5])
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[9], '0-' .. v, 'e', ARGV[6])
if ARGV[14] ~= '' then
  redis.call(ARGV[14], ARGV[7], ARGV[6])
end
if ARGV[10] ~= '' then
  redis.call('ZADD', KEYS[3], v, member)
  redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -(tonumber(ARGV[13]) + 1))
end
for i = 1, 6 do
  if i ~= 4 then
    redis.call('PEXPIRE', KEYS[i], ARGV[8])
  end
end
return {'ok', v}
