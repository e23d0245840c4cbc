"""One image recipe for the services, built in two phases (issue 15): dependencies from the
lockfile first, then the sources, so a code change reuses the dependency layer."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ("gateway", "auth", "notifier", "operator")


def _instructions() -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if line.strip() and line[0] != "#"]


def test_one_dockerfile_serves_every_service() -> None:
    """The root Dockerfile takes the service as a build argument; no service has its own."""
    steps = _instructions()
    assert "ARG SERVICE" in steps
    assert list(ROOT.glob("services/*/Dockerfile*")) == []
    assert all((ROOT / "services" / name / "pyproject.toml").exists() for name in SERVICES)


def test_dependencies_are_installed_before_the_sources_are_copied() -> None:
    """The lockfile's dependencies install (without the workspace) before any source is copied;
    the workspace installs after."""
    steps = _instructions()
    deps = next(i for i, s in enumerate(steps) if "--no-install-workspace" in s)
    sources = [i for i, s in enumerate(steps) if s.startswith(("COPY libs ", "COPY services "))]
    assert sources
    assert all(i > deps for i in sources)
    before = [s for s in steps[:deps] if s.startswith("COPY ")]
    assert all("pyproject.toml" in s or "uv.lock" in s for s in before)
    assert any("uv sync" in s and i > max(sources) for i, s in enumerate(steps))
