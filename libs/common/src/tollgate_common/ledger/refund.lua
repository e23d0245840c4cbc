-- Give a charge back exactly once. KEYS[1] the charge record, KEYS[2] its tombstone, KEYS[3] the
-- usage event stream; ARGV[1] the tombstone's TTL in seconds, ARGV[2] the status class the client
-- saw ('4xx', '5xx' or '' when it saw none), ARGV[3] the usage retention in seconds, ARGV[4] the
-- charge id, ARGV[5] now_ms, ARGV[6] the stream's bound. Returns credits after, or -1 (no such
-- charge).
-- The tombstone is set either way: an authorize with this charge id arriving later (its answer
-- was lost, the caller gave it up) debits nothing (authorize.lua checks it).
redis.call('SET', KEYS[2], '1', 'EX', tonumber(ARGV[1]))
local rec = redis.call('GET', KEYS[1])
if not rec then return -1 end
redis.call('DEL', KEYS[1])
-- '<record>|<cost>[|<usage bucket>|<route>]' (authorize.lua; records from before usage have two parts)
local a = string.find(rec, '|', 1, true)
local key = string.sub(rec, 1, a - 1)
local b = string.find(rec, '|', a + 1, true)
local cost = tonumber(string.sub(rec, a + 1, (b or 0) - 1))
if redis.call('EXISTS', key) == 0 then return -1 end
local left = redis.call('HINCRBY', key, 'credits', cost)
local route = ''
if b then
  -- usage: counted in the charge's bucket, never failing the refund (pcall)
  local c = string.find(rec, '|', b + 1, true)
  local bucket = string.sub(rec, b + 1, c - 1)
  route = string.sub(rec, c + 1)
  local function count(field, n)
    if redis.pcall('HINCRBY', bucket, field .. ':' .. route, n) == n then
      redis.pcall('EXPIRE', bucket, tonumber(ARGV[3]))  -- the bucket may have expired meanwhile
    end
  end
  count('refunded', cost)
  if ARGV[2] == '4xx' or ARGV[2] == '5xx' then count(ARGV[2], 1) end
end
-- One usage event per refund (the notifier's exporter), with the charge id; pcall for the reason
-- authorize.lua gives.
local held = redis.call('HMGET', key, 'id', 'plan')
redis.pcall('XADD', KEYS[3], 'NOMKSTREAM', 'MAXLEN', '~', ARGV[6], '*',
            'kind', 'refund', 'charge', ARGV[4], 'key', held[1] or '', 'route', route,
            'plan', held[2] or '', 'credits', cost, 'ts', ARGV[5])
return left
