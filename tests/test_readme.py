"""The README documents every setting the services read."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_setting_is_in_the_readme() -> None:
    """Each TOLLGATE_* variable of the four settings classes appears in README.md."""
    spec = importlib.util.spec_from_file_location("settings_table", ROOT / "hack/settings_table.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    readme = (ROOT / "README.md").read_text()
    missing = [name for name in module.env_names() if f"`{name}`" not in readme]
    assert missing == []


def test_cold_build_time_is_the_same_in_readme_and_script() -> None:
    """The measured cold build of the Kubernetes tools is one figure, in README and k8s-tools.sh."""
    script = (ROOT / "hack/k8s-tools.sh").read_text()
    figures = re.findall(r"measured (\d+ min \d+ s)", script)
    assert figures == ["21 min 26 s"]
    readme = (ROOT / "README.md").read_text()
    assert re.findall(r"measured \*\*(\d+ min \d+ s)\*\*", readme) == figures


# What the README names that a run writes (under --run-dir), not a file of the repository.
_GENERATED = {"demo.json"}
_POINTER = re.compile(r"`([\w.\-/]+(?:\.(?:py|lua|yaml|yml|sh|md|toml|json|tpl|txt)|/))`")
_SEARCHED = ("libs", "services", "deploy", "tests", "bench", "hack")


def _exists(pointer: str) -> bool:
    """A path from the root, from a package's src/ or from inside a package; a bare file name
    anywhere in the sources."""
    bases = [ROOT, *ROOT.glob("*/*/src"), *ROOT.glob("*/*/src/*")]
    if any((base / pointer).exists() for base in bases):
        return True
    name = pointer.rstrip("/")
    return "/" not in name and any(any((ROOT / d).rglob(name)) for d in _SEARCHED)


def test_every_file_the_readme_points_to_exists() -> None:
    """Each backticked file or directory path in README.md names something in the repository."""
    readme = (ROOT / "README.md").read_text()
    pointers = set(_POINTER.findall(readme)) - _GENERATED
    assert sorted(p for p in pointers if not _exists(p)) == []
