"""Real receivers for the notifier's sinks: an SMTP server (aiosmtpd), an HTTP webhook endpoint
and a billing endpoint for the usage export (OpenMeter's and Stripe's formats), each on a
loopback port, recording what they got."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
from datetime import datetime
from email import message_from_bytes
from email.header import decode_header, make_header
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from aiosmtpd.controller import Controller

from tollgate_testkit.ports import free_port


class _Handler:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        if self.server.rcpt_delay:
            await asyncio.sleep(self.server.rcpt_delay)  # a slow server: "mid-delivery"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.server.messages.append(message_from_bytes(envelope.content))
        return "250 Message accepted for delivery"


class SmtpServer:
    """A real SMTP server; ``messages`` holds what was accepted."""

    def __init__(self) -> None:
        self.port = free_port()
        self.messages: list[Message] = []
        self.rcpt_delay = 0.0
        self.controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def subjects(self) -> list[str]:
        return [str(make_header(decode_header(m["Subject"]))) for m in self.messages]

    def stop(self) -> None:
        self.controller.stop()


class WebhookReceiver:
    """An HTTP endpoint recording JSON posts; ``status`` sets what it answers, ``delay`` how
    long each post takes (seconds), ``fail_next`` how many posts get a 503 first. With
    ``secret`` it checks ``Tollgate-Signature`` as an owner would (Stripe's scheme: HMAC-SHA256
    of ``"<t>.<body>"``, ``t`` within ``tolerance`` seconds) and refuses a bad one with 400
    (counted in ``rejected``); ``headers`` holds each recorded post's headers."""

    def __init__(self, secret: str | None = None, tolerance: float = 300.0) -> None:
        self.posts: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.status = 200
        self.delay = 0.0
        self.fail_next = 0
        self.rejected = 0
        self.secret = secret
        self.tolerance = tolerance
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                if receiver.delay:
                    time.sleep(receiver.delay)
                code = receiver._take(dict(self.headers.items()), body)
                self.send_response(code)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _take(self, headers: dict[str, str], body: bytes) -> int:
        with self._lock:
            if self.fail_next > 0:
                self.fail_next -= 1
                return 503
        if self.secret is not None and not verify_signature(
            self.secret, _header(headers, "tollgate-signature"), body, self.tolerance
        ):
            self.rejected += 1
            return 400
        if self.status < 300:
            self.posts.append(json.loads(body))
            self.headers.append(headers)
        return self.status

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _header(headers: dict[str, str], name: str) -> str:
    return next((v for k, v in headers.items() if k.lower() == name), "")


def verify_signature(secret: str, header: str, body: bytes, tolerance: float = 300.0) -> bool:
    """What an owner's endpoint does with ``Tollgate-Signature: t=...,v1=...``: recompute the
    HMAC-SHA256 of ``"<t>.<body>"``, compare in constant time, refuse a stale ``t``."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    t, given = parts.get("t", ""), parts.get("v1", "")
    if not t.isdigit() or abs(time.time() - int(t)) > tolerance:
        return False
    want = hmac.new(secret.encode(), t.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(want, given)


def wait_for(predicate: Any, timeout: float = 10.0, interval: float = 0.05) -> None:
    """Poll ``predicate`` until it is true; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


CLOUDEVENT = "application/cloudevents+json"
CLOUDEVENT_BATCH = "application/cloudevents-batch+json"
STRIPE_EVENT_FIELDS = (
    "event_name",
    "payload[stripe_customer_id]",
    "payload[value]",
    "identifier",
    "timestamp",
)


def cloudevent_problems(doc: Any) -> list[str]:
    """What is wrong with one usage CloudEvent (OpenMeter's ingest rules); empty if valid."""
    if not isinstance(doc, dict):
        return ["not an object"]
    problems = []
    if doc.get("specversion") != "1.0":
        problems.append("specversion must be 1.0")
    for name in ("id", "source", "type", "subject"):
        if not isinstance(doc.get(name), str) or not doc[name]:
            problems.append(f"{name} must be a non-empty string")
    try:
        datetime.fromisoformat(str(doc.get("time")).replace("Z", "+00:00"))
    except ValueError:
        problems.append("time must be RFC 3339")
    data = doc.get("data")
    if not isinstance(data, dict):
        problems.append("data must be an object")
    elif not isinstance(data.get("credits"), int) or not isinstance(data.get("route"), str):
        problems.append("data needs route (string) and credits (integer)")
    return problems


