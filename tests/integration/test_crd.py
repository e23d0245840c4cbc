"""The CRD's schema and the gateway's model say the same thing."""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

import yaml

from tollgate_common import routes

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
