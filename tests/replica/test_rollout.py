"""Rollouts: a new revision replaces the backend's instances one at a time, and nobody using the front
door notices; after a fix, the replica rolls out until enough startups have followed it.

Real replicas, read over real sockets: the control API (status), the front door (health probes and
golden-path chats running through the rollout), and the startups the suite's own parser finds in the
backend's Cloud Logging.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from contract.events import GOLDEN_PATH_EVENTS
from harness.startup.records import parse_entries
from harness.startup.tally import tally
from replica.cloud_logging import SERVICE_NAME
from replica.handle import ReplicaHandle
from tests.replica.lifecycle import cli, poll_until, running
from tests.replica.test_cloud_logging import Startup, startups
from tests.replica.test_scenarios import LEGACY, FrontDoorChatTurn, chat_turn, crash_loop_status

pytestmark = [pytest.mark.replica]

ROLLOUT_BOUND_S = 60.0
FIX_STARTUPS = 7  # more than the three instances' own restarts could give: rollouts must add some
FIX_BOUND_S = 40.0
SLOW_AGENT = {"agent_step_delay_s": "0.3"}  # a chat lasts ~1.5 s: drains find sockets open
QUESTION = "During a rollout, what is 6 x 7?"
STOPPED = "Container terminated on signal 15."  # the platform's line for an instance it stopped


def rollout_record(handle: ReplicaHandle, revision: str) -> dict[str, Any]:
    return next(r for r in handle.status()["backend"]["rollouts"] if r["revision"] == revision)


def finished(handle: ReplicaHandle, revision: str) -> dict[str, Any] | None:
    record = rollout_record(handle, revision)
    return record if record["state"] not in ("pending", "rolling") else None


# --- one rollout, watched ----------------------------------------------------------------------------


@dataclass
class Watched:
    """A rollout of three instances, with the front door's and the fleet's state sampled throughout."""

    handle: ReplicaHandle
    first_revision: str
    record: dict[str, Any]
    samples: list[dict[str, Any]] = field(default_factory=list)  # status()["doors"]["backend"] + serving
    startups: list[Startup] = field(default_factory=list)


@pytest.fixture(scope="class")
def watched(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Watched]:
    with running(tmp_path_factory.mktemp("rollout"), "healthy", instances=3) as handle:
        serving, _ = poll_until(lambda: handle.status()["backend"]["serving_instances"] == 3, 20.0)
        assert serving, "precondition: three instances serving before the rollout"
        first = handle.status()["revision"]
        revision = handle.rollout()["revision"]
        samples = []
        deadline = time.monotonic() + ROLLOUT_BOUND_S
        while (record := finished(handle, revision)) is None and time.monotonic() < deadline:
            status = handle.status()
            samples.append({**status["doors"]["backend"], "serving": status["backend"]["serving_instances"]})
            time.sleep(0.05)
        assert record is not None, f"rollout of {revision} not finished in {ROLLOUT_BOUND_S}s"

        def logged() -> list[Startup] | None:
            """Six startups, and the three old instances' ends (written a moment after they exit)."""
            found = startups(handle.cloud_logging())
            ended = [s for s in found if s.has(STOPPED)]
            return found if len(found) >= 6 and len(ended) >= 3 else None

        found, _ = poll_until(logged, 10.0)
        yield Watched(handle, first, record, samples, found or startups(handle.cloud_logging()))


def revision_of(startup: Startup) -> str:
    return str(startup.entries[0]["resource"]["labels"]["revision_name"])


def completed_at(startup: Startup) -> datetime:
    return next(
        datetime.fromisoformat(e["timestamp"])
        for e in startup.entries
        if "STARTUP SEQUENCE COMPLETED SUCCESSFULLY" in str((e.get("jsonPayload") or {}).get("message", ""))
    )


class TestRollout:
    def test_every_instance_is_replaced_by_one_of_the_new_revision(self, watched: Watched) -> None:
        status = watched.handle.status()
        assert (watched.record["state"], watched.record["replaced"]) == ("done", 3), watched.record
        assert status["revision"] == watched.record["revision"] != watched.first_revision
        new = [s for s in watched.startups if revision_of(s) == watched.record["revision"]]
        assert [s.outcome for s in new] == ["ok"] * 3
        assert {i["instance_id"] for i in status["backend"]["instances"]} == {s.instance_id for s in new}

    def test_one_at_a_time_each_new_instance_starts_once_the_previous_one_serves(
        self, watched: Watched
    ) -> None:
        new = sorted(
            (s for s in watched.startups if revision_of(s) == watched.record["revision"]),
            key=lambda s: s.initiated_at or datetime.max.replace(tzinfo=UTC),
        )
        assert len(new) == 3
        for before, after in itertools.pairwise(new):
            assert after.initiated_at and after.initiated_at >= completed_at(before), (before, after)

    def test_capacity_never_drops_and_at_most_one_instance_drains(self, watched: Watched) -> None:
        """The new instance serves before the old one leaves the door: never fewer than three serving."""
        assert watched.samples, "the rollout was never seen in progress"
        assert min(s["serving"] for s in watched.samples) >= 3
        assert min(sum(not u["draining"] for u in s["upstreams"]) for s in watched.samples) >= 3
        assert max(sum(u["draining"] for u in s["upstreams"]) for s in watched.samples) <= 1
        assert max(len(s["upstreams"]) for s in watched.samples) <= 4

    def test_the_old_instances_are_stopped_after_their_successors_serve(self, watched: Watched) -> None:
        old = [s for s in watched.startups if revision_of(s) == watched.first_revision]
        assert len(old) == 3 and all(s.outcome == "ok" for s in old)
        assert all(s.has(STOPPED) for s in old), [s.texts[-3:] for s in old]


