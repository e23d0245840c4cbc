"""Reading py-spy's collapsed stacks (pure)."""

from __future__ import annotations

from bench.stacks import parse, render, short

RUN = "run (/usr/lib/python3.11/asyncio/runners.py:86)"
HANDLE = "handle (/v/site-packages/tollgate_gateway/proxy.py:120)"
REQUEST = "request (/v/tollgate_gateway/client.py:230)"
RAW = f"{RUN};{HANDLE} 6\n{RUN};{HANDLE};{REQUEST} 3\n{RUN} 1\nnot a stack line\n"


def test_short_frame_names() -> None:
    """Frames keep the function, file name and line, not the directory."""
    assert (
        short("handle (/v/site-packages/tollgate_gateway/proxy.py:120)") == "handle (proxy.py:120)"
    )
    assert short("<module> (<string>)") == "<module> (<string>)"
    assert short("odd frame") == "odd frame"


def test_self_and_inclusive_time() -> None:
    """Self time goes to the innermost frame; inclusive time to every frame on the stack once."""
    p = parse(RAW)
    assert p.total == 10
    assert p.top("self", 1) == [("handle (proxy.py:120)", 6, 60.0)]
    assert p.own["run (runners.py:86)"] == 1
    assert p.inclusive["run (runners.py:86)"] == 10
    assert p.inclusive["request (client.py:230)"] == 3


def test_recursive_frames_count_once() -> None:
    """A frame twice on one stack is not counted twice in inclusive time."""
    p = parse("f (a.py:1);f (a.py:1) 4\n")
    assert p.inclusive["f (a.py:1)"] == 4


def test_render_lists_both_tops() -> None:
    """The report has both lists with percentages."""
    text = render(parse(RAW), 2)
    assert "top 2 by self time:" in text
    assert " 60.0%       6  handle (proxy.py:120)" in text
