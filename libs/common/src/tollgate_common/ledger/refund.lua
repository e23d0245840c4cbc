-- Give a charge back exactly once. KEYS[1] the charge record, KEYS[2] its tombstone; ARGV[1] the
-- tombstone's TTL in seconds, ARGV[2] the status class the client saw ('4xx', '5xx' or '' when it
-- saw none), ARGV[3] the usage retention in seconds. Returns {-1} (no such charge) or {credits
-- after, key id, plan, route, cost}: the caller adds the usage event (the stream is one global
-- key, ledger.py). With ARGV[4] = '1' (an exporter exists) the refund's usage event is also kept
-- in the key's outbox, KEYS[3] (ledger/outbox.py), until the exporter has read it: ARGV[5] its
-- ts, ARGV[6] the charge id, ARGV[7] the outbox's bound (authorize.lua does the same).
-- Redis Cluster: a charge id carries its key's id (apikeys.new_charge_id), so KEYS are on the key's
-- slot, as are the record and usage bucket the charge record names (authorize.lua wrote it; the
-- names carry the same hash tag, layout.py). A charge made before that move (layout.legacy_*)
-- names the old record; migration.py moved it and left its new name at layout.moved_key, which
-- this follows: old data only ever lives on one Redis, so that derived name is no cluster problem.
-- The tombstone is set either way: an authorize with this charge id arriving later (its answer
-- was lost, the caller gave it up) debits nothing (authorize.lua checks it).
redis.call('SET', KEYS[2], '1', 'EX', tonumber(ARGV[1]))
local rec = redis.call('GET', KEYS[1])
if not rec then return {-1} end
redis.call('DEL', KEYS[1])
-- '<record>|<cost>[|<usage bucket>|<route>]' (authorize.lua; records from before usage have two parts)
local a = string.find(rec, '|', 1, true)
local key = string.sub(rec, 1, a - 1)
local b = string.find(rec, '|', a + 1, true)
local cost = tonumber(string.sub(rec, a + 1, (b or 0) - 1))
if redis.call('EXISTS', key) == 0 and not string.find(key, '{', 1, true) then
  local moved = redis.call('GET', 'tollgate:auth:moved:' .. string.match(key, '([^:]*)$'))
  if moved then key = moved end
end
if redis.call('EXISTS', key) == 0 then return {-1} end
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
local held = redis.call('HMGET', key, 'id', 'plan')
if ARGV[4] == '1' then
  keep_unexported(KEYS[3], 'refund', ARGV[6], held[1] or '', held[2] or '', cost, ARGV[5], route,
                  ARGV[3], ARGV[7])
end
return {left, held[1] or '', held[2] or '', route, cost}
