"""The replica as a pytest plugin: for an E2E_ENV=local run of the staging suite it starts the local
replica of staging, hands its targets to the harness (`pytest_e2e_provide_targets`), schedules the
local "fix" of the verify-fix story, and stops everything when the run ends.

The fix is the replica's own: at the scheduled time the daemon clears its faults, then rolls out new
revisions (every instance replaced, one at a time, without dropping a caller) until the startups that
followed the fix are as many as the startup gate needs (`E2E_SLO_MIN_STARTUPS`), as Cloud Run would
start new instances after a fix is deployed. Before the gates read the record,
`pytest_e2e_await_startups` waits until they are all in it (in whichever process, xdist worker or not,
runs the gates: it finds the replica from the settings' `file:<run dir>/cloud-logging.json`).

The root conftest loads it only for E2E_ENV=local; the harness never imports the replica. Its knobs
are the replica's own (not the suite's settings): REPLICA_SCENARIO, REPLICA_PROFILE,
REPLICA_INSTANCES, E2E_LOCAL_FIX_AFTER_S (seconds, or `never`), E2E_KEEP_REPLICA.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from replica import scenarios
from replica.cloud_logging import ended_containers, finished_startups, read_entries
from replica.handle import ReplicaError, ReplicaHandle

if TYPE_CHECKING:
    from harness.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class ReplicaChoice:
    """What to start, from the environment (validated: a typo must not silently run `healthy`)."""

    scenario: str
    profile: str | None
    instances: int | None
    fix_after_s: float | None  # the verify-fix story: "the infrastructure team fixed it" after this
    keep: bool

    @classmethod
    def from_env(cls) -> ReplicaChoice:
        from replica import scenarios
        from replica.config import PROFILES

        scenario = os.environ.get("REPLICA_SCENARIO") or "healthy"
        profile = os.environ.get("REPLICA_PROFILE") or None
        try:
            scenarios.get(scenario)
        except ValueError as exc:
            raise pytest.UsageError(f"REPLICA_SCENARIO: {exc}") from None
        if profile is not None and profile not in PROFILES:
            raise pytest.UsageError(f"REPLICA_PROFILE={profile!r} is not one of {', '.join(PROFILES)}")
        return cls(
            scenario=scenario,
            profile=profile,
            instances=_positive_int("REPLICA_INSTANCES"),
            fix_after_s=_fix_after(),
            keep=bool(os.environ.get("E2E_KEEP_REPLICA")),
        )


def _positive_int(name: str) -> int | None:
    raw = os.environ.get(name)
    if not raw:
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise pytest.UsageError(f"{name}={raw!r} must be a whole number of at least 1")
    return int(raw)


def _fix_after() -> float | None:
    raw = os.environ.get("E2E_LOCAL_FIX_AFTER_S")
    if not raw or raw == "never":
        return None
    try:
        value = float(raw)
    except ValueError:
        raise pytest.UsageError(f"E2E_LOCAL_FIX_AFTER_S={raw!r} must be seconds or `never`") from None
    if value < 0:
        raise pytest.UsageError(f"E2E_LOCAL_FIX_AFTER_S={raw!r} must be zero or more")
    return value


class LocalReplica:
    """The replica one run started, and how it was chosen."""

    def __init__(self, handle: ReplicaHandle, choice: ReplicaChoice) -> None:
        self.handle = handle
        self.choice = choice

    def schedule_fix(self, after_s: float, startups: int) -> datetime:
        """The replica clears its faults `after_s` from now, then rolls out new revisions until
        `startups` startups have finished since; return when: the start of the post-fix window (the
        daemon fixes at that very time, so no startup of the broken time begins inside the window)."""
        at = datetime.now(UTC) + timedelta(seconds=after_s)
        self.handle.fix(at=at.timestamp(), rollout_startups=startups)
        return at

    def header(self) -> str:
        choice = self.choice
        fix = "never" if choice.fix_after_s is None else f"{choice.fix_after_s:g}s"
        return (
            f"local replica: scenario {choice.scenario}, profile {choice.profile or 'default'}, "
            f"instances {choice.instances or 'default'}, fix after {fix} ({self.handle.run_dir})"
        )

    def stop(self) -> None:
        self.handle.stop()
        if not self.choice.keep:  # its PostgreSQL data is tens of MB per run
            shutil.rmtree(self.handle.run_dir, ignore_errors=True)


REPLICA_KEY = pytest.StashKey[LocalReplica]()


@pytest.hookimpl
def pytest_e2e_provide_targets(config: pytest.Config, settings: Settings) -> Settings | None:
    """Start the replica for a local run without targets; its URLs, key and startup evidence."""
    if not settings.judges_the_replica or settings.has_targets:
        return None
    choice = ReplicaChoice.from_env()
    key = settings.oauth_simulation_key or secrets.token_urlsafe(24)
    jwt_secret = settings.jwt_secret or secrets.token_urlsafe(32)
    run_dir = ROOT / ".replica" / f"suite-{os.getpid()}"
    started = datetime.now(UTC)
    try:
        handle = ReplicaHandle.start(
            choice.scenario,
            run_dir,
            env={"E2E_OAUTH_SIMULATION_KEY": key, "REPLICA_JWT_SECRET": jwt_secret},
            instances=choice.instances,
            profile=choice.profile,
            owner_pid=os.getpid(),  # a run killed outright (a CI timeout) leaves no replica behind
        )
    except (ReplicaError, ValueError) as exc:  # the local tooling failed, not the target: no verdict
        shutil.rmtree(run_dir, ignore_errors=True)
        raise pytest.UsageError(f"the local replica did not start: {exc}") from None
    replica = config.stash[REPLICA_KEY] = LocalReplica(handle, choice)
    terminal = config.pluginmanager.get_plugin("terminalreporter")
    if terminal is not None:  # started once collection succeeded: after pytest's header
        terminal.write_line(replica.header())
    logs = handle.state.get("cloud_logging_path")
    if logs and scenarios.get(choice.scenario).crash_loop:
        _await_first_death(Path(logs), started)
    if choice.fix_after_s is None:
        since = started
    else:
        since = replica.schedule_fix(choice.fix_after_s, settings.verify.min_startups)
    local = settings.with_targets(handle.backend_url, handle.auth_url, handle.ws_url)
    startup = settings.startup
    if startup.source is None and logs:  # the replica writes its startups as Cloud Logging returns them
        startup = dataclasses.replace(startup, source=f"file:{logs}", since=startup.since or since)
    return dataclasses.replace(local, oauth_simulation_key=key, jwt_secret=jwt_secret, startup=startup)


STARTUP_POLL_S = 0.25
FIRST_DEATH_TIMEOUT_S = 20.0


def _await_first_death(path: Path, since: datetime) -> None:
    """A crash-looping backend's first instance has died, the platform's line on it (its exit, or the
    kill that ended a probe or a memory limit) included in its record, or the bound passed: the suite
    then meets what the nightly meets, a staging down a while."""
    deadline = time.monotonic() + FIRST_DEATH_TIMEOUT_S
    while ended_containers(read_entries(path), since) < 1 and time.monotonic() < deadline:
        time.sleep(STARTUP_POLL_S)


@pytest.hookimpl
def pytest_e2e_await_startups(config: pytest.Config, minimum: int, timeout_s: float) -> None:
    """Return once the replica's record holds at least `minimum` finished startups (ok or failed)
    since the fix (or the window's start), or `timeout_s` has passed, or no more can come (the gate
    then says how many were missing).

    Works from the settings alone, as an xdist worker has them (the plugin there started nothing):
    `startup.source` is `file:<run dir>/cloud-logging.json` and `startup.since` the fix. A record that
    is no running replica's (a file of the user's, a replica already gone) is read as it is. A replica
    that was never fixed gathers none by itself: it is asked to roll out until the window has enough
    (a slow database phase is still slow in every startup; a broken one still fails, its rollout too)."""
    from harness.pytest_plugin import suite_of

    evidence = suite_of(config).settings.startup
    if not (evidence.source or "").startswith("file:"):
        return
    path = Path((evidence.source or "").removeprefix("file:"))
    since = evidence.since or datetime.now(UTC) - timedelta(seconds=evidence.window_s)
    deadline = time.monotonic() + timeout_s
    try:
        handle = ReplicaHandle.attach(path.parent)
        if (
            handle.status()["startup_target"] is None
            and finished_startups(read_entries(path), since) < minimum
        ):
            handle.gather_startups(minimum, since.timestamp())
        settled = False
        while finished_startups(read_entries(path), since) < minimum and time.monotonic() < deadline:
            if not _more_startups_coming(handle.status()):
                if settled:  # nothing came since the last read, a flush of the record ago: done
                    return
                settled = True
            else:
                settled = False
            time.sleep(STARTUP_POLL_S * 2)
    except ReplicaError:
        return


def _more_startups_coming(status: dict[str, Any]) -> bool:
    """Whether the replica may still add startups: a fix or rollouts under way, an instance starting
    or waiting to restart, a startup not finished."""
    backend = status["backend"]
    target = status.get("startup_target") or {}
    return bool(
        (status.get("fix") and not status["fix"]["applied"])
        or (target and not target["done"])
        or any(r["state"] in ("pending", "rolling") for r in backend["rollouts"])
        or any(not instance["serving"] for instance in backend["instances"])
        or backend["startups_in_progress"]
    )


def pytest_unconfigure(config: pytest.Config) -> None:
    replica = config.stash.get(REPLICA_KEY, None)
    if replica is not None:
        replica.stop()
        del config.stash[REPLICA_KEY]
