"""A loopback TCP relay in front of a real server, whose connections can go silent.

``cut()`` is the fault "the command ran, its answer never came back": on every connection open at
that moment, requests still reach the server (a Redis runs the script, debits the key) and replies
are thrown away, for good, so a caller waits not knowing the outcome until it gives the connection
up. Connections opened later are relayed normally (a client that reconnects is served again).

That is the shape TCP gives such a fault: a reply on a live connection is never lost, only late,
so "lost" means a connection that stopped delivering (a half-dead NAT entry, a peer gone away
behind a black hole) until the client drops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

from tollgate_testkit.ports import free_port


class _Link:
    def __init__(self) -> None:
        self.silent = False


class Relay:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.connections = 0
        self._links: set[_Link] = set()
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        started = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(started,), daemon=True)
        self._thread.start()
        started.wait(10)

    def cut(self) -> None:
        """Silence the replies on every connection open now (see the module docstring)."""

        done = threading.Event()

        def silence() -> None:
            for link in self._links:
                link.silent = True
            done.set()

        self._loop.call_soon_threadsafe(silence)
        done.wait(10)

    def _run(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)

        async def main() -> None:
            self._server = await asyncio.start_server(self._client, "127.0.0.1", self.port)
            started.set()

        self._loop.run_until_complete(main())
        self._loop.run_forever()
        tasks = asyncio.all_tasks(self._loop)
        for task in tasks:
            task.cancel()
        self._loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        self._loop.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self.connections += 1
        link = _Link()
        self._links.add(link)
        try:
            await asyncio.gather(
                self._pipe(reader, up_w, None),
                self._pipe(up_r, writer, link),
                return_exceptions=True,
            )
        except asyncio.CancelledError:
            pass  # the relay is stopping; asyncio's server would log a cancelled handler
        finally:
            self._links.discard(link)

    async def _pipe(
        self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, replies: _Link | None
    ) -> None:
        try:
            while data := await src.read(65536):
                if replies is not None and replies.silent:
                    continue
                dst.write(data)
                await dst.drain()
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError, RuntimeError):
                dst.close()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            self._loop.stop()

        self._loop.call_soon_threadsafe(shutdown)
        self._thread.join(10)
