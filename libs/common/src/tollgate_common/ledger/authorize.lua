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
-- ARGV: now_ms, default_cost, charge_id, charge_ttl_s, path, low_threshold, invalid_window_s
-- Returns {reason, limit, remaining, reset_ms, retry_after_ms, credits, key_id, event, invalid_count}
-- and, for ok and rate_limited, cost (debited) and plan as well (the gateway's metrics by plan)

local now = tonumber(ARGV[1])
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
if rec[3] == '1' then return {'revoked', -1, -1, -1, -1, -1, key_id, '', 0} end
local expires = tonumber(rec[4] or '0') or 0
if expires > 0 and now >= expires then return {'expired', -1, -1, -1, -1, -1, key_id, '', 0} end

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
local limit, remaining, reset, new_tat = -1, -1, -1, nil
local rl = 'tollgate:auth:rl:' .. key_id
if rate > 0 then
  if burst < 1 then burst = 1 end
  local interval = math.max(math.floor(1000 / rate), 1)
  local tolerance = interval * burst
  local tat = tonumber(redis.call('GET', rl) or '0') or 0
  local base = math.max(tat, now)
  new_tat = base + interval
  local allow_at = new_tat - tolerance
  limit = burst
  if now < allow_at then
    return {'rate_limited', limit, 0, base - now, allow_at - now, tonumber(rec[2] or '0'), key_id, '', 0, 0, plan or ''}
  end
  remaining = math.floor((tolerance - (new_tat - now)) / interval)
  reset = new_tat - now
end

local credits = tonumber(rec[2] or '0') or 0
if credits < cost then
  return {'no_credits', limit, remaining, reset, -1, credits, key_id, '', 0}
end
if new_tat then redis.call('SET', rl, new_tat, 'PX', new_tat - now + 1000) end
local left = credits
local event = ''
if cost > 0 then
  left = redis.call('HINCRBY', KEYS[1], 'credits', -cost)
  redis.call('SET', KEYS[3], KEYS[1] .. '|' .. cost, 'EX', tonumber(ARGV[4]))
  local low = tonumber(ARGV[6])
  if left == 0 then event = 'exhausted'
  elseif credits >= low and left < low then event = 'low' end
end
return {'ok', limit, remaining, reset, -1, left, key_id, event, 0, cost, plan or ''}
