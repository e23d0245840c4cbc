-- Decide atomically, across every replica, whether an event makes a notification.
-- KEYS[1] group state hash. ARGV: entry_id, now (s), repeat_interval (s), resolves (0/1), ttl (s),
-- severity. Returns {notify (0/1), seq, count, status, severity of the group when it fired}:
-- a resolved notification goes where the firing one went.
-- Idempotent per stream entry: an entry redelivered after a crash gets the same decision.
local g = KEYS[1]
local entry, now, repeat_s, resolves, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5])
local st = redis.call('HMGET', g, 'status', 'last_notified', 'seq', 'count', 'decided_entry', 'decided_seq', 'decided_count', 'severity')
if st[5] == entry then
  return {1, tonumber(st[6]), tonumber(st[7]), st[1], st[8]}
end
local severity = st[8] or ARGV[6]
local status = st[1] or 'none'
local last = tonumber(st[2] or '0')
local seq = tonumber(st[3] or '0')
local count = tonumber(st[4] or '0')
local notify = 0
if resolves == '1' then
  if status == 'firing' then
    status = 'resolved'; notify = 1
  end
else
  count = count + 1
  if status ~= 'firing' or now - last >= repeat_s then
    status = 'firing'; notify = 1; severity = ARGV[6]
  end
end
if notify == 1 then
  seq = seq + 1
  redis.call('HSET', g, 'status', status, 'last_notified', now, 'seq', seq, 'count', 0,
             'decided_entry', entry, 'decided_seq', seq, 'decided_count', count,
             'severity', severity)
else
  redis.call('HSET', g, 'count', count)
end
redis.call('EXPIRE', g, ttl)
return {notify, seq, count, status, severity}
