"""TOLLGATE_FIXTURES picks the provider; containers fall back to processes with a reason."""

from __future__ import annotations

import pytest

from tollgate_testkit.provider import decide, parse


@pytest.mark.parametrize(
    ("value", "kind"), [(None, "process"), ("", "process"), (" Containers ", "containers")]
)
def test_parse_defaults_to_processes(value: str | None, kind: str) -> None:
    """Unset or empty means process; the value is read case- and space-insensitively."""
    assert parse(value) == kind


def test_parse_refuses_an_unknown_provider() -> None:
    """A typo is an error naming the variable and the choices, never a silent default."""
    with pytest.raises(ValueError, match=r"TOLLGATE_FIXTURES='docker'.*process, containers"):
        parse("docker")


def test_containers_where_they_can_run() -> None:
    """Asked for and available: containers."""
    assert decide("containers", None).kind == "containers"


def test_containers_fall_back_with_the_reason() -> None:
    """Asked for but unavailable: processes, and the note says why."""
    provider = decide("containers", "no Docker engine: socket missing")
    assert provider.kind == "process"
    assert "no Docker engine: socket missing" in provider.note


def test_processes_never_look_for_docker() -> None:
    """The default ignores whatever Docker's state is."""
    assert decide("process", "no Docker engine").kind == "process"