class UsageReceiver:
    """A billing endpoint on loopback speaking OpenMeter's ingest API (``POST /api/v1/events``,
    one CloudEvent or a batch) and Stripe's meter events (``POST /v1/billing/meter_events`` and
    ``/v1/billing/meter_event_adjustments``, form-encoded). It validates each request (400 with
    the problems otherwise) and records what it accepted, duplicates included.

    ``fail_next``: answer 503 to that many requests; ``status``: answer this to every request
    (a permanent refusal); ``delay``: seconds each request takes; ``token``: the Bearer token
    required (None: any). ``port``: come back on the same port after ``stop()``."""

    def __init__(self, port: int = 0, token: str | None = None) -> None:
        self.events: list[dict[str, Any]] = []  # CloudEvents, and Stripe calls as flat dicts
        self.problems: list[str] = []
        self.requests = 0
        self.fail_next = 0
        self.status = 200
        self.delay = 0.0
        self.token = token
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                code, problems = receiver._take(self.path, self.headers, body)
                out = json.dumps({"problems": problems}).encode() if problems else b""
                self.send_response(code)
                self.send_header("content-length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ids(self) -> list[str]:
        """The ids received (``identifier`` for Stripe), in order, duplicates included."""
        return [str(e.get("id") or e.get("identifier") or "") for e in list(self.events)]

    def _take(self, path: str, headers: Any, body: bytes) -> tuple[int, list[str]]:
        if self.delay:
            time.sleep(self.delay)
        with self._lock:
            self.requests += 1
            if self.fail_next > 0:
                self.fail_next -= 1
                return 503, []
        if self.status >= 300:
            return self.status, []
        if self.token is not None and headers.get("authorization") != f"Bearer {self.token}":
            return 401, ["bad token"]
        if path == "/api/v1/events":
            docs, problems = self._cloudevents(headers.get("content-type", ""), body)
        elif path in ("/v1/billing/meter_events", "/v1/billing/meter_event_adjustments"):
            docs, problems = self._stripe(path, headers.get("content-type", ""), body)
        else:
            return 404, [f"no such path {path}"]
        if problems:
            self.problems.extend(problems)
            return 400, problems
        self.events.extend(docs)
        return 204 if path == "/api/v1/events" else 200, []

    @staticmethod
    def _cloudevents(ctype: str, body: bytes) -> tuple[list[dict[str, Any]], list[str]]:
        mime = ctype.split(";")[0].strip()
        try:
            doc = json.loads(body)
        except ValueError:
            return [], ["body is not JSON"]
        if mime == CLOUDEVENT:
            docs = [doc]
        elif mime == CLOUDEVENT_BATCH and isinstance(doc, list) and doc:
            docs = doc
        else:
            return [], [f"content type {mime!r} with this body is not a CloudEvent (batch)"]
        problems = [p for d in docs for p in cloudevent_problems(d)]
        return docs, problems

    @staticmethod
    def _stripe(path: str, ctype: str, body: bytes) -> tuple[list[dict[str, Any]], list[str]]:
        if ctype.split(";")[0].strip() != "application/x-www-form-urlencoded":
            return [], ["Stripe takes form-encoded bodies"]
        form = {k: v[0] for k, v in parse_qs(body.decode(), strict_parsing=True).items()}
        if path.endswith("adjustments"):
            wanted: tuple[str, ...] = ("event_name", "type", "cancel[identifier]")
        else:
            wanted = STRIPE_EVENT_FIELDS
        missing = [f"{k} is required" for k in wanted if not form.get(k)]
        if not missing and not path.endswith("adjustments"):
            if not form["payload[value]"].lstrip("-").isdigit():
                missing.append("payload[value] must be a whole number")
            if not form["timestamp"].isdigit():
                missing.append("timestamp must be Unix seconds")
        return [{"path": path, **form}], missing

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
