"""The settings base: a bad Redis URL stops a service at start-up with a clear line."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from pydantic_settings import SettingsConfigDict

from tollgate_common.settings import ServiceSettings, load_settings


class DemoSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="TOLLGATE_DEMO_", extra="ignore", frozen=True)


def test_rediss_url_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    """A TLS URL with an ACL user is a valid setting."""
    monkeypatch.setenv("TOLLGATE_DEMO_REDIS_URL", "rediss://u:pw@redis:6380/1")
    assert DemoSettings().redis_url == "rediss://u:pw@redis:6380/1"


def test_a_refused_url_never_shows_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    """The validation error names the variable and the problem, and hides the value."""
    monkeypatch.setenv("TOLLGATE_DEMO_REDIS_URL", "rediss://u:s3cret@redis/0?ssl_cert_reqs=none")
    with pytest.raises(ValidationError) as info:
        DemoSettings()
    assert "TOLLGATE_DEMO_REDIS_URL" in str(info.value)
    assert "s3cret" not in str(info.value)


def test_load_settings_exits_with_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """load_settings turns the error into an exit message naming the setting."""
    monkeypatch.setenv("TOLLGATE_DEMO_REDIS_URL", "memcached://u:s3cret@redis")
    with pytest.raises(SystemExit) as info:
        load_settings(DemoSettings, "tollgate-demo")
    msg = str(info.value.code)
    assert msg == (
        "tollgate-demo: invalid settings: TOLLGATE_DEMO_REDIS_URL: unsupported scheme "
        "'memcached': use redis:// or rediss:// (TLS)"
    )
