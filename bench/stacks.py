"""py-spy's collapsed stacks (``--format raw``: ``frame;frame;frame COUNT`` per line) turned into
the two lists a profile is read by: where the CPU is (self time, the innermost frame) and what
it is spent under (inclusive time, each frame counted once per stack). Pure."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

FRAME = re.compile(r"^(?P<func>.+?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


@dataclass
class Profile:
    total: int
    own: Counter[str]
    inclusive: Counter[str]

    def top(self, kind: str, n: int) -> list[tuple[str, int, float]]:
        """``(frame, samples, percent of all samples)``, most first."""
        counts = self.own if kind == "self" else self.inclusive
        return [(f, c, 100 * c / self.total) for f, c in counts.most_common(n)]


def short(frame: str) -> str:
    """``handle (/x/site-packages/tollgate_gateway/proxy.py:120)`` -> ``handle (proxy.py:120)``."""
    m = FRAME.match(frame)
    if m is None:
        return frame
    name = m["file"].rsplit("/", 1)[-1]
    return f"{m['func']} ({name}:{m['line']})" if m["line"] else f"{m['func']} ({name})"


def parse(text: str) -> Profile:
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in text.splitlines():
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [short(f) for f in stack.split(";")]
        total += n
        own[frames[-1]] += n
        for f in set(frames):
            inclusive[f] += n
    return Profile(total, own, inclusive)


def render(p: Profile, n: int = 25) -> str:
    out = [f"{p.total} samples"]
    for kind in ("self", "inclusive"):
        out.append(f"\ntop {n} by {kind} time:")
        out += [f"  {pct:5.1f}%  {count:6d}  {frame}" for frame, count, pct in p.top(kind, n)]
    return "\n".join(out)
