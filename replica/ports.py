"""Free TCP ports on the loopback interface, chosen outside the kernel's ephemeral range.

A port the kernel hands out for `bind(0)` lies in the ephemeral range, where any outgoing
connection may take it as its source port before our server binds it (an intermittent
EADDRINUSE). Listening ports are therefore drawn below that range, and checked free.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

_LOW = 20000
_FALLBACK_EPHEMERAL_START = 32768


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return _FALLBACK_EPHEMERAL_START


def free_port() -> int:
    high = max(_LOW + 1000, _ephemeral_start())
    for _ in range(200):
        port = random.randrange(_LOW, high)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {_LOW}-{high} on 127.0.0.1")
