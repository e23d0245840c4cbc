-- Give a charge back exactly once. KEYS[1] the charge record, KEYS[2] its tombstone;
-- ARGV[1] the tombstone's TTL in seconds. Returns credits after, or -1 (no such charge).
-- The tombstone is set either way: an authorize with this charge id arriving later (its answer
-- was lost, the caller gave it up) debits nothing (authorize.lua checks it).
redis.call('SET', KEYS[2], '1', 'EX', tonumber(ARGV[1]))
local rec = redis.call('GET', KEYS[1])
if not rec then return -1 end
redis.call('DEL', KEYS[1])
local sep = string.find(rec, '|', 1, true)
local key = string.sub(rec, 1, sep - 1)
local cost = tonumber(string.sub(rec, sep + 1))
if redis.call('EXISTS', key) == 0 then return -1 end
return redis.call('HINCRBY', key, 'credits', cost)
