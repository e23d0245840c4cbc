"""What an upstream answer means for the client (pure).

good   - an answer to pass on (meets the route's successWhen)
nodata - the upstream answered but had nothing (JSON ``status: false``, or 404)
fail   - an error, reset, 5xx, invalid JSON: try elsewhere, count against the endpoint
"""

from __future__ import annotations

from enum import Enum

import orjson


class Verdict(Enum):
    GOOD = "good"
    NODATA = "nodata"
    FAIL = "fail"


def classify(status: int, body: bytes, success_when: str) -> Verdict:
    if status == 404:
        return Verdict.NODATA
    if not 200 <= status < 300:
        return Verdict.FAIL
    if success_when == "http2xx":
        return Verdict.GOOD
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return Verdict.FAIL
    if isinstance(doc, dict) and doc.get("status") is True:
        return Verdict.GOOD
    return Verdict.NODATA
