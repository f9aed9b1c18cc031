"""A real PostgreSQL server on 127.0.0.1: the binaries that `pgserver` ships, or an external URL.

We run `postgres` ourselves (not pgserver's manager) so that it listens on TCP, where the fault proxy
can stand in front of it, with a `max_connections` a scenario can shrink.

As root, postgres refuses to run, so it runs as an unprivileged system user (`pgserver`). That user
must reach the binaries and the data, and a checkout may sit where only root can go (a container's
/root, anything `mktemp -d` made: 0700): exec of `initdb` then fails with EACCES. So, as root:

* the binaries run from a copy of pgserver's install in a shared cache outside the checkout
  (`<base>/replica-pginstall/pgserver-<version>-postgresql-<version>`, made once per version, atomically,
  readable by everyone, never written by the unprivileged user); the copy stays for the next run;
* the data lives in a private directory of its own under the same base, owned by that user, removed
  on `stop` (pytest's /tmp/pytest-of-root is chmod 0700 again by every new pytest session, so a
  directory there could not promise access for the server's whole life either).

The base is the first of `REPLICA_PG_SHARED_DIR`, the system temp dir, /var/tmp and /tmp that the
unprivileged user can traverse. `REPLICA_PG_CACHE_DIR` names the cache itself (a test starts from an
empty one). As a regular user, postgres runs as that user, from pgserver's install, data under `root`.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import pwd
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

from replica.ports import free_port
from replica.supervisor import die_with_parent

PG_USER = "pgserver"
SUPERUSER = "postgres"
DATABASE = "postgres"
# The real backend's role. initdb trusts every local connection; this role alone must give its
# password (SCRAM), so that a wrong one is refused by PostgreSQL itself (scenario db-wrong-password).
PASSWORD_ROLE = "netra_staging"
PASSWORD_RULE = f"host all {PASSWORD_ROLE} 127.0.0.1/32 scram-sha-256"
SHARED_DIR_ENV = "REPLICA_PG_SHARED_DIR"  # where the data dirs (and, by default, the cache) go as root
CACHE_DIR_ENV = "REPLICA_PG_CACHE_DIR"  # the cache of PostgreSQL installs itself
CACHE_NAME = "replica-pginstall"


def pgserver_install() -> Path:
    """pgserver's PostgreSQL install (bin, lib, share), wherever that package was imported from."""
    import pgserver._commands as commands  # imported late: it scans the bin folder on import

    return commands.POSTGRES_BIN_PATH.parent


class Identity(TypedDict, total=False):
    """subprocess's arguments for the user a process runs as (none: the caller's own)."""

    user: str
    group: str
    extra_groups: list[str]


@dataclass(frozen=True)
class RunAs:
    """The unprivileged account postgres runs as when we are root."""

    name: str
    uid: int
    gid: int

    @classmethod
    def for_root(cls) -> RunAs | None:
        """None when we are not root (postgres then runs as ourselves); the account, made if missing."""
        if os.geteuid() != 0:
            return None
        try:
            entry = pwd.getpwnam(PG_USER)
        except KeyError:
            subprocess.run(
                ["useradd", "--system", "--user-group", "--no-create-home", PG_USER],
                check=True,
                capture_output=True,
            )
            entry = pwd.getpwnam(PG_USER)
        return cls(PG_USER, entry.pw_uid, entry.pw_gid)

    def can(self, path: Path, bits: int) -> bool:
        """Whether this user has `bits` (an `os.R_OK | os.X_OK` mix) on `path` itself, by its mode."""
        info = path.stat()
        shift = 6 if info.st_uid == self.uid else 3 if info.st_gid == self.gid else 0
        return (info.st_mode >> shift) & bits == bits

    def can_reach(self, path: Path) -> bool:
        """Whether this user can traverse every directory down to `path` (and `path` itself)."""
        path = path.resolve()
        return all(self.can(p, os.X_OK) for p in [*reversed(path.parents), path])

    def subprocess_args(self) -> Identity:
        """subprocess arguments that drop root entirely (root's group would shadow the 'other' bits)."""
        return {"user": self.name, "group": self.name, "extra_groups": []}


def shared_base(user: RunAs) -> Path:
    """A directory outside any checkout that `user` can traverse (see the module docstring)."""
    candidates = [os.environ.get(SHARED_DIR_ENV), tempfile.gettempdir(), "/var/tmp", "/tmp"]
    for candidate in candidates:
        if candidate and Path(candidate).is_dir() and user.can_reach(Path(candidate)):
            return Path(candidate).resolve()
    raise PermissionError(
        f"no directory that user {user.name} can reach for PostgreSQL's binaries and data; "
        f"set {SHARED_DIR_ENV} to one (tried {', '.join(c for c in candidates if c)})"
    )


def install_key(install: Path) -> str:
    """The cache key of an install: pgserver's version and PostgreSQL's own."""
    try:
        package = importlib.metadata.version("pgserver")
    except importlib.metadata.PackageNotFoundError:
        package = "unknown"
    version = subprocess.run(
        [str(install / "bin" / "postgres"), "--version"], capture_output=True, text=True, check=True
    ).stdout.split()[-1]
    return f"pgserver-{package}-postgresql-{version}"


