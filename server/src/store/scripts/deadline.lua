-- Due dates of games: a sorted set scored by ms. A game has up to two dates: its own (forfeit
-- clocks, the computer's next step, a finished round's recording; member: the game id) and its
-- match-confirmation date (member: the game id and '|match'), kept apart so that both players'
-- arrival can take the latter away without taking a forfeit clock that was merged into it.
-- KEYS  1 deadlines zset
-- ARGV  1 mode
--   set:     2 game  3 at ms        -> keeps the earlier of the two dates
--   match:   2 game  3 at ms        -> sets the match-confirmation date (the earlier one kept)
--   matched: 2 game                 -> removes the match-confirmation date
--   due:     2 most                 -> {now, game1, at1, game2, at2, ...}, oldest first; a game
--                                      whose two dates are both due is listed twice
--   settle:  2 game  3 due it had  4 next date or '' -> moves or removes the game's date that
--            is still `due` (its own first), so a date set meanwhile by another instance is
--            never lost
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local mode = ARGV[1]
if mode == 'set' then
  return redis.call('ZADD', KEYS[1], 'LT', ARGV[3], ARGV[2])
elseif mode == 'match' then
  return redis.call('ZADD', KEYS[1], 'LT', ARGV[3], ARGV[2] .. '|match')
elseif mode == 'matched' then
  return redis.call('ZREM', KEYS[1], ARGV[2] .. '|match')
elseif mode == 'due' then
  local out = {string.format('%d', now)}
  local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', string.format('%d', now), 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[2]))
  for i, v in ipairs(due) do
    if i % 2 == 1 then
      v = string.gsub(v, '|match$', '')
    end
    out[#out + 1] = v
  end
  return out
end
for _, member in ipairs({ARGV[2], ARGV[2] .. '|match'}) do
  local score = redis.call('ZSCORE', KEYS[1], member)
  if score and tonumber(score) == tonumber(ARGV[3]) then
    if ARGV[4] == '' then
      redis.call('ZREM', KEYS[1], member)
    else
      redis.call('ZADD', KEYS[1], ARGV[4], member)
    end
    return 1
  end
end
return 0
