-- Creates a game at version 1, unless the id is taken.
-- KEYS  1 game hash  2 log stream
-- ARGV  1 X player id  2 O player id or ''  3 state JSON  4 event JSON  5 channel
--       6 ttl ms       7 log length kept    8 publish command
--       9 hex client create id or '': kept in the game hash (field 'c') as long as the game
--         lives, so that the same X creating again with it is told this game is its own
-- Returns 1 when created, 2 for a retry of the create that made this game, 0 when another
-- game has the id.
if redis.call('EXISTS', KEYS[1]) == 1 then
  if ARGV[9] ~= '' then
    local cur = redis.call('HMGET', KEYS[1], 'x', 'c')
    if cur[1] == ARGV[1] and cur[2] == ARGV[9] then
      -- A write, so that a caller's WAIT also covers the first attempt, which may have come
      -- through another connection and not reached the replicas yet.
      local left = redis.call('PTTL', KEYS[1])
      if left > 0 then
        redis.call('PEXPIRE', KEYS[1], left)
      end
      return 2
    end
  end
  return 0
end
redis.call('HSET', KEYS[1], 'v', '1', 's', ARGV[3], 'x', ARGV[1])
if ARGV[2] ~= '' then
  redis.call('HSET', KEYS[1], 'o', ARGV[2])
end
if ARGV[9] ~= '' then
  redis.call('HSET', KEYS[1], 'c', ARGV[9])
end
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[7], '0-1', 'e', ARGV[4])
redis.call(ARGV[8], ARGV[5], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
redis.call('PEXPIRE', KEYS[2], ARGV[6])
return 1