# --- callers during a rollout ----------------------------------------------------------------------------


@dataclass
class Traffic:
    """What callers of the front door saw while the rollout ran."""

    probes: list[int] = field(default_factory=list)  # /health status codes
    chats: list[FrontDoorChatTurn | BaseException] = field(default_factory=list)


def keep_calling(handle: ReplicaHandle, until: threading.Event, traffic: Traffic) -> list[threading.Thread]:
    """Health probes and (two at a time) golden-path chats through the front door, until `until`."""

    def probe() -> None:
        with httpx.Client(timeout=5) as client:
            while not until.is_set():
                try:
                    traffic.probes.append(client.get(f"{handle.backend_url}/health").status_code)
                except httpx.HTTPError:
                    traffic.probes.append(0)
                time.sleep(0.02)

    def chat() -> None:
        while not until.is_set():
            try:
                traffic.chats.append(chat_turn(handle, QUESTION))
            except Exception as exc:  # a refused upgrade, a dropped socket: the test counts it
                traffic.chats.append(exc)

    threads = [threading.Thread(target=f, daemon=True) for f in (probe, chat, chat)]
    for thread in threads:
        thread.start()
    return threads


def test_probes_and_chats_through_a_rollout_all_succeed(tmp_path: Path) -> None:
    """While two instances are replaced, every health probe answers 200 and every chat gets its five
    events and its answer: the door routes new calls to the new instance and lets open sockets end
    before the old one stops."""
    traffic = Traffic()
    with running(tmp_path, "healthy", instances=2, overrides={**LEGACY, **SLOW_AGENT}) as handle:
        until = threading.Event()
        threads = keep_calling(handle, until, traffic)
        time.sleep(1.0)
        rolled = cli(tmp_path, "rollout")
        time.sleep(1.0)
        until.set()
        for thread in threads:
            thread.join(15)
    print(
        f"rollout under load: {len(traffic.probes)} probes, {len(traffic.chats)} chats; {rolled.stdout.strip()}"
    )
    assert "done" in rolled.stdout
    assert traffic.probes and set(traffic.probes) == {200}, sorted(set(traffic.probes))
    failed = [
        c
        for c in traffic.chats
        if not isinstance(c, FrontDoorChatTurn) or c.event_types != list(GOLDEN_PATH_EVENTS)
    ]
    assert len(traffic.chats) >= 4 and failed == [], failed


# --- the fix's rollouts ------------------------------------------------------------------------------------


def test_a_fix_rolls_out_until_enough_startups_have_finished_since(tmp_path: Path) -> None:
    """issue-1278 on three crash-looping instances; `fix --rollout-startups 7`: within the bound, at least
    seven startups that began after the fix have finished, every one of them ok (the suite's count)."""
    with running(tmp_path, "issue-1278", instances=3, backoff_max_s=2.0) as handle:
        assert crash_loop_status(handle) is not None, "precondition: the backend never crash-looped"
        cli(tmp_path, "fix", "--rollout-startups", str(FIX_STARTUPS))
        fixed_at = datetime.fromtimestamp(handle.status()["fix"]["at"], UTC)  # when the fix was in place

        def enough() -> Any:
            status = handle.status()
            done = status["fix"]["applied"] and status["startup_target"]["done"]
            records = parse_entries(handle.cloud_logging(), service=SERVICE_NAME)
            summary = tally(records, since=fixed_at, until=datetime.now(UTC) + timedelta(seconds=1))
            return summary if done and summary.ok + summary.failed >= FIX_STARTUPS else None

        summary, took = poll_until(enough, FIX_BOUND_S, interval_s=0.25)
        status = handle.status()
    print(f"fix with rollouts: {took:.1f}s, {summary.text() if summary else 'not enough'}; {status['fix']}")
    assert summary is not None, status["backend"]["rollouts"]
    assert summary.failed == 0 and summary.ok >= FIX_STARTUPS, summary.text()
    assert status["startup_target"]["finished"] >= FIX_STARTUPS
    assert len({r["revision"] for r in status["backend"]["rollouts"] if r["state"] == "done"}) >= 1
