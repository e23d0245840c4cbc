"""A real gateway (its own server on a loopback port, in a thread with its own event loop) per
test."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvloop

from tollgate_gateway.app import Gateway, serve
from tollgate_gateway.settings import GatewaySettings
from tollgate_testkit.ports import free_port


class RunningGateway:
    def __init__(self, settings: GatewaySettings) -> None:
        self.port = settings.port
        self.settings = settings
        self._gateway: Gateway | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Future[None] | None = None
        self._error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 15
        while self._gateway is None:
            if self._error is not None:
                raise RuntimeError("gateway did not start") from self._error
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("gateway did not start")
            time.sleep(0.01)

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = self._loop.create_future()

            def listening(gw: Gateway, _port: int) -> None:
                self._gateway = gw

            await serve(self.settings, self._stop, on_listen=listening)

        try:
            uvloop.run(main())
        except BaseException as exc:  # surfaced by the constructor
            self._error = exc

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def gateway(self) -> Gateway:
        assert self._gateway is not None
        return self._gateway

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self.thread.is_alive():
            stop = self._stop
            self._loop.call_soon_threadsafe(lambda: stop.done() or stop.set_result(None))
        self.thread.join(30)


def route_doc(name: str, prefix: str, urls: list[str], **spec: Any) -> str:
    """One ApiBackend YAML document."""
    import yaml

    body = {"pathPrefix": prefix, "endpoints": [{"url": u} for u in urls], **spec}
    doc = {
        "apiVersion": "tollgate.dev/v1alpha1",
        "kind": "ApiBackend",
        "metadata": {"name": name, "namespace": "default"},
        "spec": body,
    }
    return yaml.safe_dump(doc)


@pytest.fixture
def gateway_factory(tmp_path: Path, redis_url: str) -> Iterator[Callable[..., RunningGateway]]:
    """``gateway_factory(routes_yaml, **settings)``: a running gateway on its own port."""
    started: list[RunningGateway] = []

    def make(routes: str | None = None, **overrides: Any) -> RunningGateway:
        values: dict[str, Any] = {
            "port": free_port(),
            "redis_url": redis_url,
            "table_poll_seconds": 0.2,
            "host": "127.0.0.1",
            "shutdown_grace_seconds": 2.0,
        }
        if routes is not None:
            path = tmp_path / f"routes-{len(started)}.yaml"
            path.write_text(routes)
            values["routes_file"] = str(path)
        values.update(overrides)
        gw = RunningGateway(GatewaySettings(**values))
        started.append(gw)
        return gw

    yield make
    for gw in started:
        gw.stop()


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """The upstream client's tests run on asyncio's loop and on uvloop, the loop production uses;
    every other test keeps the default loop."""
    if item.path.name == "test_client.py":
        return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}
    return {"asyncio": asyncio.new_event_loop}
