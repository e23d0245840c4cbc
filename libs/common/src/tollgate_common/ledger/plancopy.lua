-- copy_plan(record, copy, key_id): make a key's copy of its plan (layout.plan_copy_key) what the
-- plan says now, and keep the plan's member set (layout.plan_keys_key) in step. The authorize
-- step reads the copy, never the plan (another slot on a Redis Cluster). Prepended to migrate.lua
-- alone (ledger/plancopy.py), which runs only on one plain Redis (the old layout never ran on a
-- Cluster): it reads the plan and the member sets by derived names (layout.plan_key,
-- layout.plan_keys_key; tests/test_layout.py checks the spelling). Auth's store writes copies
-- with plancopy.WRITE instead, on the key's slot only.
-- Returns 1 when the copy holds a plan, 0 when the key has none (or its plan does not exist).
local function copy_plan(record, copy, key_id)
  local old = redis.call('HGET', copy, 'name')
  local plan = redis.call('HGET', record, 'plan') or ''
  if old and old ~= plan then redis.call('SREM', 'tollgate:auth:plan-keys:' .. old, key_id) end
  redis.call('DEL', copy)
  if plan == '' then return 0 end
  redis.call('SADD', 'tollgate:auth:plan-keys:' .. plan, key_id)
  local fields = redis.call('HGETALL', 'tollgate:auth:plan:' .. plan)
  if #fields == 0 then return 0 end
  redis.call('HSET', copy, 'name', plan, unpack(fields))
  return 1
end
