"""The replica's public sockets answer without Nagle's delay: asyncio turns TCP_NODELAY on only for
sockets whose protocol says TCP, and a socket created with the default protocol (0) made every proxied
answer wait ~40 ms for the delayed ACK (the healthy suite ran 1.9x its chat instead of 1.3x)."""

from __future__ import annotations

import socket

import pytest

from replica.daemon import _listen
from replica.ports import free_port

pytestmark = pytest.mark.replica


def test_a_public_socket_is_tcp_with_nagle_off() -> None:
    sock = _listen(free_port())
    try:
        assert sock.proto == socket.IPPROTO_TCP
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        sock.close()
