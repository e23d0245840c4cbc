"""Both clients on a real three-primary Redis Cluster: the lean one (cluster.LeanCluster, made
by create_lean) and redis-py's (create_redis); MOVED, ASK and a forgotten script (issue 13)."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator

import pytest
from redis.exceptions import TimeoutError as RedisTimeoutError

from tollgate_common.contracts.cachekeys import Purge, entry_key, purge
from tollgate_common.redis.client import LuaScript, answers, create_lean, create_redis
from tollgate_common.redis.cluster import LeanCluster
from tollgate_common.redis.resp import LeanRedis
from tollgate_common.redis.slots import key_slot
from tollgate_testkit.redis_cluster import RedisClusterNodes

ECHO = LuaScript("redis.call('SET', KEYS[1], ARGV[1]); return redis.call('GET', KEYS[1])")


def keys_on_every_node(cluster: RedisClusterNodes, per_node: int = 3) -> dict[int, list[str]]:
    """Keys whose slots the three nodes serve, ``per_node`` each (by node port)."""
    found: dict[int, list[str]] = {n.port: [] for n in cluster.nodes}
    i = 0
    while any(len(v) < per_node for v in found.values()):
        key = f"k:{i}"
        owner = found[cluster.owner(key_slot(key)).port]
        if len(owner) < per_node:
            owner.append(key)
        i += 1
    return found


@pytest.fixture
async def lean(redis_cluster: RedisClusterNodes) -> AsyncIterator[LeanCluster]:
    client = create_lean(redis_cluster.url)
    assert isinstance(client, LeanCluster)
    yield client
    await client.aclose()


def test_a_cluster_url_gives_the_cluster_clients(redis_cluster: RedisClusterNodes) -> None:
    """create_lean and create_redis pick the cluster client for a cluster URL only; LeanRedis
    refuses one (it cannot follow MOVED)."""
    plain = f"redis://127.0.0.1:{redis_cluster.nodes[0].port}/0"
    assert isinstance(create_lean(plain), LeanRedis)
    assert type(create_redis(redis_cluster.url)).__name__ == "RedisCluster"
    with pytest.raises(ValueError, match="cluster client"):
        LeanRedis(redis_cluster.url)


async def test_lean_get_set_and_scripts_reach_every_node(
    redis_cluster: RedisClusterNodes, lean: LeanCluster
) -> None:
    """GET, SET (PX) and EVALSHA on keys of each of the three nodes; each key is on its node."""
    for port, keys in keys_on_every_node(redis_cluster).items():
        for key in keys:
            assert await lean.set(key, b"v-" + key.encode(), px=60_000) is not None
            assert await lean.get(key) == b"v-" + key.encode()
            assert await ECHO(lean, [key + ":s"], ["x"]) == b"x"
            node = next(n for n in redis_cluster.nodes if n.port == port)
            assert node.client.get(key) == "v-" + key
    assert await lean.get("k:absent") is None
    assert await answers(lean.execute("PING"))
    assert (lean.moved, lean.asked) == (0, 0)


async def test_redis_py_cluster_reaches_every_node(redis_cluster: RedisClusterNodes) -> None:
    """redis-py's cluster client (create_redis) on the same keys, scripts loaded on every node."""
    client = create_redis(redis_cluster.url)
    try:
        for keys in keys_on_every_node(redis_cluster).values():
            for key in keys:
                await client.set(key, b"w", px=60_000)
                assert await client.get(key) == b"w"
                assert await ECHO(client, [key + ":s"], ["y"]) == b"y"
        assert await client.ping()
    finally:
        await client.aclose()


async def test_purge_walks_every_node(redis_cluster: RedisClusterNodes) -> None:
    """A cache purge (SCAN + UNLINK) deletes the matching keys of all three nodes."""
    p = Purge(route="ns/eod", prefix="/eod/")
    client = create_redis(redis_cluster.url)
    try:
        names = [entry_key("GET", "ns/eod", f"/eod/{i}", []) for i in range(60)]
        for name in names:
            await client.set(name, b"x")
        await client.set("other", b"keep")
        assert len({redis_cluster.owner(key_slot(n)).port for n in names}) == 3
        assert await purge(client, p) == 60
        assert await client.get("other") == b"keep"
    finally:
        await client.aclose()


async def test_lean_follows_ask_then_moved(
    redis_cluster: RedisClusterNodes, lean: LeanCluster
) -> None:
    """Mid-move a key already on the importing node is read there after ASK; once the move is
    done the old owner answers MOVED and the client goes to the new one from then on."""
    key = "k:moving"
    await lean.set(key, b"before")
    slot = key_slot(key)
    src = redis_cluster.owner(slot)
    dst = next(n for n in redis_cluster.nodes if n is not src)
    assert redis_cluster.begin_move(slot, dst) is src
    assert redis_cluster.migrate_keys(slot, src, dst) == 1
    assert await lean.get(key) == b"before"
    assert (lean.asked, lean.moved) == (1, 0)
    redis_cluster.finish_move(slot, dst)
    assert await lean.set(key, b"after") is not None
    assert lean.moved == 1
    assert await lean.get(key) == b"after"
    assert lean.moved == 1  # the map learnt it
    assert dst.client.get(key) == "after"


