-- One API key from the untagged layout to the tagged one (layout.py, migration.py): atomic and
-- idempotent, so the auth replicas' start-up migrations and the ledger's on-demand step (an
-- authorize that finds only the old record) may run it at once for one key.
-- KEYS[1] old record   KEYS[2] new record   KEYS[3] old GCRA state   KEYS[4] new GCRA state
-- KEYS[5] the moved pointer of the record (layout.moved_key)   KEYS[6] the key's plan copy
-- ARGV[1] the key id   ARGV[2] how long the pointer lives (s): the longest a charge made before
-- the move lives (the ledger's charge TTL), so its refund finds the moved record (refund.lua).
-- Returns 1: moved now; 0: moved before (nothing to do); -1: no such record either way.
-- Old data only ever lives on one Redis: the names here span slots, which is fine there.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return redis.call('EXISTS', KEYS[2]) == 1 and 0 or -1
end
if redis.call('EXISTS', KEYS[2]) == 1 then
  -- moved already, and an old writer (an auth replica of the old layout, mid-rollout) wrote the
  -- old name again since: the new record is the one the ledger serves from; the stale one goes
  redis.call('DEL', KEYS[1])
  return 0
end
redis.call('RENAME', KEYS[1], KEYS[2])
if redis.call('EXISTS', KEYS[3]) == 1 then redis.call('RENAME', KEYS[3], KEYS[4]) end
redis.call('SET', KEYS[5], KEYS[2], 'EX', tonumber(ARGV[2]))
copy_plan(KEYS[2], KEYS[6], ARGV[1])
return 1
