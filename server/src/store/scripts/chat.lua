-- Appends a chat line to a game's (or the lobby's) bounded stream and publishes it.
-- KEYS  1 chat stream  2 game hash (for a game; the lobby passes its chat stream again)
-- ARGV  1 '1' if the game must exist  2 sender name  3 sender role or ''  4 text
--       5 ttl ms  6 lines kept  7 channel  8 game id or ''  9 publish command
-- Returns nil for an unknown game, else {stream id, message JSON}.
if ARGV[1] == '1' and redis.call('EXISTS', KEYS[2]) == 0 then
  return false
end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[6], '*', 'f', ARGV[2], 'r', ARGV[3], 't', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
local parts = {'{"type":"chat"'}
if ARGV[8] ~= '' then
  parts[#parts + 1] = ',"game":' .. cjson.encode(ARGV[8])
end
parts[#parts + 1] = ',"id":"' .. id .. '","from":' .. cjson.encode(ARGV[2])
if ARGV[3] ~= '' then
  parts[#parts + 1] = ',"role":' .. cjson.encode(ARGV[3])
end
parts[#parts + 1] = ',"text":' .. cjson.encode(ARGV[4]) .. ',"ts":' .. string.match(id, '^(%d+)-') .. '}'
local msg = table.concat(parts)
redis.call(ARGV[9], ARGV[7], msg)
return {id, msg}
