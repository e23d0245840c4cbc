"""The README documents every setting the services read, and its CLI commands exist."""

from __future__ import annotations

import argparse
import importlib.util
import re
import shlex
from pathlib import Path

from tollgate_auth.cli import parser

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


# `tollgate miss`, `tollgate hit`...: the names of `make bench`'s rows, not commands
BENCH_ROWS = {"miss", "hit"}


def readme_commands() -> list[str]:
    """Every ``tollgate ...`` command line of the README's shell blocks, without its comment."""
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```(?:sh|bash)\n(.*?)```", readme, flags=re.S)
    found = []
    for line in "\n".join(blocks).splitlines():
        m = re.search(r"\btollgate\s+(.*)$", line)
        if m and "uv run" in line:
            found.append(m.group(1).split(" #", 1)[0].strip())
    return found


def test_every_cli_command_in_the_readme_parses() -> None:
    """Each `uv run tollgate ...` line of the README is accepted by the real CLI's parser: the
    subcommands and options it names exist (a usage error would exit)."""
    commands = readme_commands()
    assert len(commands) >= 20  # the README's command blocks were found
    for command in commands:
        try:
            parser().parse_args(shlex.split(command))
        except SystemExit:
            raise AssertionError(f"README: `tollgate {command}` is not a valid command") from None


def test_every_cli_command_named_in_the_readme_text_exists() -> None:
    """Each `tollgate NOUN VERB` named inline in the README's text is a real subcommand."""

    def choices(p: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
        sub = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
        return dict(sub[0].choices) if sub else {}

    readme = (ROOT / "README.md").read_text()
    named = re.findall(r"`tollgate ([a-z-]+)(?: ([a-z-]+))?", readme)
    named = [(n, v) for n, v in named if n not in BENCH_ROWS]
    assert named
    nouns = choices(parser())
    for noun, verb in named:
        assert noun in nouns, f"README names `tollgate {noun}`: no such command"
        verbs = choices(nouns[noun])
        if verbs and verb:
            assert verb in verbs, f"README names `tollgate {noun} {verb}`: no such command"


# What the README names that a run writes (under --run-dir) or the reader saves (the metering
# walkthrough's receiver), not a file of the repository.
_GENERATED = {"demo.json", "receiver.py"}
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
