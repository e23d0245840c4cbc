"""The store's invariants under real concurrency, on one Redis and on a Redis Cluster (issue 13):
every write is on one slot, so they hold by the order of the steps, across replicas (several
``Store``s, each with its own connections, racing on one real redis-server)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import pytest

from tollgate_auth.errors import Conflict, Invalid, NotFound
from tollgate_auth.models import KeyCreate, KeyPatch, Plan
from tollgate_auth.store import Store
from tollgate_common.ledger.apikeys import MAX_CREDITS
from tollgate_common.ledger.layout import plan_copy_key, plan_key
from tollgate_common.ledger.plancopy import VERSION
from tollgate_common.redis.client import create_redis

ROUNDS = 25
REPLICAS = 3


@pytest.fixture(params=["plain", "cluster"])
async def stores(request: pytest.FixtureRequest) -> AsyncIterator[list[Store]]:
    """REPLICAS stores (auth replicas) on one real Redis: a plain one, or a one-node Cluster
    (CROSSSLOT enforced)."""
    url = request.getfixturevalue("redis_url" if request.param == "plain" else "cluster_redis_url")
    clients = [create_redis(url) for _ in range(REPLICAS)]
    yield [Store(c, pepper="") for c in clients]
    for c in clients:
        await c.aclose()


async def outcome(step: Awaitable[Any], stagger: int = 0) -> str:
    """What a racing call ended with: ok, 404 or 409 (anything else fails the test). It starts
    ``stagger`` half-milliseconds late: rounds that vary it meet the other calls at
    different steps (what is asserted holds whichever step that is)."""
    await asyncio.sleep(stagger / 2_000)
    try:
        await step
    except NotFound:
        return "404"
    except Conflict:
        return "409"
    return "ok"


async def live_on(store: Store, plan: str) -> list[str]:
    return [k.id for k in await store.list_keys() if k.plan == plan and not k.revoked]


async def test_a_create_racing_a_delete_never_leaves_a_live_key_on_no_plan(
    stores: list[Store],
) -> None:
    """Creates on a plan racing its deletion: either the plan stays, or every create was refused."""
    a, b, c = stores
    for n in range(ROUNDS):
        name = f"p{n}"
        await a.put_plan(Plan(name=name, rate=0, burst=1))
        results = await asyncio.gather(
            outcome(a.create_key(KeyCreate(credits=1, plan=name))),
            outcome(b.delete_plan(name), n % 25),
            outcome(c.create_key(KeyCreate(credits=1, plan=name))),
        )
        exists = await a.redis.exists(plan_key(name)) == 1
        users = await live_on(a, name)
        assert exists or not users, (name, results, users)
        assert exists == (results[1] != "ok"), results


async def test_a_patch_racing_a_delete_never_leaves_a_live_key_on_no_plan(
    stores: list[Store],
) -> None:
    """Keys moved onto a plan racing its deletion: the plan stays or the moves were refused (and
    the keys kept their old plan)."""
    a, b, _ = stores
    await a.put_plan(Plan(name="home", rate=0, burst=1))
    keys = [await a.create_key(KeyCreate(credits=1, plan="home")) for _ in range(2)]
    for n in range(ROUNDS):
        name = f"q{n}"
        await a.put_plan(Plan(name=name, rate=0, burst=1))
        results = await asyncio.gather(
            *(outcome(a.patch_key(k.id, KeyPatch(plan=name))) for k in keys),
            outcome(b.delete_plan(name), n % 25),
        )
        exists = await a.redis.exists(plan_key(name)) == 1
        assert exists or not await live_on(a, name), (name, results)
        for k, r in zip(keys, results, strict=False):
            want = name if r == "ok" else "home"
            assert (await a.get_key(k.id)).plan == want
            if r == "ok" and exists:
                assert (await a.redis.hget(plan_copy_key(k.id), "name")) == name.encode()
        for k in keys:  # back home for the next round
            await a.patch_key(k.id, KeyPatch(plan="home"))


async def test_racing_plan_updates_leave_every_copy_at_the_last_one(stores: list[Store]) -> None:
    """put_plan from every replica at once, with creates on the plan between: every key's copy
    ends as the plan is (the fan-outs and the creates converge on the plan's version)."""
    a = stores[0]
    await a.put_plan(Plan(name="p", rate=0, burst=1))
    created = [await a.create_key(KeyCreate(credits=1, plan="p")) for _ in range(5)]
    for n in range(ROUNDS // 5):
        steps: list[Any] = [
            s.put_plan(Plan(name="p", rate=0, burst=1 + i + 10 * n, costs={"/x": i + 1}))
            for i, s in enumerate(stores)
        ]
        steps.append(stores[1].create_key(KeyCreate(credits=1, plan="p")))
        done = await asyncio.gather(*steps)
        created.append(done[-1])
        plan = await a.redis.hgetall(plan_key("p"))
        for k in created:
            copy = await a.redis.hgetall(plan_copy_key(k.id))
            assert copy.pop(b"name") == b"p"
            assert copy == plan, k.id


async def test_a_plan_update_is_never_seen_half_done(stores: list[Store]) -> None:
    """Readers of the plan during updates see the whole old or the whole new plan."""
    a, b, _ = stores
    await a.put_plan(Plan(name="p", rate=1, burst=1, costs={"/a": 1}))
    seen: list[dict[bytes, bytes]] = []
    stop = asyncio.Event()

    async def read() -> None:
        while not stop.is_set():
            seen.append(await b.redis.hgetall(plan_key("p")))

    reader = asyncio.create_task(read())
    for n in range(ROUNDS):
        await a.put_plan(Plan(name="p", rate=n, burst=1, costs={"/a": n, "/b": n}))
        await asyncio.sleep(0)
    stop.set()
    await reader
    shapes = {tuple(sorted(k for k in s if k != VERSION.encode())) for s in seen}
    assert shapes <= {(b"burst", b"cost:/a", b"rate"), (b"burst", b"cost:/a", b"cost:/b", b"rate")}


async def test_racing_credit_adds_stay_within_the_bounds(stores: list[Store]) -> None:
    """Adds from every replica at once never take the balance past MAX_CREDITS or below 0, and
    every add answered ok is in the balance."""
    a = stores[0]
    start = MAX_CREDITS - 5
    k = await a.create_key(KeyCreate(credits=start))
    half = MAX_CREDITS // 2

    async def add(s: Store, n: int) -> int:
        try:
            await s.change_credits(k.id, n, None)
        except Invalid:
            return 0
        return n

    steps = [add(s, 1) for s in stores for _ in range(4)] + [add(s, -half) for s in stores]
    applied = await asyncio.gather(*steps)
    assert 0 <= (await a.get_key(k.id)).credits <= MAX_CREDITS
    assert (await a.get_key(k.id)).credits == start + sum(applied)


async def test_listing_plans_during_deletions_never_fails(stores: list[Store]) -> None:
    """A plan listed while it is deleted is either listed whole or left out, never a 404."""
    a, b, _ = stores
    for n in range(ROUNDS):
        await a.put_plan(Plan(name=f"l{n}", rate=0, burst=1))
    listed = asyncio.gather(*(b.list_plans() for _ in range(ROUNDS)))
    await asyncio.gather(*(a.delete_plan(f"l{n}") for n in range(ROUNDS)))
    for plans in await listed:
        assert {p.name for p in plans} <= {f"l{n}" for n in range(ROUNDS)}


class SlowWrites:
    """A replica whose calls of one of its scripts (``script``, an attribute of the Store: the
    record write by default) stall at a gate, as on a slow auth pod: the real client underneath,
    every other command passed through at once."""

    def __init__(self, redis: Any, store: Store, script: str = "_write_record") -> None:
        self._redis = redis
        self._store = store
        self._script = script
        self.reached = asyncio.Event()
        self.go = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._redis, name)

    async def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> Any:
        script: Any = self._store
        for part in self._script.split("."):
            script = getattr(script, part)
        if sha == script.sha and not self.go.is_set():
            self.reached.set()
            await self.go.wait()
        return await self._redis.evalsha(sha, numkeys, *keys_and_args)


def slowed(store: Store, script: str = "_write_record") -> tuple[Store, SlowWrites]:
    slow = Store(store.redis, pepper="")
    gate = SlowWrites(store.redis, slow, script)
    slow.redis = gate
    return slow, gate


async def test_a_create_whose_write_lands_after_the_delete_is_undone(stores: list[Store]) -> None:
    """The worst order: the create checked the plan before the deletion's mark, the deletion
    walked the keys before the create's record existed and deleted the plan, then the record
    lands. The check after the write sees it: 404, and no live key is left on the deleted plan."""
    a, b, _ = stores
    await b.put_plan(Plan(name="p", rate=0, burst=1))
    slow, gate = slowed(a)
    create = asyncio.create_task(outcome(slow.create_key(KeyCreate(credits=1, plan="p"))))
    await gate.reached.wait()
    await b.delete_plan("p")
    gate.go.set()
    assert await create == "404"
    assert await b.redis.exists(plan_key("p")) == 0
    assert await live_on(b, "p") == []
    assert await b.key_ids() == []


async def test_a_patch_whose_write_lands_after_the_delete_is_undone(stores: list[Store]) -> None:
    """The same order for a key moved onto the plan: 404, and the key is back on its old plan
    with that plan's copy."""
    a, b, _ = stores
    await b.put_plan(Plan(name="home", rate=0, burst=7))
    await b.put_plan(Plan(name="p", rate=0, burst=1))
    k = await b.create_key(KeyCreate(credits=1, plan="home"))
    slow, gate = slowed(a)
    patch = asyncio.create_task(outcome(slow.patch_key(k.id, KeyPatch(plan="p", name="n"))))
    await gate.reached.wait()
    await b.delete_plan("p")
    gate.go.set()
    assert await patch == "404"
    assert await b.redis.exists(plan_key("p")) == 0
    info = await b.get_key(k.id)
    assert (info.plan, info.name) == ("home", "")
    assert await b.redis.hget(plan_copy_key(k.id), "burst") == b"7"


async def test_a_create_between_the_walk_and_the_delete_is_refused(stores: list[Store]) -> None:
    """The other order: the deletion marked the plan and walked the keys, and a whole create
    runs before the plan goes. The create sees the mark: 404, the deletion goes through."""
    a, b, _ = stores
    await b.put_plan(Plan(name="p", rate=0, burst=1))
    slow, gate = slowed(a, "_end_deleting")
    delete = asyncio.create_task(outcome(slow.delete_plan("p")))
    await gate.reached.wait()
    assert await outcome(b.create_key(KeyCreate(credits=1, plan="p"))) == "404"
    gate.go.set()
    assert await delete == "ok"
    assert await b.redis.exists(plan_key("p")) == 0
    assert await b.key_ids() == []


async def test_a_stale_fan_out_never_takes_a_copy_back(stores: list[Store]) -> None:
    """An update whose fan-out stalls while a later update fans out in full: when the first
    resumes, the keys' copies keep the later plan (the copy never goes to a lower version)."""
    a, b, _ = stores
    await b.put_plan(Plan(name="p", rate=0, burst=1))
    k = await b.create_key(KeyCreate(credits=1, plan="p"))
    slow, gate = slowed(a, "_copies._write")
    first = asyncio.create_task(slow.put_plan(Plan(name="p", rate=0, burst=2)))
    await gate.reached.wait()
    await b.put_plan(Plan(name="p", rate=0, burst=3))
    gate.go.set()
    await first
    assert await b.redis.hget(plan_copy_key(k.id), "burst") == b"3"
    assert await b.redis.hget(plan_key("p"), "burst") == b"3"


async def test_a_create_that_read_an_older_plan_ends_with_the_newer(stores: list[Store]) -> None:
    """A create read the plan, an update fanned out before the create's record existed (so it
    skipped the key), then the record lands: the create's check copies the newer plan."""
    a, b, _ = stores
    await b.put_plan(Plan(name="p", rate=0, burst=1))
    slow, gate = slowed(a)
    create = asyncio.create_task(slow.create_key(KeyCreate(credits=1, plan="p")))
    await gate.reached.wait()
    await b.put_plan(Plan(name="p", rate=0, burst=5))
    gate.go.set()
    k = await create
    assert await b.redis.hget(plan_copy_key(k.id), "burst") == b"5"
