"""Print the configuration table of every service (README's "Configuration" section) from the
settings classes themselves, so the docs cannot drift: tests/test_readme.py checks the README
lists every variable."""

from __future__ import annotations

from typing import Any

from pydantic_settings import BaseSettings

from tollgate_auth.settings import AuthSettings
from tollgate_gateway.settings import GatewaySettings
from tollgate_notifier.settings import NotifierSettings
from tollgate_operator.settings import OperatorSettings

SERVICES: list[tuple[str, type[BaseSettings]]] = [
    ("gateway", GatewaySettings),
    ("auth", AuthSettings),
    ("notifier", NotifierSettings),
    ("operator", OperatorSettings),
]


def env_names() -> list[str]:
    out = []
    for _, cls in SERVICES:
        prefix = str(cls.model_config.get("env_prefix", ""))
        out += [f"{prefix}{name.upper()}" for name in cls.model_fields]
    return out


def _default(field: Any) -> str:
    if field.default_factory is not None:
        return "(computed)" if "consumer" in str(field.default_factory) else "see below"
    d = field.default
    if d == "" or d is None:
        return '""'
    return f"`{d}`"


def table() -> str:
    lines = []
    for name, cls in SERVICES:
        prefix = str(cls.model_config.get("env_prefix", ""))
        lines += [f"**{name}**", "", "| variable | default | meaning |", "|---|---|---|"]
        for fname, field in cls.model_fields.items():
            default = _default(field)
            if fname == "consumer":
                default = "host-pid"
            elif field.default_factory is not None:
                default = f"`{field.default_factory()}`"
            lines.append(f"| `{prefix}{fname.upper()}` | {default} | {field.description or ''} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table())
