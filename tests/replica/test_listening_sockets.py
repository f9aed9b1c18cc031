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


def test_a_public_port_is_claimed_when_it_is_bound() -> None:
    """Listening at once: another socket, even one asking to reuse the address, cannot take the port
    before uvicorn serves it (a bound, not yet listening socket would share it, and uvicorn's own
    listen then failed with EADDRINUSE inside the daemon)."""
    claimed = _listen(free_port())
    other = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        with pytest.raises(OSError):
            other.bind(("127.0.0.1", claimed.getsockname()[1]))
            other.listen()
    finally:
        other.close()
        claimed.close()
