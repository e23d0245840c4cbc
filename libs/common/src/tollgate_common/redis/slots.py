"""Redis Cluster's slot arithmetic, for the lean client (pure): which slot a key hashes to,
which key a command routes by, which node owns each slot, and what a redirection error says.

The cluster specification (redis.io "Redis cluster specification", "Hash tags"): a key's slot
is CRC16-XMODEM of the key modulo 16384, of only the part between the first ``{`` and the
first ``}`` after it when that part is not empty. ``binascii.crc_hqx(data, 0)`` is that CRC16
(polynomial 0x1021, initial 0), in C.
"""

from __future__ import annotations

from binascii import crc_hqx
from dataclasses import dataclass
from typing import Any

SLOTS = 16384

Address = tuple[str, int]


def key_slot(key: bytes | str) -> int:
    """The slot of a key, hash tags included."""
    k = key if isinstance(key, bytes) else key.encode()
    start = k.find(b"{")
    if start >= 0:
        end = k.find(b"}", start + 1)
        if end > start + 1:  # "{}" (an empty tag) hashes the whole key
            k = k[start + 1 : end]
    return crc_hqx(k, 0) % SLOTS


def command_key(args: tuple[Any, ...]) -> bytes | str | None:
    """The key a command of the lean client routes by, None for a command without one (PING).

    GET and SET: their one key. EVAL/EVALSHA: the first of its keys (a script's keys are on one
    slot, or the server refuses it with CROSSSLOT), none when it declares none."""
    name = args[0].upper() if isinstance(args[0], str) else args[0].decode().upper()
    if name in ("EVALSHA", "EVAL"):
        key: bytes | str | None = args[3] if int(args[2]) > 0 else None
        return key
    if name in ("GET", "SET") and len(args) > 1:
        key = args[1]
        return key
    return None


@dataclass(frozen=True, slots=True)
class Redirect:
    """A MOVED, ASK or TRYAGAIN error: where the slot is (MOVED: from now on; ASK: for this one
    command) or that the slot is being moved and the command must be tried again later."""

    kind: str
    slot: int = -1
    address: Address = ("", 0)


def redirect(message: str, asked: Address) -> Redirect | None:
    """The redirection a server error means, None for any other error. ``asked``: the node that
    answered (a ``:port`` without host means that node's host, as Redis 7 may send)."""
    kind, _, rest = message.partition(" ")
    if kind == "TRYAGAIN":
        return Redirect("TRYAGAIN")
    if kind not in ("MOVED", "ASK"):
        return None
    slot, _, endpoint = rest.partition(" ")
    host, _, port = endpoint.rpartition(":")
    return Redirect(kind, int(slot), (host or asked[0], int(port)))


def slot_owners(reply: Any, asked: Address) -> list[Address | None]:
    """Each slot's primary, from a CLUSTER SLOTS reply (None: no node serves it). An endpoint
    that is empty or ``?`` (the node does not know its own address) means the host asked."""
    owners: list[Address | None] = [None] * SLOTS
    for entry in reply:
        start, end, primary = int(entry[0]), int(entry[1]), entry[2]
        host = primary[0].decode() if isinstance(primary[0], bytes) else str(primary[0])
        address = (host if host not in ("", "?") else asked[0], int(primary[1]))
        owners[start : end + 1] = [address] * (end - start + 1)
    return owners
