-- One game transition, atomically: a compare-and-set on the game's version that, in the same
-- step, checks the actor's seat, move id and move budget, writes the new state, appends the
-- event to the game's log and publishes it. Nothing changes unless every check passes.
--
-- Everything a move reads or writes per player lives in the game hash itself, so a regular
-- move is six commands (EVALSHA, HMGET, TIME, HSET, XADD, PUBLISH):
--   'm:<player>'  the player's recent move ids: their count, then ',<hex mid>=<version>'
--                 entries, oldest first (hex, so that no mid can forge a separator; at most
--                 ARGV 13 entries)
--   'r:<player>'  the player's move budget: GCRA theoretical arrival time, Redis clock, us
--   'e', 't'      when (ms) and with what ttl the lifetimes of the game's keys were last set
-- Lifetimes are set to 5/4 of the ttl and refreshed once a quarter of it has passed (or the
-- ttl changes, as when a round ends): every key of the game still lives at least `ttl` after
-- its last transition, without four PEXPIREs per move.
--
-- (Preceded by lobby_record.lua.)
-- KEYS  1 game hash   2 log stream   3 chat stream   4 presence hash
--       5-8, only with a lobby entry: the lobby's open zset, live zset, info and owner hashes
-- ARGV  1 expected version       2 actor player id    3 seat check: '-', 'holds' or 'claims'
--       4 seat field: 'x' or 'o' 5 new state JSON     6 event JSON
--       7 channel                8 ttl ms             9 log length kept (approximate trim)
--      10 hex move id or ''     11 budget interval us or '' (no limit)
--      12 budget tolerance us   13 move ids kept per player
--      14 publish command (PUBLISH / SPUBLISH), or '' when the caller publishes after a WAIT
--         (publish_logged.lua)
--      15-19, with KEYS 5-8: the lobby entry of a status change (never with a WAIT: its
--         announcement would go out before the replicas confirm): 15 status  16 game id
--         17 entry JSON  18 lobby channel  19 lobby change JSON
local mids_field = 'm:' .. ARGV[2]
local rate_field = 'r:' .. ARGV[2]
local cur = redis.call('HMGET', KEYS[1], 'v', 'x', 'o', mids_field, rate_field, 'e', 't')
if not cur[1] then
  return {'unknown'}
end

local mids = cur[4] or ''
if ARGV[10] ~= '' then
  local at = string.find(mids, ',' .. ARGV[10] .. '=', 1, true)
  if at then
    if ARGV[14] == '' then
      -- A write, so that the caller's WAIT also covers the first attempt, which may have
      -- come through another connection and not reached the replicas yet.
      local left = redis.call('PTTL', KEYS[1])
      if left > 0 then
        redis.call('PEXPIRE', KEYS[1], left)
      end
    end
    return {'duplicate', string.match(mids, '=(%d+)', at)}
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

local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now_ms = math.floor(now_us / 1000)
local writes = {}

-- GCRA on Redis's clock; mirrors ratelimit::gcra.
if ARGV[11] ~= '' then
  local tat = tonumber(cur[5] or now_us)
  if tat < now_us then
    tat = now_us
  end
  local allow_at = tat - tonumber(ARGV[12])
  if now_us < allow_at then
    return {'limited', string.format('%d', allow_at - now_us)}
  end
  writes[#writes + 1] = rate_field
  writes[#writes + 1] = string.format('%d', tat + tonumber(ARGV[11]))
end

local v = string.format('%d', tonumber(ARGV[1]) + 1)
writes[#writes + 1] = 'v'
writes[#writes + 1] = v
writes[#writes + 1] = 's'
writes[#writes + 1] = ARGV[5]
if ARGV[3] == 'claims' then
  writes[#writes + 1] = ARGV[4]
  writes[#writes + 1] = ARGV[2]
end
if ARGV[10] ~= '' then
  -- The list starts with how many entries it holds: counting the 32 entries each move
  -- (string.gsub) took the script from 14 to 17.5 us (scripts/bench-lua.sh). A list kept
  -- before the count was has none.
  local digits = string.match(mids, '^%d*')
  local count = tonumber(digits)
  if not count then
    local _, n = string.gsub(mids, ',', ',')
    count = n
  end
  -- The oldest entries past the limit are left out: the kept ones start at `from`.
  local from = #digits + 1
  count = count + 1
  while count > tonumber(ARGV[13]) do
    from = string.find(mids, ',', from + 1, true) or (#mids + 1)
    count = count - 1
  end
  mids = count .. string.sub(mids, from) .. ',' .. ARGV[10] .. '=' .. v
  writes[#writes + 1] = mids_field
  writes[#writes + 1] = mids
end

local ttl = tonumber(ARGV[8])
local refresh = cur[7] ~= ARGV[8] or now_ms - tonumber(cur[6] or 0) >= ttl / 4
if refresh then
  writes[#writes + 1] = 'e'
  writes[#writes + 1] = string.format('%d', now_ms)
  writes[#writes + 1] = 't'
  writes[#writes + 1] = ARGV[8]
end

redis.call('HSET', KEYS[1], unpack(writes))
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[9], '0-' .. v, 'e', ARGV[6])
if ARGV[14] ~= '' then
  redis.call(ARGV[14], ARGV[7], ARGV[6])
end
if refresh then
  local lifetime = string.format('%d', ttl + math.floor(ttl / 4))
  for i = 1, 4 do
    redis.call('PEXPIRE', KEYS[i], lifetime)
  end
end
if KEYS[5] then
  lobby_record(KEYS[5], KEYS[6], KEYS[7], KEYS[8], now_ms, ARGV[16], ARGV[15], ARGV[17], '')
  redis.call(ARGV[14], ARGV[18], ARGV[19])
end
return {'ok', v}
