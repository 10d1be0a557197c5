-- The game's version and the logged events after a version, in one atomic read.
-- KEYS  1 game hash  2 log stream
-- ARGV  1 version the client has  2 most events wanted
-- Returns nil for an unknown game, else {version, json1, json2, ...}.
local v = redis.call('HGET', KEYS[1], 'v')
if not v then
  return false
end
local out = {v}
if tonumber(ARGV[1]) >= tonumber(v) then
  return out
end
local entries = redis.call('XRANGE', KEYS[2], '(0-' .. ARGV[1], '+', 'COUNT', ARGV[2])
for _, e in ipairs(entries) do
  out[#out + 1] = e[1]
  out[#out + 1] = e[2][2]
end
return out
