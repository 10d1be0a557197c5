-- Publishes a game event only if the game's log holds exactly that event at its version: the
-- second half of a transition run with REDIS_WAIT_REPLICAS, sent once the WAIT after the
-- transition confirmed it, so that an event goes out only when the replicas have the change
-- (one a failover took back would show subscribers a version that is then given to another
-- event). With an empty event, whatever the log holds at that version goes out: a retried
-- move found applied, whose first attempt may not have been confirmed, so not published
-- (a subscriber that already has it drops it by its version).
--
-- KEYS  1 log stream
-- ARGV  1 version  2 channel  3 event JSON, or ''  4 publish command (PUBLISH / SPUBLISH)
local id = '0-' .. ARGV[1]
local entry = redis.call('XRANGE', KEYS[1], id, id)[1]
if entry and entry[2][1] == 'e' and (ARGV[3] == '' or entry[2][2] == ARGV[3]) then
  if ARGV[3] == '' then
    redis.call(ARGV[4], ARGV[2], entry[2][2])
    return 1
  end
  redis.call(ARGV[4], ARGV[2], ARGV[3])
  return 1
end
return 0
