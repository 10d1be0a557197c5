-- Appends a chat line to a game's (or the lobby's) bounded stream and publishes it; with a
-- client line id, records which line it added in the same step, so that a retry adds none.
-- KEYS  1 chat stream  2 game hash (for a game; the lobby passes its chat stream again)
--       3 optional: the author's client line id (a string key in the stream's slot)
-- ARGV  1 '1' if the game must exist  2 sender name  3 sender role or ''  4 text
--       5 ttl ms  6 lines kept  7 channel
--       8-10 the chat event, rendered by the instance, in pieces around the line's stream id
--            and its time (ms), which only exist once the line is added
--      11 publish command
--      12 how long the line id is remembered, ms (with KEYS 3)
-- Returns {'ok', stream id}, {'duplicate', the earlier line's stream id} or {'unknown'} for
-- an unknown game.
if KEYS[3] then
  local earlier = redis.call('GET', KEYS[3])
  if earlier then
    return {'duplicate', earlier}
  end
end
if ARGV[1] == '1' and redis.call('EXISTS', KEYS[2]) == 0 then
  return {'unknown'}
end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[6], '*', 'f', ARGV[2], 'r', ARGV[3], 't', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call(ARGV[11], ARGV[7], ARGV[8] .. id .. ARGV[9] .. string.match(id, '^(%d+)-') .. ARGV[10])
if KEYS[3] then
  redis.call('SET', KEYS[3], id, 'PX', ARGV[12])
end
return {'ok', id}
