-- Loads a session and renews its lifetime.
-- KEYS  1 session hash  2 session games (zset)
-- ARGV  1 ttl ms  2 new display name or ''  3 most games returned
-- Returns nil for an unknown or expired session, else {player, name, {game ids...}}.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return false
end
if ARGV[2] ~= '' then
  redis.call('HSET', KEYS[1], 'name', ARGV[2])
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
local s = redis.call('HMGET', KEYS[1], 'player', 'name')
return {s[1], s[2], redis.call('ZREVRANGE', KEYS[2], 0, tonumber(ARGV[3]) - 1)}
