"""The real Redis clients have the commands their Protocols promise (redis/commands.py).

mypy checks the signatures (the assignments at the end of commands.py); this checks, at run
time, that the objects the services are handed have those commands.
"""

from __future__ import annotations

from tollgate_common.redis.client import create_redis
from tollgate_common.redis.commands import Client, Scripts, Strings
from tollgate_common.redis.resp import LeanRedis

URL = "redis://127.0.0.1:6379/0"  # neither client connects before its first command


async def test_the_redis_py_pool_is_a_client() -> None:
    """create_redis() gives what the pool's users are typed with: every command they send."""
    pool = create_redis(URL)
    try:
        assert isinstance(pool, Client)
    finally:
        await pool.aclose()


async def test_the_lean_client_offers_the_shared_commands_only() -> None:
    """LeanRedis runs scripts and GET/SET (the ledger, the cache tier), not the pool's commands."""
    lean = LeanRedis(URL)
    try:
        assert isinstance(lean, Scripts)
        assert isinstance(lean, Strings)
        assert not isinstance(lean, Client)
    finally:
        await lean.aclose()
