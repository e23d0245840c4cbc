"""The handlers are wired at start from the settings the process read, not at import."""

from __future__ import annotations

import importlib

import pytest

from tollgate_operator.settings import OperatorSettings


def test_importing_the_handlers_reads_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bad environment is the start's problem (one clear line), never an import error."""
    monkeypatch.setenv("TOLLGATE_OPERATOR_NAMESPACES", '["Not_A_Namespace"]')
    import tollgate_operator.handlers as handlers

    importlib.reload(handlers)


def test_register_uses_the_settings_it_is_given() -> None:
    from tollgate_operator.handlers import register

    registry = register(OperatorSettings(drift_check_seconds=7))
    timers = registry._spawning.get_all_handlers()
    assert [(t.id, t.interval) for t in timers] == [("drift", 7.0)]
    # resume + create + update + the finalizer-backed delete; the index; login, startup, cleanup
    assert len(registry._changing.get_all_handlers()) == 4
    assert len(registry._indexing.get_all_handlers()) == 1
    assert len(registry._activities.get_all_handlers()) == 3
