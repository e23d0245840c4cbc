"""What a Redis URL means: the one parser both Redis clients use."""

from __future__ import annotations

import pytest

from tollgate_common.redis.url import RedisTarget, RedisUrlError, parse_redis_url


def test_plain_url_with_defaults() -> None:
    """A bare redis:// URL is plain TCP to port 6379, db 0, no AUTH."""
    t = parse_redis_url("redis://cache")
    assert t == RedisTarget("cache", 6379, 0, tls=False)
    assert t.auth_args() == ()
    assert t.ssl_context() is None


def test_rediss_is_tls_with_verification() -> None:
    """rediss:// verifies the certificate and the hostname, with nothing to switch it off."""
    t = parse_redis_url("rediss://redis.example:6380/2")
    assert (t.host, t.port, t.db, t.tls) == ("redis.example", 6380, 2, True)
    ctx = t.ssl_context()
    assert ctx is not None
    assert ctx.check_hostname
    kwargs = t.redis_py_kwargs()
    assert kwargs["ssl_cert_reqs"] == "required"
    assert kwargs["ssl_check_hostname"] is True


def test_username_and_password_make_acl_auth() -> None:
    """redis://user:pw@host sends AUTH user pw; percent-escapes are decoded."""
    t = parse_redis_url("redis://tollgate:p%40ss@h:1/0")
    assert t.auth_args() == ("tollgate", "p@ss")
    assert t.redis_py_kwargs()["username"] == "tollgate"


def test_password_alone_is_legacy_auth() -> None:
    """redis://:pw@host sends AUTH pw."""
    assert parse_redis_url("redis://:pw@h").auth_args() == ("pw",)


def test_password_is_not_in_the_repr() -> None:
    """A target printed in a log line does not show the password."""
    assert "s3cret" not in repr(parse_redis_url("rediss://u:s3cret@h"))


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://u:s3cret@h", "unsupported scheme 'http'"),
        ("unix:///tmp/redis.sock", "unsupported scheme 'unix'"),
        ("h:6379", "unsupported scheme"),
        ("rediss://u:s3cret@h/0?ssl_cert_reqs=none", "unsupported option(s) ssl_cert_reqs"),
        ("redis://u:s3cret@h/0#x", "unsupported option(s) a #fragment"),
        ("redis://u:s3cret@h/zero", "database number"),
        ("redis://u:s3cret@h:port/0", "not a valid URL"),
        ("redis://user@h", "a username needs a password"),
        ("redis+cluster://u:s3cret@h:7000/1", "only database 0"),
        ("redis+sentinel://u:s3cret@h", "unsupported scheme 'redis+sentinel'"),
    ],
)
def test_refused_urls_name_the_setting_not_the_password(url: str, problem: str) -> None:
    """Each refused URL says which setting and what is wrong, and never echoes the password."""
    with pytest.raises(RedisUrlError) as info:
        parse_redis_url(url, setting="TOLLGATE_GATEWAY_REDIS_URL")
    msg = str(info.value)
    assert msg.startswith("TOLLGATE_GATEWAY_REDIS_URL: ")
    assert problem in msg
    assert "s3cret" not in msg


def test_a_cluster_url_names_a_seed_node() -> None:
    """redis+cluster:// is a cluster's seed node, plain TCP, db 0; a /0 is accepted."""
    t = parse_redis_url("redis+cluster://:pw@node-0:7000/0")
    assert (t.host, t.port, t.db, t.tls, t.cluster) == ("node-0", 7000, 0, False, True)
    assert t.auth_args() == ("pw",)


def test_rediss_cluster_is_tls_on_every_node() -> None:
    """rediss+cluster:// verifies each node as rediss:// does, and a node keeps the credentials."""
    t = parse_redis_url("rediss+cluster://u:pw@seed")
    assert (t.port, t.tls, t.cluster) == (6379, True, True)
    kwargs = t.redis_py_cluster_kwargs()
    assert (kwargs["ssl"], kwargs["ssl_cert_reqs"], kwargs["ssl_check_hostname"]) == (
        True,
        "required",
        True,
    )
    node = t.at("10.0.0.7", 7001)
    assert (node.host, node.port, node.tls, node.cluster) == ("10.0.0.7", 7001, True, False)
    assert node.auth_args() == ("u", "pw")


def test_a_plain_url_is_not_a_cluster() -> None:
    """redis:// and rediss:// stay one server."""
    assert not parse_redis_url("redis://h").cluster
    assert not parse_redis_url("rediss://h").cluster
