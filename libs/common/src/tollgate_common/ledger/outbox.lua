-- keep_unexported(box, kind, charge, key_id, plan, cost, ts, route, ttl, bound): a usage event in
-- the key's outbox (layout.outbox_key; ledger/outbox.py: its fields joined by '|' in outbox.ORDER,
-- scored by its ts in ms). The outbox's expiry (ttl, s) with its first entry; the oldest dropped
-- beyond bound entries. pcall: the outbox must never fail the charge or refund it records.
-- Prepended to authorize.lua and refund.lua (ledger/outbox.py, with_outbox).
local function keep_unexported(box, kind, charge, key_id, plan, cost, ts, route, ttl, bound)
  local m = kind .. '|' .. charge .. '|' .. key_id .. '|' .. plan .. '|'
            .. string.format('%d', cost) .. '|' .. ts .. '|' .. route
  redis.pcall('ZADD', box, tonumber(ts), m)
  local n = redis.pcall('ZCARD', box)
  if n == 1 then redis.pcall('EXPIRE', box, tonumber(ttl))
  elseif type(n) == 'number' and n > tonumber(bound) then
    redis.pcall('ZREMRANGEBYRANK', box, 0, n - tonumber(bound) - 1)
  end
end