def cached_install(install: Path, user: RunAs) -> Path:
    """A copy of `install` that `user` can run, in the shared cache (made on first use, then reused).

    The wheel's binaries find their libraries at `$ORIGIN/../../../pgserver.libs` (auditwheel's
    rpath), so the copy keeps that layout: `<key>/pgserver/pginstall` beside `<key>/pgserver.libs`.
    It is built beside its final name and renamed into place, so a concurrent start or a crash never
    leaves a half-copied install under the final name; files are readable by all, written by root only.
    """
    cache = Path(os.environ.get(CACHE_DIR_ENV) or shared_base(user) / CACHE_NAME)
    _own_dir(cache, user)
    target = cache / install_key(install)
    copied = target / "pgserver" / "pginstall"
    if (copied / "bin" / "postgres").is_file():
        return copied
    building = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=cache))
    try:
        tree = building / "tree"
        shutil.copytree(install, tree / "pgserver" / "pginstall", symlinks=True)
        libs = install.parent.parent / "pgserver.libs"
        if libs.is_dir():
            shutil.copytree(libs, tree / "pgserver.libs", symlinks=True)
        _readable_by_all(tree)
        with contextlib.suppress(OSError):  # another start won the race (ENOTEMPTY): use its copy
            os.rename(tree, target)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    if not (copied / "bin" / "postgres").is_file():
        raise RuntimeError(f"could not place PostgreSQL's install in {target}")
    return copied


def _require_password(hba: Path) -> None:
    """Put PASSWORD_RULE first in `hba` (once): the first matching line decides, the trust lines follow.
    Written in place, so the file keeps its owner and mode."""
    lines = hba.read_text().splitlines()
    if PASSWORD_RULE not in lines:
        with hba.open("r+") as file:
            file.write("\n".join([PASSWORD_RULE, *lines]) + "\n")


def _own_dir(path: Path, user: RunAs) -> None:
    """Make `path` (0755, ours) or accept it only if it is ours and no one else may write in it:
    root runs what it holds."""
    path.mkdir(mode=0o755, parents=True, exist_ok=True)
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
        raise PermissionError(f"{path} must be a directory owned by uid {os.geteuid()}, writable by it only")
    if info.st_mode & 0o005 != 0o005:
        path.chmod(0o755)
    if not user.can_reach(path):
        raise PermissionError(f"user {user.name} cannot reach {path}; set {CACHE_DIR_ENV} elsewhere")


def _readable_by_all(tree: Path) -> None:
    """Directories 0755; files 0755 if their owner may run them, else 0644."""
    for here, dirs, files in os.walk(tree):
        os.chmod(here, 0o755)
        for name in files:
            file = Path(here, name)
            if not file.is_symlink():
                file.chmod(0o755 if file.stat().st_mode & stat.S_IXUSR else 0o644)
        for name in dirs:
            Path(here, name).chmod(0o755)


@dataclass
class PostgresServer:
    """One postgres process on 127.0.0.1:port, its data directory under `root`.

    As root the data lives in a private directory of its own (under the shared base, owned by the
    unprivileged user, removed on `stop`) instead, and the binaries come from the shared cache.
    """

    root: Path
    port: int = 0
    max_connections: int = 50
    process: subprocess.Popen[bytes] | None = None
    install: Path | None = None  # the PostgreSQL install in use, once started
    _own_root: bool = False
    _user: RunAs | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return self.url_for(self.port)

    def url_for(self, port: int) -> str:
        """The URL of this database reached at another port (e.g. through the fault proxy)."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{port}/{DATABASE}"

    def _bin(self, name: str) -> str:
        assert self.install is not None
        return str(self.install / "bin" / name)

    def start(self, timeout_s: float = 20.0) -> None:
        """initdb (once), postgres, and wait until it accepts connections; on any failure, whatever this
        call started (the server, a data directory of its own) is stopped and removed again."""
        try:
            self._start(timeout_s)
        except BaseException:
            self.stop()
            raise

    def _start(self, timeout_s: float) -> None:
        user = self._user = RunAs.for_root()
        self.install = cached_install(pgserver_install(), user) if user else pgserver_install()
        if user and not self._own_root:
            self.root = Path(tempfile.mkdtemp(prefix="replica-pg-", dir=shared_base(user)))
            self._own_root = True
        data = self.root / "pgdata"
        sockets = self.root / "sockets"
        self.root.mkdir(parents=True, exist_ok=True)
        sockets.mkdir(exist_ok=True)
        identity: Identity = user.subprocess_args() if user else {}
        if user:
            os.chmod(self.root, 0o700)
            shutil.chown(self.root, user.name, user.name)
            shutil.chown(sockets, user.name, user.name)
        if not (data / "PG_VERSION").exists():
            init = subprocess.run(
                [self._bin("initdb"), "-D", str(data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--no-sync"],
                capture_output=True,
                **identity,
                cwd=self.root,
            )  # fmt: skip
            if init.returncode != 0:
                raise RuntimeError(f"initdb failed: {init.stderr.decode(errors='replace')[-2000:]}")
        _require_password(data / "pg_hba.conf")
        self.port = self.port or free_port()
        log = open(self.root / "postgres.log", "ab")  # noqa: SIM115 - owned by the child for its lifetime
        self.process = subprocess.Popen(
            [
                self._bin("postgres"),
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
            **identity,
            cwd=self.root,
            start_new_session=True,  # a Ctrl-C to the terminal reaches us, not postgres directly
            preexec_fn=die_with_parent(signal.SIGINT),  # SIGINT: postgres's fast shutdown
        )  # fmt: skip
        log.close()
        self._wait_ready(timeout_s)

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process and self.process.poll() is not None:
                raise RuntimeError(
                    f"postgres exited with {self.process.returncode}; see {self.root}/postgres.log"
                )
            probe = subprocess.run(
                [self._bin("pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER],
                capture_output=True,
            )
            if probe.returncode == 0:
                return
            time.sleep(0.1)
        raise TimeoutError(f"postgres not ready on port {self.port} after {timeout_s}s")

    def stop(self) -> None:
        """Fast shutdown (clients disconnected), a kill after 5 s; a data directory of our own goes."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)
