"""A TCP proxy with Toxiproxy-like faults, standing where the VPC connector stands in staging.

Faults apply to new connections and can change at runtime, so "the infrastructure team fixed
it" can happen in the middle of a run. Setting hang, refuse or reset also cuts the connections
already open (a connector failing under a running service: the backend's pooled connections die):
- latency: each new connection waits `latency_ms` before it reaches the upstream (a connector
  scaling up); bytes then flow freely;
- hang: accept and pass no bytes (the database phase times out);
- refuse: stop listening (connection refused);
- reset: accept, then reset the connection at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from dataclasses import asdict, dataclass
from typing import Literal

log = logging.getLogger("replica.faultproxy")

FaultKind = Literal["none", "latency", "hang", "refuse", "reset"]
FAULT_KINDS: tuple[FaultKind, ...] = ("none", "latency", "hang", "refuse", "reset")
_CHUNK = 64 * 1024
CUTTING_FAULTS = frozenset({"hang", "refuse", "reset"})


@dataclass(frozen=True)
class Fault:
    kind: FaultKind = "none"
    latency_ms: int = 0

    @classmethod
    def parse(cls, text: str) -> Fault:
        """`none`, `hang`, `refuse`, `reset` or `latency:MS`."""
        kind, _, arg = text.partition(":")
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {text!r}; expected one of {', '.join(FAULT_KINDS)} (latency:MS)")
        if kind == "latency":
            return cls("latency", int(arg or 0))
        return cls(kind)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


class FaultProxy:
    """Listens on 127.0.0.1:`port` and forwards to `upstream`, under the current fault."""

    def __init__(self, upstream_host: str, upstream_port: int, port: int, fault: Fault | None = None) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = port
        self.fault = fault or Fault()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._clients: set[asyncio.StreamWriter] = set()  # every open connection, client side
        self._upstreams: set[asyncio.StreamWriter] = set()  # and upstream side, once relayed
        self.connections = 0
        self.cut = 0  # connections cut by a fault set at runtime

    async def start(self) -> None:
        if self.fault.kind != "refuse":
            await self._listen()

    async def set_fault(self, fault: Fault) -> None:
        log.info("db fault: %s -> %s", self.fault, fault)
        self.fault = fault
        if fault.kind == "refuse":
            await self._close_listener()
        elif self._server is None:
            await self._listen()
        if fault.kind in CUTTING_FAULTS:
            self._cut_open_connections()

    def _cut_open_connections(self) -> None:
        """Reset both ends of every open connection (its relay tasks then end on their own)."""
        clients = list(self._clients)
        for writer in [*clients, *self._upstreams]:
            with contextlib.suppress(OSError):  # already closing
                _reset(writer)
        self.cut += len(clients)
        log.info("db fault: cut %d open connections", len(clients))

    async def stop(self) -> None:
        await self._close_listener()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)

    async def _close_listener(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._clients.add(writer)
        self.connections += 1
        try:
            await self._serve(reader, writer, self.fault)
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._tasks.discard(task)
            self._clients.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, fault: Fault) -> None:
        if fault.kind == "reset":
            _reset(writer)
            return
        if fault.kind == "hang":
            await reader.read()  # pass nothing; wait until the client gives up
            return
        if fault.kind == "latency":
            await asyncio.sleep(fault.latency_ms / 1000)
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        self._upstreams.add(up_writer)
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            self._upstreams.discard(up_writer)
            up_writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(_CHUNK):
            writer.write(data)
            await writer.drain()
    finally:
        with contextlib.suppress(Exception):
            writer.write_eof()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with SO_LINGER 0: the peer sees a TCP RST, not an orderly FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
