"""UniqueIds: no repeats in a process, and a forked child draws its own prefix."""

from __future__ import annotations

import subprocess
import sys

from tollgate_common.ids import UniqueIds


def test_ids_do_not_repeat() -> None:
    ids = UniqueIds(6)
    drawn = [ids.text() for _ in range(1000)] + [ids.fixed_bytes().decode() for _ in range(1000)]
    assert len(set(drawn)) == len(drawn)


CHILD = """
import os
from tollgate_common.ids import UniqueIds
ids = UniqueIds(6)
read, write = os.pipe()
pid = os.fork()
if pid == 0:
    os.write(write, ids.prefix.encode())
    os._exit(0)
os.close(write)
child = os.read(read, 64).decode()
os.waitpid(pid, 0)
print(ids.prefix, child)
"""


def test_a_forked_child_draws_another_prefix() -> None:
    # In a fresh single-threaded interpreter: forking the test runner itself is unsafe.
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, check=True)
    parent, child = out.stdout.split()
    assert child != parent
