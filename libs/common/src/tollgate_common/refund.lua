-- Give a charge back exactly once. KEYS[1] the charge record, KEYS[2] its tombstone, KEYS[3] the
-- usage stream; ARGV: tombstone TTL (s), charge id, now_ms, usage_maxlen. Returns credits after,
-- or -1 (no such charge).
-- The tombstone is set either way: an authorize with this charge id arriving later (its answer
-- was lost, the caller gave it up) debits nothing (authorize.lua checks it).
redis.call('SET', KEYS[2], '1', 'EX', tonumber(ARGV[1]))
local rec = redis.call('GET', KEYS[1])
if not rec then return -1 end
redis.call('DEL', KEYS[1])
-- record|cost|route (record|cost from before issue 13)
local sep = string.find(rec, '|', 1, true)
local key = string.sub(rec, 1, sep - 1)
local rest = string.sub(rec, sep + 1)
local sep2 = string.find(rest, '|', 1, true)
local route = ''
if sep2 then route = string.sub(rest, sep2 + 1); rest = string.sub(rest, 1, sep2 - 1) end
local cost = tonumber(rest)
if redis.call('EXISTS', key) == 0 then return -1 end
local left = redis.call('HINCRBY', key, 'credits', cost)
-- One usage event per refund; pcall for the reason authorize.lua gives.
local held = redis.call('HMGET', key, 'id', 'plan')
redis.pcall('XADD', KEYS[3], 'NOMKSTREAM', 'MAXLEN', '~', ARGV[4], '*',
            'kind', 'refund', 'charge', ARGV[2], 'key', held[1] or '', 'route', route,
            'plan', held[2] or '', 'credits', cost, 'ts', ARGV[3])
return left
