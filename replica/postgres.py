"""A real PostgreSQL server on 127.0.0.1: the binaries that `pgserver` ships, or an external URL.

We run `postgres` ourselves (not pgserver's manager) so that it listens on TCP, where the fault proxy
can stand in front of it, with a `max_connections` a scenario can shrink. As root, postgres refuses
to run, so it runs as an unprivileged system user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from replica.ports import free_port
from replica.supervisor import die_with_parent

PG_USER = "pgserver"
SUPERUSER = "postgres"
DATABASE = "postgres"


def _bin(name: str) -> str:
    import pgserver._commands as commands  # imported late: it scans the bin folder on import

    return str(commands.POSTGRES_BIN_PATH / name)


def _run_as() -> str | None:
    """The user postgres runs as: ourselves, or an unprivileged account when we are root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(PG_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--user-group", "--no-create-home", PG_USER],
            check=True,
            capture_output=True,
        )
    return PG_USER


@dataclass
class PostgresServer:
    """One postgres process on 127.0.0.1:port, its data directory under `root`.

    As root, postgres runs as an unprivileged user who must reach its data directory; a directory
    inside another's private tree (pytest's /tmp/pytest-of-root is chmod 0700 again by every new
    pytest session, a repository under /root) cannot promise that for the server's whole life. Then
    the data lives in a private directory of its own under the system temp dir, removed on `stop`.
    """

    root: Path
    port: int = 0
    max_connections: int = 50
    process: subprocess.Popen[bytes] | None = None
    _own_root: bool = False

    @property
    def url(self) -> str:
        return self.url_for(self.port)

    def url_for(self, port: int) -> str:
        """The URL of this database reached at another port (e.g. through the fault proxy)."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{port}/{DATABASE}"

    def start(self, timeout_s: float = 20.0) -> None:
        user = _run_as()
        if user and not self._own_root:
            self.root = Path(tempfile.mkdtemp(prefix="replica-pg-"))
            self._own_root = True
        data = self.root / "pgdata"
        sockets = self.root / "sockets"
        self.root.mkdir(parents=True, exist_ok=True)
        sockets.mkdir(exist_ok=True)
        if user:
            os.chmod(self.root, 0o755)
            _allow_traversal(self.root)
            shutil.chown(self.root, user)
            shutil.chown(sockets, user)
        if not (data / "PG_VERSION").exists():
            init = subprocess.run(
                [_bin("initdb"), "-D", str(data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--no-sync"],
                capture_output=True,
                **_identity(user),
                cwd=self.root,
            )
            if init.returncode != 0:
                raise RuntimeError(f"initdb failed: {init.stderr.decode(errors='replace')[-2000:]}")
        self.port = self.port or free_port()
        log = open(self.root / "postgres.log", "ab")  # noqa: SIM115 - owned by the child for its lifetime
        self.process = subprocess.Popen(
            [
                _bin("postgres"),
                "-D", str(data),
                "-h", "127.0.0.1",
                "-p", str(self.port),
                "-k", str(sockets),
                "-c", f"max_connections={self.max_connections}",
                "-c", "superuser_reserved_connections=0",
                "-c", "fsync=off",
                "-c", "synchronous_commit=off",
                "-c", "full_page_writes=off",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            **_identity(user),
            cwd=self.root,
            start_new_session=True,  # a Ctrl-C to the terminal reaches us, not postgres directly
            preexec_fn=die_with_parent(signal.SIGINT),  # SIGINT: postgres's fast shutdown
        )  # fmt: skip
        self._wait_ready(timeout_s)

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process and self.process.poll() is not None:
                raise RuntimeError(
                    f"postgres exited with {self.process.returncode}; see {self.root}/postgres.log"
                )
            probe = subprocess.run(
                [_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER],
                capture_output=True,
            )
            if probe.returncode == 0:
                return
            time.sleep(0.1)
        raise TimeoutError(f"postgres not ready on port {self.port} after {timeout_s}s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # fast shutdown: disconnects clients
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)


def _identity(user: str | None) -> dict[str, object]:
    """subprocess arguments that drop root entirely (root's group would shadow the 'other' bits)."""
    return {"user": user, "group": user, "extra_groups": []} if user else {}


def _allow_traversal(path: Path) -> None:
    """Let the unprivileged postgres user reach `path` through its parents."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if mode & 0o005 != 0o005:
            parent.chmod(mode | 0o005)
