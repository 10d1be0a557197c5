-- Records where a game stands in the lobby: shared by lobby.lua (an update on its own) and
-- transition.lua (the update of a status change, in the same step, where the lobby shares the
-- game's node), which both start with this file.
-- open, live, info, owners: the lobby's keys (see lobby.lua); now: ms; g: game id; status;
-- entry: the entry's JSON; owner: '<player id>|<address>' of an open game, or ''.
local function lobby_record(open, live, info, owners, now, g, status, entry, owner)
  if status == 'waiting' then
    redis.call('ZADD', open, now, g)
    redis.call('ZREM', live, g)
    redis.call('HSET', info, g, entry)
    if owner ~= '' then
      redis.call('HSET', owners, g, owner)
    end
  elseif status == 'playing' then
    redis.call('ZREM', open, g)
    redis.call('ZADD', live, now, g)
    redis.call('HSET', info, g, entry)
    redis.call('HDEL', owners, g)
  else
    redis.call('ZREM', open, g)
    redis.call('ZREM', live, g)
    redis.call('HDEL', info, g)
    redis.call('HDEL', owners, g)
  end
end
