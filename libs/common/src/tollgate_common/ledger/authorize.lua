-- One atomic step per request: key valid, not revoked or expired; GCRA rate limit; credits >= cost,
-- then debit and record the charge for a possible refund. The one home of the GCRA arithmetic
-- (why GCRA: one number per key, exact at any rate, bursts bounded by construction; a window
-- counter lets twice the rate through at a window edge; Brandur Leach's "Rate limiting, cells,
-- and GCRA", redis-cell). Times are integer milliseconds.
-- Redis Cluster: every key below carries the API key's id as its hash tag (layout.py), so the
-- step runs on that key's slot; nothing global is touched here (the invalid-key counter and the
-- usage stream are the caller's, ledger.py).
--
-- KEYS[1] key record (hash)   KEYS[2] the key's copy of its plan (layout.plan_copy_key)
-- KEYS[3] charge record of this charge id   KEYS[4] its refund tombstone
-- KEYS[5] the key's usage bucket of this hour   KEYS[6] the key's GCRA state
-- KEYS[7] the key's usage outbox (layout.outbox_key)
-- ARGV: now_ms, default_cost, charge_ttl_s, path, low_threshold, route, cache_hit ('1' or '0'),
--       usage_ttl_s, free ('1': the /me step), max_credits (the bound a refill stops at),
--       outbox ('1': an exporter exists, keep the charge's usage event in the outbox), charge id,
--       outbox_maxlen
-- Returns {reason, limit, remaining, reset_ms, retry_after_ms, credits, key_id, event, 0} (the
-- invalid-key count the caller fills in)
-- and, for ok, rate_limited and no_credits, cost (debited) and plan (the gateway's metrics by plan),
-- and, where a rate limit applies, window_ms: the time the plan refills its whole burst in, the
-- one window the rate-limit headers state (limit = burst requests per window); then refilled (the
-- credits a refill applied by this step added, 0 when none) and next_refill_ms (-1: no refill).
--
-- Free (ARGV[9] = '1', GET /_tollgate/v1/me): the key checks, the refill and the GCRA as for any
-- request (so the endpoint is rate-limited by the key's own plan, with no second GCRA anywhere),
-- but cost 0: no debit, no charge record, no usage counts but a refill's.
--
-- Usage (issue 13): every answer for a known key counts in its hour's bucket, field
-- '<counter>:<route>' (layout.COUNTERS): requests, charged, hits when served; 4xx when refused.
-- The usage event of a charge (the notifier's exporter) is the caller's to add: the stream is one
-- global key (ledger.py). With ARGV[11] = '1' the step keeps a copy in the key's outbox until the
-- exporter has read it (ledger/outbox.py), so an event whose XADD never happens is sent later.
-- pcall: a usage write that fails (a bucket of the wrong type) must never fail the request.

local now = tonumber(ARGV[1])
local route = ARGV[6] or ''
local free = ARGV[9] == '1'

local function count(counter, n)
  -- a field's first count may be the bucket's first: only then does it need its TTL (one
  -- command less per request than an EXPIRE every time)
  if redis.pcall('HINCRBY', KEYS[5], counter .. ':' .. route, n) == n then
    redis.pcall('EXPIRE', KEYS[5], tonumber(ARGV[8]))
  end
end

local function refused(reply)
  if not free then count('4xx', 1) end
  return reply
end

-- Refills (issue 13; ledger/refill.py is the Python twin, tests/test_refill.py checks they agree).
-- Civil dates in integers, Howard Hinnant's algorithms ("chrono-Compatible Low-Level Date
-- Algorithms"): Redis's Lua has no os.date. Days count from 1970-01-01; months are 1..12.
local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local doy = math.floor((153 * ((m + 9) % 12) + 2) / 5) + d - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

local function civil_from_days(z)
  z = z + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524)
                          - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local d = doy - math.floor((153 * mp + 2) / 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  local y = yoe + era * 400
  if m <= 2 then y = y + 1 end
  return y, m, d
end

-- the monthly boundary of month (y, m): day dom, or the month's last day when it is shorter
local function boundary(y, m, dom)
  if m < 1 then y, m = y - 1, m + 12 elseif m > 12 then y, m = y + 1, m - 12 end
  local first = days_from_civil(y, m, 1)
  local ny, nm = y, m + 1
  if nm > 12 then ny, nm = y + 1, 1 end
  return first + math.min(dom, days_from_civil(ny, nm, 1) - first) - 1
end

-- {start, next} of the refill period that now falls in, in ms
local function period(interval, dom)
  local step = interval == 'hourly' and 3600000 or 86400000
  local start = now - now % step
  if interval ~= 'monthly' then return start, start + step end
  local y, m = civil_from_days(start / 86400000)
  local day = start / 86400000
  local this = boundary(y, m, dom)
  if day >= this then return this * 86400000, boundary(y, m + 1, dom) * 86400000 end
  return boundary(y, m - 1, dom) * 86400000, this * 86400000
end
-- The caller chose the charge id (ledger/__init__.py): refunded already (its answer was lost and the
-- caller gave it up) means this late authorize must change nothing; charged already (applied
-- twice) means it is done.
if redis.call('EXISTS', KEYS[3], KEYS[4]) > 0 then
  if redis.call('EXISTS', KEYS[4]) == 1 then return {'refunded', -1, -1, -1, -1, -1, '', '', 0} end
  local held = redis.call('HMGET', KEYS[1], 'id', 'credits')
  return {'ok', -1, -1, -1, -1, tonumber(held[2] or '0'), held[1] or '', '', 0}
end
local rec = redis.call('HMGET', KEYS[1], 'id', 'credits', 'revoked', 'expires_at', 'plan',
                       'refilled_at')
local key_id = rec[1]
if not key_id then return {'invalid_key', -1, -1, -1, -1, -1, '', '', 0} end
if rec[3] == '1' then return refused({'revoked', -1, -1, -1, -1, -1, key_id, '', 0}) end
local expires = tonumber(rec[4] or '0') or 0
if expires > 0 and now >= expires then
  return refused({'expired', -1, -1, -1, -1, -1, key_id, '', 0})
end

-- cost: the plan's cost for the longest matching path prefix, else the route's creditCost
local cost = tonumber(ARGV[2])
if free then cost = 0 end
local credits = tonumber(rec[2] or '0') or 0
local rate, burst = 0, 0
local refill_amount, refilled, next_refill = 0, 0, -1
local plan = rec[5]
if plan and plan ~= '' then
  local pkey = KEYS[2]
  -- the refill: fields of the one HMGET a plan costs anyway (refill.FIELDS)
  local p = redis.call('HMGET', pkey, 'rate', 'burst', 'refill_amount', 'refill_interval',
                       'refill_day', 'refill_mode', 'refill_ceiling')
  rate = tonumber(p[1] or '0') or 0
  burst = tonumber(p[2] or '0') or 0
  refill_amount = tonumber(p[3] or '0') or 0
  local interval = p[4]
  if refill_amount > 0 and (interval == 'hourly' or interval == 'daily' or interval == 'monthly') then
    local start
    start, next_refill = period(interval, tonumber(p[5] or '1') or 1)
    local last = tonumber(rec[6] or '')
    if not last then
      -- a key that never saw this refill (made before it, or its plan gained one): it starts at
      -- the current period, first refill at the next boundary, as a key created on the plan does
      redis.call('HSET', KEYS[1], 'refilled_at', start)
    elseif start > last then
      -- the first step of a later period: ONE refill (missed periods are not made up), atomic
      -- with every other step on the key, so concurrent requests across replicas refill once
      local after = credits + refill_amount
      if p[6] == 'topup' then after = math.min(after, tonumber(p[7] or '0') or 0) end
      after = math.max(credits, math.min(after, tonumber(ARGV[10])))
      redis.call('HSET', KEYS[1], 'refilled_at', start)
      if after > credits then
        refilled = after - credits
        credits = redis.call('HINCRBY', KEYS[1], 'credits', refilled)
        count('refilled', refilled)
      end
    end
  end
  local path = ARGV[4]
  if free then path = '' end
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
local rl = KEYS[6]
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
    return refused({'rate_limited', limit, 0, base - now, allow_at - now, credits, key_id, '', 0, 0, plan or '', window, refilled, next_refill})
  end
  remaining = math.floor((tolerance - (new_tat - now)) / interval)
  reset = new_tat - now
end

if credits < cost then
  return refused({'no_credits', limit, remaining, reset, -1, credits, key_id, '', 0, 0, plan or '', window, refilled, next_refill})
end
if new_tat then redis.call('SET', rl, new_tat, 'PX', new_tat - now + 1000) end
local left = credits
local event = ''
if cost > 0 then
  left = redis.call('HINCRBY', KEYS[1], 'credits', -cost)
  -- what refund.lua needs: the record to credit, the cost, the usage bucket and route to count in
  -- (all names of this key's slot: refund.lua uses them from here)
  redis.call('SET', KEYS[3], KEYS[1] .. '|' .. cost .. '|' .. KEYS[5] .. '|' .. route, 'EX', tonumber(ARGV[3]))
  local low = tonumber(ARGV[5])
  if left == 0 then event = 'exhausted'
  elseif credits >= low and left < low then event = 'low' end
  count('charged', cost)
  if ARGV[11] == '1' then
    keep_unexported(KEYS[7], 'charge', ARGV[12], key_id, plan or '', cost, ARGV[1], route,
                    ARGV[8], ARGV[13])
  end
end
if not free then
  count('requests', 1)
  if ARGV[7] == '1' then count('hits', 1) end
end
return {'ok', limit, remaining, reset, -1, left, key_id, event, 0, cost, plan or '', window, refilled, next_refill}
