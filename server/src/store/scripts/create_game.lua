-- Creates a game at version 1, unless the id is taken.
-- KEYS  1 game hash  2 log stream
-- ARGV  1 X player id  2 O player id or ''  3 state JSON  4 event JSON  5 channel
--       6 ttl ms       7 log length kept    8 publish command
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'v', '1', 's', ARGV[3], 'x', ARGV[1])
if ARGV[2] ~= '' then
  redis.call('HSET', KEYS[1], 'o', ARGV[2])
end
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[7], '0-1', 'e', ARGV[4])
redis.call(ARGV[8], ARGV[5], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
redis.call('PEXPIRE', KEYS[2], ARGV[6])
return 1
