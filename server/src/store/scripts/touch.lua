-- Sets a key's remaining lifetime to what it already is: a write that changes nothing, sent
-- before a WAIT so that the WAIT covers every earlier write to this node (WAIT counts from
-- the last write of its own connection), for instance a move another instance made.
--
-- KEYS  1 any key
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return ttl
