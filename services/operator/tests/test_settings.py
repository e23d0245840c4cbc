"""The operator refuses a watch list that could only ever watch nothing."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tollgate_operator.settings import OperatorSettings


def test_namespaces_from_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOLLGATE_OPERATOR_NAMESPACES", '["tollgate", "team-a"]')
    assert OperatorSettings().namespaces == ["tollgate", "team-a"]


@pytest.mark.parametrize("bad", ['[""]', '["Team_A"]', '["a.b"]', '["-x"]'])
def test_a_name_no_namespace_can_have_is_refused(monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    monkeypatch.setenv("TOLLGATE_OPERATOR_NAMESPACES", bad)
    with pytest.raises(ValidationError, match="namespaces"):
        OperatorSettings()
