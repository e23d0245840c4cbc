"""The CRD's schema and the gateway's model say the same thing."""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

import pytest
import yaml
from pydantic import ValidationError

from tollgate_common.contracts import routes

CRD = (
    Path(__file__).resolve().parents[2] / "deploy/helm/tollgate/crds/apibackends.tollgate.dev.yaml"
)


def spec_schema() -> dict[str, Any]:
    crd = yaml.safe_load(CRD.read_text())
    [version] = crd["spec"]["versions"]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return schema


def test_patterns_match_the_model() -> None:
    """pathPrefix and url patterns are the model's."""
    s = spec_schema()["properties"]
    assert s["pathPrefix"]["pattern"] == routes.PATH_PREFIX_PATTERN
    assert s["endpoints"]["items"]["properties"]["url"]["pattern"] == routes.URL_PATTERN


def test_enums_match_the_model() -> None:
    """strategy, successWhen and balancer accept exactly the model's values."""
    s = spec_schema()["properties"]
    assert s["strategy"]["enum"] == list(get_args(routes.Strategy))
    assert s["successWhen"]["enum"] == list(get_args(routes.SuccessWhen))
    assert s["balancer"]["enum"] == list(get_args(routes.Balancer))


def test_every_model_field_is_in_the_schema() -> None:
    """No field the gateway reads is pruned away by the API server."""
    s = spec_schema()["properties"]
    aliases = {f.alias for f in routes.ApiBackendSpec.model_fields.values()}
    assert aliases == set(s)


def test_bounds_match_the_model() -> None:
    """Service names, header names and creditCost are bounded alike in the CRD and the model."""
    s = spec_schema()["properties"]
    service = s["endpoints"]["items"]["properties"]["service"]
    assert service["properties"]["name"]["pattern"] == routes.SERVICE_NAME_PATTERN
    assert "port" in service["required"]
    assert s["creditCost"]["maximum"] == routes.MAX_CREDIT_COST
    rules = [v["rule"] for v in s["headers"]["x-kubernetes-validations"]]
    assert any(routes.HEADER_NAME_PATTERN in r for r in rules)


def undescribed(schema: dict[str, Any], path: str) -> list[str]:
    missing = [] if schema.get("description") else [path]
    for name, sub in (schema.get("properties") or {}).items():
        missing += undescribed(sub, f"{path}.{name}")
    if "items" in schema:
        missing += undescribed(schema["items"], f"{path}[]")
    return missing


def test_every_field_has_a_description() -> None:
    """`kubectl explain apibackend.spec` documents every field."""
    crd = yaml.safe_load(CRD.read_text())
    [version] = crd["spec"]["versions"]
    assert undescribed(version["schema"]["openAPIV3Schema"], "apibackend") == []


def test_model_refuses_service_names_that_leave_the_namespace() -> None:
    """The model, like the CRD, refuses a Service name with a dot or a slash."""
    for name in ("payments.prod.svc.cluster.local/", "evil.example/", "Upper"):
        with pytest.raises(ValidationError):
            routes.ServiceRef.model_validate({"name": name, "port": 80})
