"""Free TCP ports on the loopback interface, chosen outside the kernel's ephemeral range, and reserved.

A port the kernel hands out for `bind(0)` lies in the ephemeral range, where any outgoing
connection may take it as its source port before our server binds it (an intermittent
EADDRINUSE). Listening ports are therefore drawn below that range, and checked free.

Checked free is not enough when replicas start side by side (the project's tests run two at a
time): an instance's port is unbound while it starts and between the restarts of a crash loop, and
another replica could pick it then; the instance would crash-loop on EADDRINUSE. So every port
handed out is also reserved, for as long as the process that asked for it lives, in a directory all
replicas share (a file per port holding the owner's pid, created exclusively); a reservation whose
owner is gone is taken over.
"""

from __future__ import annotations

import contextlib
import os
import random
import socket
import tempfile
from pathlib import Path

_LOW = 20000
_FALLBACK_EPHEMERAL_START = 32768
RESERVATIONS = Path(tempfile.gettempdir()) / "replica-ports"


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return _FALLBACK_EPHEMERAL_START


def free_port() -> int:
    high = max(_LOW + 1000, _ephemeral_start())
    for _ in range(200):
        port = random.randrange(_LOW, high)
        if not reserve(port):
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue  # taken by something that reserves nothing: keep it out of our way
            return port
    raise RuntimeError(f"no free port in {_LOW}-{high} on 127.0.0.1")


def reserve(port: int) -> bool:
    """Reserve `port` for this process; False when a live process holds it."""
    with contextlib.suppress(FileExistsError):
        RESERVATIONS.mkdir(mode=0o1777, parents=True)
        RESERVATIONS.chmod(0o1777)  # shared by every user's replicas; each removes only its own files
    path = RESERVATIONS / str(port)
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if _held(path):
                return False
            with contextlib.suppress(OSError):
                path.unlink()  # its owner is gone: take it over
            continue
        except OSError:
            return True  # no shared directory to reserve in: the bind check alone decides
        with os.fdopen(fd, "w") as file:
            file.write(str(os.getpid()))
        return True
    return False


def _held(path: Path) -> bool:
    """Whether the process named in a reservation still runs."""
    try:
        pid = int(path.read_text().strip() or "0")
    except (OSError, ValueError):
        return True  # being written, or unreadable: leave it alone
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    return True
