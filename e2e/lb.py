"""A round-robin TCP proxy: what a Service (kube-proxy) does for the placement replicas in the local e2e stack.

Each new connection goes to the next backend that accepts it; a backend that refuses (a killed replica) is
skipped, as kube-proxy stops sending to a pod once its endpoint is gone. Test harness only.
"""

from __future__ import annotations

import asyncio
import itertools
import threading


class RoundRobin:
    def __init__(self, port: int, backends: list[int]) -> None:
        self.port, self.backends = port, list(backends)
        self._cycle = itertools.cycle(range(len(self.backends)))
        self.connections: dict[int, int] = dict.fromkeys(self.backends, 0)
        self._open: set[asyncio.StreamWriter] = set()  # both ends of every piped connection
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.base_events.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"lb-{port}", daemon=True)

    def start(self) -> RoundRobin:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in range(len(self.backends)):
            backend = self.backends[next(self._cycle)]
            try:
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", backend)
            except OSError:
                continue
            self.connections[backend] += 1
            self._open |= {writer, up_writer}
            try:
                await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
            finally:
                self._open -= {writer, up_writer}
            return
        writer.close()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            try:
                writer.close()
            except RuntimeError:
                pass

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            for w in list(self._open):  # reset kept-alive connections, as a Service's do when its pods are gone:
                w.transport.abort()     # a client must not reuse a connection nobody reads any more
        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
