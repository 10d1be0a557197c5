-- Publishes a game event only if the game's log holds exactly that event at its version: the
-- second half of a transition run with REDIS_WAIT_REPLICAS, sent after the transition and its
-- WAIT in the same pipeline, so that an event goes out once replicas have the change.
--
-- KEYS  1 log stream
-- ARGV  1 version  2 channel  3 event JSON  4 publish command (PUBLISH / SPUBLISH)
local id = '0-' .. ARGV[1]
local entry = redis.call('XRANGE', KEYS[1], id, id)[1]
if entry and entry[2][1] == 'e' and entry[2][2] == ARGV[3] then
  redis.call(ARGV[4], ARGV[2], ARGV[3])
  return 1
end
return 0
