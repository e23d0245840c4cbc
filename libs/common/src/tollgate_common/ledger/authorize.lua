-- One atomic step per request: key valid, not revoked or expired; GCRA rate limit; credits >= cost,
-- then debit and record the charge for a possible refund. The one home of the GCRA arithmetic
-- (why GCRA: one number per key, exact at any rate, bursts bounded by construction; a window
-- counter lets twice the rate through at a window edge; Brandur Leach's "Rate limiting, cells,
-- and GCRA", redis-cell). Times are integer milliseconds.
-- Uses names derived from the key record (plan, rate-limit state; layout.py spells them): fine on
-- a single Redis or a primary with replicas; not yet on Redis Cluster (layout.py says why).
--
-- KEYS[1] key record (hash)   KEYS[2] invalid-key counter of the client address
-- KEYS[3] charge record of this charge id   KEYS[4] its refund tombstone
-- KEYS[5] the key's usage bucket of this hour (layout.usage_key: hash tag {key id})
-- KEYS[6] the usage event stream (events.USAGE_STREAM_KEY, the notifier's exporter reads it)
-- ARGV: now_ms, default_cost, charge_id, charge_ttl_s, path, low_threshold, invalid_window_s,
--       route, cache_hit ('1' or '0'), usage_ttl_s, usage_maxlen
-- Returns {reason, limit, remaining, reset_ms, retry_after_ms, credits, key_id, event, invalid_count}
-- and, for ok, rate_limited and no_credits, cost (debited) and plan (the gateway's metrics by plan),
-- and, where a rate limit applies, window_ms: the time the plan refills its whole burst in, the
-- one window the rate-limit headers state (limit = burst requests per window)
--
-- Usage (issue 13): every answer for a known key counts in its hour's bucket, field
-- '<counter>:<route>' (layout.COUNTERS): requests, charged, hits when served; 4xx when refused.
-- pcall: a usage write that fails (a bucket of the wrong type) must never fail the request.

local now = tonumber(ARGV[1])
local route = ARGV[8] or ''

local function count(counter, n)
  -- a field's first count may be the bucket's first: only then does it need its TTL (one
  -- command less per request than an EXPIRE every time)
  if redis.pcall('HINCRBY', KEYS[5], counter .. ':' .. route, n) == n then
    redis.pcall('EXPIRE', KEYS[5], tonumber(ARGV[10]))
  end
end

local function refused(reply)
  count('4xx', 1)
  return reply
end
-- The caller chose the charge id (ledger/__init__.py): refunded already (its answer was lost and the
-- caller gave it up) means this late authorize must change nothing; charged already (applied
-- twice) means it is done.
if redis.call('EXISTS', KEYS[3], KEYS[4]) > 0 then
  if redis.call('EXISTS', KEYS[4]) == 1 then return {'refunded', -1, -1, -1, -1, -1, '', '', 0} end
  local held = redis.call('HMGET', KEYS[1], 'id', 'credits')
  return {'ok', -1, -1, -1, -1, tonumber(held[2] or '0'), held[1] or '', '', 0}
end
local rec = redis.call('HMGET', KEYS[1], 'id', 'credits', 'revoked', 'expires_at', 'plan')
local key_id = rec[1]
if not key_id then
  local n = redis.call('INCR', KEYS[2])
  if n == 1 then redis.call('EXPIRE', KEYS[2], tonumber(ARGV[7])) end
  return {'invalid_key', -1, -1, -1, -1, -1, '', '', n}
end
if rec[3] == '1' then return refused({'revoked', -1, -1, -1, -1, -1, key_id, '', 0}) end
local expires = tonumber(rec[4] or '0') or 0
if expires > 0 and now >= expires then
  return refused({'expired', -1, -1, -1, -1, -1, key_id, '', 0})
end

-- cost: the plan's cost for the longest matching path prefix, else the route's creditCost
local cost = tonumber(ARGV[2])
local rate, burst = 0, 0
local plan = rec[5]
if plan and plan ~= '' then
  local pkey = 'tollgate:auth:plan:' .. plan
  local p = redis.call('HMGET', pkey, 'rate', 'burst')
  rate = tonumber(p[1] or '0') or 0
  burst = tonumber(p[2] or '0') or 0
  local path = ARGV[5]
  while path and path ~= '' do
    local c = redis.call('HGET', pkey, 'cost:' .. path)
    if c then cost = tonumber(c); break end
    local cut = string.match(path, '^(.*)/[^/]*$')
    if cut == path then break end
    path = cut
  end
end

-- rate limit (GCRA), decided before credits so a limited request costs nothing
local limit, remaining, reset, new_tat, window = -1, -1, -1, nil, -1
local rl = 'tollgate:auth:rl:' .. key_id
if rate > 0 then
  if burst < 1 then burst = 1 end
  local interval = math.max(math.floor(1000 / rate), 1)
  local tolerance = interval * burst
  window = tolerance
  local tat = tonumber(redis.call('GET', rl) or '0') or 0
  local base = math.max(tat, now)
  new_tat = base + interval
  local allow_at = new_tat - tolerance
  limit = burst
  if now < allow_at then
    return refused({'rate_limited', limit, 0, base - now, allow_at - now, tonumber(rec[2] or '0'), key_id, '', 0, 0, plan or '', window})
  end
  remaining = math.floor((tolerance - (new_tat - now)) / interval)
  reset = new_tat - now
end

local credits = tonumber(rec[2] or '0') or 0
if credits < cost then
  return refused({'no_credits', limit, remaining, reset, -1, credits, key_id, '', 0, 0, plan or '', window})
end
if new_tat then redis.call('SET', rl, new_tat, 'PX', new_tat - now + 1000) end
local left = credits
local event = ''
if cost > 0 then
  left = redis.call('HINCRBY', KEYS[1], 'credits', -cost)
  -- what refund.lua needs: the record to credit, the cost, the usage bucket and route to count in
  redis.call('SET', KEYS[3], KEYS[1] .. '|' .. cost .. '|' .. KEYS[5] .. '|' .. route, 'EX', tonumber(ARGV[4]))
  -- One usage event per charge (issue 13; fields: events.USAGE_FIELDS). pcall: the debit above is
  -- already made and a script error would not undo it, so a stream that refuses the entry (a
  -- WRONGTYPE key, OOM) costs the event, never the request. At its bound MAXLEN ~ drops the oldest;
  -- NOMKSTREAM: only once an exporter made the stream (no exporter, no cost).
  redis.pcall('XADD', KEYS[6], 'NOMKSTREAM', 'MAXLEN', '~', ARGV[11], '*',
              'kind', 'charge', 'charge', ARGV[3], 'key', key_id, 'route', route,
              'plan', plan or '', 'credits', cost, 'ts', now)
  local low = tonumber(ARGV[6])
  if left == 0 then event = 'exhausted'
  elseif credits >= low and left < low then event = 'low' end
  count('charged', cost)
  -- A usage event per charge (the notifier's exporter) is one XADD here, with ARGV[3] as its id.
end
count('requests', 1)
if ARGV[9] == '1' then count('hits', 1) end
return {'ok', limit, remaining, reset, -1, left, key_id, event, 0, cost, plan or '', window}
