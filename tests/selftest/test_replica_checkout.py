"""The replica starts from a checkout in a private (0700) directory, as root: a container's /root, a
`mktemp -d`. PostgreSQL runs there as an unprivileged user who cannot enter that directory, so its
binaries (and data) must be somewhere that user can reach (replica/postgres.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pgserver
import pytest

from replica.handle import ReplicaHandle
from replica.postgres import CACHE_DIR_ENV
from replica.state import read_state

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [
    pytest.mark.selftest,
    pytest.mark.slow,
    pytest.mark.skipif(
        os.geteuid() != 0,
        reason="needs root: as a regular user PostgreSQL runs as that user, who can always reach its own "
        "checkout; only root hands it to an unprivileged account that cannot enter a 0700 directory",
    ),
]
NOT_COPIED = (".venv", ".git", ".replica", "reports", "node_modules", "__pycache__", ".*_cache")
UP_TIMEOUT_S = 120


@dataclass(frozen=True)
class PrivateCheckout:
    checkout: Path  # a copy of the project, inside `private`
    env: dict[str, str]  # pgserver imported from inside `private` too, an empty install cache
    private: Path  # mode 0700, owned by root


@pytest.fixture
def private_checkout() -> Iterator[PrivateCheckout]:
    """The project and pgserver's package (binaries and their libraries: the wheel's layout) copied
    into a fresh 0700 directory; PYTHONPATH points at that copy of pgserver, explicitly."""
    private = Path(tempfile.mkdtemp(prefix="replica-checkout-"))
    cache_parent = Path(tempfile.mkdtemp(prefix="replica-pgcache-"))
    try:
        cache_parent.chmod(0o755)
        checkout = private / "checkout"
        shutil.copytree(ROOT, checkout, ignore=shutil.ignore_patterns(*NOT_COPIED))
        site = private / "site-packages"
        installed = Path(pgserver.__file__).resolve().parent.parent
        for name in ("pgserver", "pgserver.libs", *(p.name for p in installed.glob("pgserver-*.dist-info"))):
            shutil.copytree(installed / name, site / name, ignore=shutil.ignore_patterns("__pycache__"))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("E2E_", "REPLICA_", "PYTHON"))}
        env |= {"PYTHONPATH": str(site), CACHE_DIR_ENV: str(cache_parent / "cache")}
        yield PrivateCheckout(checkout, env, private)
    finally:
        leftover = read_state(private / "checkout" / ".replica")
        if leftover:
            ReplicaHandle(private / "checkout" / ".replica", leftover).stop()
        shutil.rmtree(private, ignore_errors=True)
        shutil.rmtree(cache_parent, ignore_errors=True)


def replica_cli(where: PrivateCheckout, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m replica ...` run in the private checkout, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "replica", *args],
        cwd=where.checkout,
        env=where.env,
        capture_output=True,
        text=True,
        timeout=UP_TIMEOUT_S,
    )


def test_root_runs_the_replica_from_a_checkout_in_a_0700_directory(private_checkout: PrivateCheckout) -> None:
    where = private_checkout
    probe = [sys.executable, "-c", "import pgserver._commands as c, replica; print(c.POSTGRES_BIN_PATH, replica.__file__)"]  # fmt: skip
    used = subprocess.run(
        probe, cwd=where.checkout, env=where.env, capture_output=True, text=True, check=True
    )
    bin_path, package = map(Path, used.stdout.split())
    assert (where.private.stat().st_mode & 0o777, bin_path.is_relative_to(where.private)) == (0o700, True)
    assert package.is_relative_to(where.checkout)  # the copy's replica, not the editable install

    up = replica_cli(where, "up", "--scenario", "healthy")
    assert up.returncode == 0, up.stdout + up.stderr
    state = read_state(where.checkout / ".replica")
    assert state is not None
    for url in (state["backend_url"], state["auth_url"]):
        assert httpx.get(f"{url}/health", timeout=5).status_code == 200, url
    data = Path(os.readlink(f"/proc/{state['postgres_pid']}/cwd"))  # postgres runs in its data dir
    assert not data.is_relative_to(where.private), data

    down = replica_cli(where, "down")
    assert (down.returncode, down.stdout.strip()) == (0, "replica stopped"), down.stderr
    assert read_state(where.checkout / ".replica") is None
    assert not data.exists(), f"{data} left behind"