async def test_redis_py_follows_a_moved_slot(redis_cluster: RedisClusterNodes) -> None:
    """redis-py's cluster client after the same move: read and written on the new owner."""
    client = create_redis(redis_cluster.url)
    key = "k:moving2"
    try:
        await client.set(key, b"before")
        slot = key_slot(key)
        src = redis_cluster.owner(slot)
        dst = next(n for n in redis_cluster.nodes if n is not src)
        redis_cluster.begin_move(slot, dst)
        redis_cluster.migrate_keys(slot, src, dst)
        assert await client.get(key) == b"before"  # ASK
        redis_cluster.finish_move(slot, dst)
        await client.set(key, b"after")  # MOVED
        assert dst.client.get(key) == "after"
    finally:
        await client.aclose()


@pytest.mark.parametrize("client_kind", ["lean", "redis-py"])
async def test_a_flushed_script_is_loaded_again(
    redis_cluster: RedisClusterNodes, client_kind: str
) -> None:
    """SCRIPT FLUSH on every node: the next EVALSHA answers NOSCRIPT, the script is loaded again."""
    script = LuaScript("return redis.call('INCR', KEYS[1])")
    client = (
        create_lean(redis_cluster.url) if client_kind == "lean" else create_redis(redis_cluster.url)
    )
    try:
        keys = keys_on_every_node(redis_cluster, per_node=1)
        for ks in keys.values():
            assert await script(client, ks, []) == 1
        for node in redis_cluster.nodes:
            node.client.script_flush()
        for ks in keys.values():
            assert await script(client, ks, []) == 2
    finally:
        await client.aclose()


async def test_a_node_restart_is_survived(
    redis_cluster: RedisClusterNodes, lean: LeanCluster
) -> None:
    """A node restarts (its scripts gone, its data kept): the lean client reconnects to it and
    reloads the script on NOSCRIPT; the count carries on."""
    script = LuaScript("return redis.call('INCR', KEYS[1])")
    node = redis_cluster.nodes[1]
    key = keys_on_every_node(redis_cluster, per_node=1)[node.port][0]
    assert await script(lean, [key], []) == 1
    await asyncio.to_thread(node.restart)
    await asyncio.to_thread(redis_cluster.wait_ok)
    assert await script(lean, [key], []) == 2


async def test_redis_py_does_not_resend_after_a_timeout(redis_cluster: RedisClusterNodes) -> None:
    """A node that stops answering past the socket timeout: the command fails with a timeout and
    is not sent again (stock redis-py 8.1 would, and the write would apply twice once the node
    goes on)."""
    node = redis_cluster.nodes[2]
    key = keys_on_every_node(redis_cluster, per_node=1)[node.port][0]
    client = create_redis(redis_cluster.url)
    try:
        await client.set(key, 0)
        os.kill(node.proc.pid, signal.SIGSTOP)
        try:
            # the node goes on after the client's 2 s timeout, with the INCR still unread
            asyncio.get_running_loop().call_later(2.5, os.kill, node.proc.pid, signal.SIGCONT)
            with pytest.raises(RedisTimeoutError):
                await client.incr(key)
            await asyncio.sleep(1.0)  # the resumed node runs what it had received
        finally:
            os.kill(node.proc.pid, signal.SIGCONT)
        assert node.client.get(key) == "1"
    finally:
        await client.aclose()


async def test_a_subscription_of_a_client_that_sent_nothing_yet_hears_a_publish(
    redis_cluster: RedisClusterNodes,
) -> None:
    """A fresh cluster client's first command a SUBSCRIBE (the gateway's purge listener and
    table follower at start-up): it subscribes (redis-py 8.1 alone raised KeyError, its slot map
    not loaded) and hears a message published through another node's client."""
    sub, pub = create_redis(redis_cluster.url), create_redis(redis_cluster.url)
    pubsub = sub.pubsub(ignore_subscribe_messages=True)
    try:
        await pubsub.subscribe("tollgate:test:channel")
        heard = None
        for i in range(50):  # the cluster bus carries it to the subscriber's node
            await pub.publish("tollgate:test:channel", b"m%d" % i)
            heard = await pubsub.get_message(timeout=0.1)
            if heard is not None:
                break
        assert heard is not None
        assert heard["data"].startswith(b"m")
    finally:
        await pubsub.aclose()
        await sub.aclose()
        await pub.aclose()
