-- (Preceded by lobby_record.lua.)
-- The lobby: games waiting for an opponent ('open') and games in play ('live'), each a sorted
-- set scored by last update (ms), with the entries' JSON in a hash, and who opened each open
-- game in another, as '<player id>|<address>' (the address's budget key).
-- KEYS  1 open zset  2 live zset  3 info hash  4 owner hash
-- ARGV  1 mode
--   update: 2 game id  3 status  4 entry JSON  5 channel  6 change message JSON  7 publish cmd
--           8 owner ('<player id>|<address>') or ''
--   list:   2 most entries per list  3 ttl ms (older entries are pruned)
--           4 most open entries per owner (0: no limit)  5 most per address (0: no limit)
-- list returns {{open entries...}, {live entries...}}, newest first.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if ARGV[1] == 'update' then
  lobby_record(KEYS[1], KEYS[2], KEYS[3], KEYS[4], now, ARGV[2], ARGV[3], ARGV[4], ARGV[8])
  redis.call(ARGV[7], ARGV[5], ARGV[6])
  return 1
end

local max, per_owner = tonumber(ARGV[2]), tonumber(ARGV[4] or '0')
local per_address = tonumber(ARGV[5] or '0')
local cutoff = string.format('(%d', now - tonumber(ARGV[3]))
local out = {}
for i = 1, 2 do
  for _, g in ipairs(redis.call('ZRANGEBYSCORE', KEYS[i], '-inf', cutoff)) do
    redis.call('ZREM', KEYS[i], g)
    redis.call('HDEL', KEYS[3], g)
    redis.call('HDEL', KEYS[4], g)
  end
  local entries = {}
  if i == 1 and (per_owner > 0 or per_address > 0) then
    -- Newest first, at most per_owner games of each owner and per_address of each address;
    -- the scan is bounded so that one player's many games make a listing no slower than 8
    -- pages.
    local counts, by_address, start = {}, {}, 0
    while #entries < max and start < max * 8 do
      local ids = redis.call('ZREVRANGE', KEYS[1], start, start + max - 1)
      if #ids == 0 then
        break
      end
      local infos = redis.call('HMGET', KEYS[3], unpack(ids))
      local owners = redis.call('HMGET', KEYS[4], unpack(ids))
      for j, g in ipairs(ids) do
        local owner, address = string.match(owners[j] or '', '^([^|]*)|(.*)$')
        owner = owner or owners[j] or g
        local fits = infos[j] and #entries < max
        if per_owner > 0 then
          counts[owner] = (counts[owner] or 0) + 1
          fits = fits and counts[owner] <= per_owner
        end
        if fits and per_address > 0 and address then
          fits = (by_address[address] or 0) < per_address
        end
        if fits then
          if address then
            by_address[address] = (by_address[address] or 0) + 1
          end
          entries[#entries + 1] = infos[j]
        end
      end
      start = start + max
    end
  else
    local ids = redis.call('ZREVRANGE', KEYS[i], 0, max - 1)
    if #ids > 0 then
      for _, e in ipairs(redis.call('HMGET', KEYS[3], unpack(ids))) do
        if e then
          entries[#entries + 1] = e
        end
      end
    end
  end
  out[i] = entries
end
return out
