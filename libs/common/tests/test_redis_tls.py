"""Both Redis clients over rediss:// with an ACL user, against a real TLS-only redis-server:
they work, a wrong password is a clear error, and there is no way to a server TLS cannot
verify (no downgrade to plain TCP)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.exceptions import AuthenticationError, RedisError

from tollgate_common.redis.client import LuaScript, create_redis
from tollgate_common.redis.resp import LeanRedis
from tollgate_testkit.pki import make_server_pki
from tollgate_testkit.redis_server import AclUser, RedisServer


@pytest.fixture
def trust(tls_redis: RedisServer, monkeypatch: pytest.MonkeyPatch) -> RedisServer:
    """The TLS server, its CA trusted the way a pod trusts one: SSL_CERT_FILE."""
    assert tls_redis.tls is not None
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_redis.tls.ca))
    return tls_redis


@pytest.fixture
def rogue_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A TLS redis-server whose certificate comes from a CA nobody trusts."""
    server = RedisServer(
        tmp_path / "rogue", tls=make_server_pki(tmp_path / "rogue-pki"), user=AclUser("u", "p")
    )
    yield server
    server.stop()


@pytest.fixture
def misnamed_redis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RedisServer]:
    """A TLS redis-server with a trusted certificate for another host name."""
    pki = make_server_pki(tmp_path / "misnamed-pki", hosts=("redis.other.example",))
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca))
    server = RedisServer(tmp_path / "misnamed", tls=pki, user=AclUser("u", "p"))
    yield server
    server.stop()


async def settle() -> None:
    """Let the loop run the callbacks that close a failed handshake's socket (asyncio closes it
    with call_soon), before the test's loop is closed under them."""
    for _ in range(3):
        await asyncio.sleep(0)
    gc.collect()


def wrong_password(url: str) -> str:
    return url.replace(":s3cret-pw@", ":not-the-password@")


async def test_lean_client_over_tls_with_acl_user(trust: RedisServer) -> None:
    """SET, GET and a Lua script over TLS, authenticated as the ACL user."""
    r = LeanRedis(trust.url)
    try:
        assert await r.set(b"tls:k", b"v", px=60_000) == b"OK"
        assert await r.get(b"tls:k") == b"v"
        assert await r.execute("ACL", "WHOAMI") == b"tollgate"
        assert await LuaScript("return ARGV[1]")(r, [], ["x"]) == b"x"
    finally:
        await r.aclose()


async def test_redis_py_over_tls_with_acl_user(trust: RedisServer) -> None:
    """The redis-py pool reads the URL the same way: TLS, AUTH as the ACL user."""
    r = create_redis(trust.url)
    try:
        await r.set(b"tls:py", b"v")
        assert await r.get(b"tls:py") == b"v"
        assert await r.acl_whoami() == "tollgate"  # redis-py decodes this reply itself
    finally:
        await r.aclose()


async def test_lean_wrong_password_is_a_clear_error(trust: RedisServer) -> None:
    """A wrong password: AuthenticationError naming the server and the user, not the password."""
    r = LeanRedis(wrong_password(trust.url))
    with pytest.raises(AuthenticationError) as info:
        await r.get(b"k")
    msg = str(info.value)
    assert f"rediss://127.0.0.1:{trust.port}" in msg
    assert "AUTH as user 'tollgate' refused" in msg
    assert "WRONGPASS" in msg
    assert "not-the-password" not in msg
    await r.aclose()
    await settle()


async def test_redis_py_wrong_password_is_an_authentication_error(trust: RedisServer) -> None:
    """redis-py refuses with AuthenticationError too."""
    r = create_redis(wrong_password(trust.url))
    with pytest.raises(AuthenticationError):
        await r.get(b"k")
    await r.aclose()
    await settle()


async def test_lean_refuses_an_untrusted_certificate(rogue_redis: RedisServer) -> None:
    """A certificate from an unknown CA fails the connection; nothing is sent in clear."""
    r = LeanRedis(rogue_redis.url)
    with pytest.raises(ConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
        await r.get(b"k")
    await r.aclose()
    await settle()


async def test_redis_py_refuses_an_untrusted_certificate(rogue_redis: RedisServer) -> None:
    """redis-py fails the same connection."""
    r = create_redis(rogue_redis.url)
    with pytest.raises(RedisError, match="CERTIFICATE_VERIFY_FAILED"):
        await r.get(b"k")
    await r.aclose()
    await settle()


async def test_both_refuse_a_certificate_for_another_host(misnamed_redis: RedisServer) -> None:
    """A trusted certificate that does not name the host is refused (hostname checking)."""
    lean = LeanRedis(misnamed_redis.url)
    with pytest.raises(ConnectionError, match=r"IP address mismatch|Hostname mismatch"):
        await lean.get(b"k")
    await lean.aclose()
    await settle()
    py = create_redis(misnamed_redis.url)
    with pytest.raises(RedisError, match=r"IP address mismatch|Hostname mismatch"):
        await py.get(b"k")
    await py.aclose()
    await settle()


async def test_rediss_to_a_plain_server_is_refused(redis_url: str) -> None:
    """rediss:// never falls back to plain TCP, even when the server only speaks plain."""
    tls_url = redis_url.replace("redis://", "rediss://")
    lean = LeanRedis(tls_url)
    with pytest.raises(ConnectionError):
        await lean.get(b"k")
    await lean.aclose()
    await settle()
    py = create_redis(tls_url)
    with pytest.raises(RedisError):
        await py.get(b"k")
    await py.aclose()
    await settle()
