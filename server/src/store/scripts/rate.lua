-- One GCRA step on Redis's clock; mirrors ratelimit::gcra, or with ARGV 3 'refund',
-- ratelimit::gcra_refund: one allowed request given back (it added nothing).
-- KEYS  1 bucket (theoretical arrival time, us)
-- ARGV  1 interval us  2 tolerance us  3 optional: 'refund'
-- Returns {1, 0} when allowed (or refunded), {0, retry_after_us} when refused (and then
-- nothing changed).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
if ARGV[3] == 'refund' then
  local held = redis.call('GET', KEYS[1])
  if held and tonumber(held) > now then
    local back = math.max(tonumber(held) - tonumber(ARGV[1]), now)
    if back > now then
      redis.call('SET', KEYS[1], string.format('%d', back), 'PX',
        string.format('%d', math.floor((back - now) / 1000) + 1))
    else
      redis.call('DEL', KEYS[1])
    end
  end
  return {1, 0}
end
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then
  tat = now
end
local allow_at = tat - tonumber(ARGV[2])
if now < allow_at then
  return {0, string.format('%d', allow_at - now)}
end
local new_tat = tat + tonumber(ARGV[1])
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX',
  string.format('%d', math.floor((new_tat - now) / 1000) + 1))
return {1, 0}
