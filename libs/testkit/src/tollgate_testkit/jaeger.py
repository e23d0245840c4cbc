"""A real trace backend for the tracing tests: Jaeger v1's all-in-one (in-memory storage) built
from its Go module by ``hack/k8s-tools.sh jaeger`` (part of ``make install``), on loopback ports
of its own: OTLP in over gRPC and HTTP, the query API (``/api/traces``) out."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx

from tollgate_testkit.ports import free_ports
from tollgate_testkit.procs import Proc

BINARY = "jaeger-all-in-one"


def binary() -> Path:
    """The built binary; FileNotFoundError (saying how to build it) when it is not there."""
    root = Path(os.environ.get("TOLLGATE_TOOLS", Path.home() / ".cache/tollgate/tools"))
    path = root / "bin" / BINARY
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not built: make install (or bash hack/k8s-tools.sh jaeger) builds it"
        )
    return path


class Jaeger:
    """One all-in-one process; stopped by its PID."""

    def __init__(
        self,
        workdir: Path,
        *,
        wrap: Callable[[list[str]], list[str]] = list,
        max_traces: int = 100_000,
        env: Mapping[str, str] | None = None,
    ) -> None:
        """``wrap``: the command line as it is run (the bench pins it to a core); ``env``: more
        variables for the process (the bench's GOMAXPROCS)."""
        exe = binary()
        self.otlp_grpc, self.otlp_http, self.query, *more = free_ports(7)
        loop = "127.0.0.1"
        argv = [
            str(exe),
            f"--collector.otlp.grpc.host-port={loop}:{self.otlp_grpc}",
            f"--collector.otlp.http.host-port={loop}:{self.otlp_http}",
            f"--query.http-server.host-port={loop}:{self.query}",
            f"--query.grpc-server.host-port={loop}:{more[0]}",
            f"--collector.grpc-server.host-port={loop}:{more[1]}",
            f"--collector.http-server.host-port={loop}:{more[2]}",
            f"--admin.http.host-port={loop}:{more[3]}",
            f"--memory.max-traces={max_traces}",  # bounded: 100 % of a bench run is millions
        ]
        # No trace of its own queries in the results: Jaeger would otherwise trace itself.
        full = {"SPAN_STORAGE_TYPE": "memory", "OTEL_TRACES_SAMPLER": "always_off", **(env or {})}
        self.proc = Proc(wrap(argv), log=workdir / "jaeger.log", env=full)
        try:
            self.proc.wait_http(f"{self.query_url}/api/services", timeout=60)
            self.proc.wait_port(self.otlp_http)
            self.proc.wait_port(self.otlp_grpc)
        except BaseException:
            self.proc.stop()
            raise

    @property
    def query_url(self) -> str:
        return f"http://127.0.0.1:{self.query}"

    def otel_env(self, protocol: str = "http/protobuf") -> dict[str, str]:
        """The standard variables that send a service's spans here, exported at once."""
        port = self.otlp_grpc if protocol == "grpc" else self.otlp_http
        return {
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
            "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
            "OTEL_BSP_SCHEDULE_DELAY": "100",  # ms: the tests wait for spans, not the default 5 s
        }

    def trace(self, trace_id: str) -> dict[str, Any] | None:
        """One trace as the query API returns it, or None while it is not (yet) stored."""
        r = httpx.get(f"{self.query_url}/api/traces/{trace_id}", timeout=10)
        if r.status_code == 404:
            return None
        r.raise_for_status()
        data = r.json().get("data") or []
        return data[0] if data else None

    def wait_trace(
        self,
        trace_id: str,
        services: set[str],
        min_spans: int,
        timeout: float = 30.0,
        want: tuple[str, ...] = (),
    ) -> dict[str, Any]:
        """The trace once it holds ``min_spans`` spans from each of ``services`` (batches from
        several processes arrive apart) and, for each name in ``want``, a span whose name starts
        with it (work done after the answer, such as a refund, is exported later than the rest,
        and by each process in its own batch)."""
        deadline = time.monotonic() + timeout
        last: dict[str, Any] | None = None
        while time.monotonic() < deadline:
            last = self.trace(trace_id)
            if last is not None:
                seen = {service_of(last, s) for s in last["spans"]}
                names = [str(s["operationName"]) for s in last["spans"]]
                named = all(any(n.startswith(w) for n in names) for w in want)
                if services <= seen and len(last["spans"]) >= min_spans and named:
                    return last
            time.sleep(0.2)
        raise AssertionError(f"trace {trace_id} incomplete after {timeout}s: {last}")

    def traces(self, service: str, limit: int = 1000) -> list[dict[str, Any]]:
        r = httpx.get(
            f"{self.query_url}/api/traces",
            params={"service": service, "limit": limit, "lookback": "1h"},
            timeout=10,
        )
        r.raise_for_status()
        return list(r.json().get("data") or [])

    def stop(self) -> None:
        self.proc.stop()


def service_of(trace: dict[str, Any], span: dict[str, Any]) -> str:
    return str(trace["processes"][span["processID"]]["serviceName"])


def tags(span: dict[str, Any]) -> dict[str, Any]:
    """A span's attributes as a dict (the query API lists them as key/type/value)."""
    return {t["key"]: t["value"] for t in span.get("tags", [])}


def parent_of(span: dict[str, Any]) -> str:
    """The parent span id ("" for a root)."""
    for ref in span.get("references", []):
        if ref["refType"] == "CHILD_OF":
            return str(ref["spanID"])
    return ""
