"""Start, find, steer and stop a replica from another process (the CLI, the suite, the tests)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from replica.cloud_logging import FILE_NAME as CLOUD_LOGGING_FILE
from replica.cloud_logging import read_entries
from replica.state import read_state

DEFAULT_RUN_DIR = Path(".replica")


class ReplicaError(RuntimeError):
    """The replica could not be started, reached or stopped."""


@dataclass
class ReplicaHandle:
    run_dir: Path
    state: dict[str, Any]

    # -- finding and starting ----------------------------------------------------------------
    @classmethod
    def attach(cls, run_dir: Path = DEFAULT_RUN_DIR) -> ReplicaHandle:
        state = read_state(run_dir)
        if not state or not _alive(int(state["pid"])):
            raise ReplicaError(f"no replica running in {run_dir} (start one with `python -m replica up`)")
        return cls(run_dir, state)

    @classmethod
    def start(
        cls,
        scenario: str = "healthy",
        run_dir: Path = DEFAULT_RUN_DIR,
        *,
        env: Mapping[str, str] | None = None,
        overrides: Mapping[str, Any] | None = None,
        backoff_max_s: float | None = None,
        timeout_s: float = 30.0,
        instances: int | None = None,
        profile: str | None = None,
        owner_pid: int | None = None,
    ) -> ReplicaHandle:
        """Spawn the daemon detached and return once it serves (and, if expected, the backend is healthy,
        and the scenario's database fault for a running service is in place). With `owner_pid` the
        replica stops by itself when that process is gone."""
        run_dir = run_dir.resolve()
        run_dir.mkdir(parents=True, exist_ok=True)
        existing = read_state(run_dir)
        if existing and _alive(int(existing["pid"])):
            raise ReplicaError(
                f"a replica is already running in {run_dir} (pid {existing['pid']}); `down` first"
            )
        argv = [sys.executable, "-m", "replica.daemon", "--scenario", scenario, "--run-dir", str(run_dir)]
        if overrides:
            argv += ["--overrides", json.dumps(dict(overrides))]
        if backoff_max_s is not None:
            argv += ["--backoff-max", str(backoff_max_s)]
        if instances is not None:
            argv += ["--instances", str(instances)]
        if profile is not None:
            argv += ["--profile", profile]
        if owner_pid is not None:
            argv += ["--owner-pid", str(owner_pid)]
        log = open(run_dir / "daemon.log", "ab")  # noqa: SIM115 - handed to the child
        process = subprocess.Popen(
            argv,
            env={**os.environ, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout_s
        handle = cls._wait_for_state(run_dir, process, deadline)
        handle._wait_serving(deadline)
        handle._wait_fault_after_ready(deadline)
        return handle

    @classmethod
    def _wait_for_state(
        cls, run_dir: Path, process: subprocess.Popen[bytes], deadline: float
    ) -> ReplicaHandle:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise ReplicaError(
                    f"replica daemon exited with {process.returncode}:\n{_tail(run_dir / 'daemon.log')}"
                )
            state = read_state(run_dir)
            if state and state.get("pid") == process.pid:
                return cls(run_dir, state)
            time.sleep(0.05)
        _end(process)
        raise ReplicaError(f"replica did not start in time:\n{_tail(run_dir / 'daemon.log')}")

    def _wait_serving(self, deadline: float) -> None:
        """Until every service the scenario expects healthy answers /health 200: through its front
        door, except a backend behind a door in outage (it never answers there): then an instance
        of it, on its own port."""
        urls = {}
        if self.state.get("auth_ready_expected"):
            urls["auth_url"] = [self.state["auth_url"]]
        if self.state.get("backend_ready_expected"):
            instances = [f"http://127.0.0.1:{port}" for port in self.state["backend_instance_ports"].values()]
            urls["backend_url"] = instances if self.state.get("gateway_outage") else [self.backend_url]
        with httpx.Client(timeout=2) as client:
            for key, bases in urls.items():
                while not any(_healthy(client, base + "/health") for base in bases):
                    if time.monotonic() > deadline:
                        self.stop()
                        raise ReplicaError(
                            f"{key}/health not healthy in time:\n{_tail(self.run_dir / 'backend.log')}"
                        )
                    time.sleep(0.05)

    def _wait_fault_after_ready(self, deadline: float) -> None:
        """The suite must never race the scenario's runtime fault: wait until the daemon set it."""
        if not self.state.get("db_fault_after_ready"):
            return
        while not (self.status().get("db_fault_after_ready") or {}).get("applied"):
            if time.monotonic() > deadline:
                self.stop()
                raise ReplicaError("the database fault for a running backend was not set in time")
            time.sleep(0.05)

    # -- using --------------------------------------------------------------------------------
    @property
    def backend_url(self) -> str:
        return str(self.state["backend_url"])

    @property
    def auth_url(self) -> str:
        return str(self.state["auth_url"])

    @property
    def ws_url(self) -> str:
        return str(self.state["ws_url"])

    @property
    def bypass_key(self) -> str:
        return str(self.state["bypass_key"])

    @property
    def cloud_logging_path(self) -> Path:
        """The backend's Cloud Logging entries, as `gcloud logging read --format=json` prints them."""
        return Path(self.state.get("cloud_logging_path") or self.run_dir / CLOUD_LOGGING_FILE)

    def cloud_logging(self, since: datetime | None = None) -> list[dict[str, Any]]:
        """Those entries now (newest first), the ones at or after `since` if given."""
        return read_entries(self.cloud_logging_path, since)

    def _control(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            # generous: on a loaded machine the daemon's loop also proxies traffic and writes its record
            response = httpx.request(method, self.state["control_url"] + path, json=body, timeout=15)
            response.raise_for_status()
            return dict(response.json())
        except httpx.HTTPError as exc:
            raise ReplicaError(f"replica control {path} failed: {exc}") from exc

    def status(self) -> dict[str, Any]:
        return self._control("GET", "/status")

    def fix(self, at: float | None = None, rollout_startups: int = 0) -> dict[str, Any]:
        """The infrastructure fix: now, or at `at` (epoch seconds); then, with `rollout_startups`, new
        revisions rolled out until that many startups have finished since the fix."""
        body: dict[str, Any] = {"rollout_startups": rollout_startups}
        if at is not None:
            body["at"] = at
        return self._control("POST", "/fix", body)

    def gather_startups(self, startups: int, since: float) -> dict[str, Any]:
        """Rollouts until `startups` startups that began at or after `since` (epoch) have finished."""
        return self._control("POST", "/startups", {"startups": startups, "since": since})

    def rollout(self, service: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Start rolling out a new revision (with `service` overrides: another build); its record."""
        return dict(self._control("POST", "/rollout", {"service": dict(service or {})})["rollout"])

    def set_fault(
        self,
        db: str | None = None,
        gateway_error_rate: float | None = None,
        gateway_outage: bool | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if db is not None:
            body["db"] = db
        if gateway_error_rate is not None:
            body["gateway_error_rate"] = gateway_error_rate
        if gateway_outage is not None:
            body["gateway_outage"] = gateway_outage
        return self._control("POST", "/fault", body)

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM the daemon (it stops its children in order), SIGKILL whatever is left."""
        pid = int(self.state["pid"])
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        for leftover in (pid, self.state.get("postgres_pid")):
            if leftover and _alive(int(leftover)):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(int(leftover), signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)  # the daemon's session: services it spawned
        (self.run_dir / "state.json").unlink(missing_ok=True)


def _healthy(client: httpx.Client, url: str) -> bool:
    try:
        return client.get(url).status_code == 200
    except httpx.HTTPError:
        return False


def _end(process: subprocess.Popen[bytes], grace_s: float = 15.0) -> None:
    """SIGTERM a daemon that is still starting (it then stops what it started, PostgreSQL and its
    data included); SIGKILL only one that does not end within `grace_s`."""
    process.terminate()
    try:
        process.wait(grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (our own exited child) counts as gone
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return f"({path} not written)"
