"""Night after night (issue 21): five nights against the replica through the entry point the workflow
uses (`python -m harness.nightly pull`, `run`, `push`), with a local stand-in of GitHub's REST API
(tests/selftest/github_api.py) holding the history branch and the tracking issues.

The nights count as the nightly's environment (E2E_ENV=custom, the replica's URLs, its startup record
read from its file), each with its own run id as Actions gives it: green; #1278; #1278; a bad deploy;
green. Each night's streak is right, one tracker per cause is opened, told and closed (#1278's own
tracker, the catalogue's, is commented on, never opened), a re-run of a night changes nothing, and a
dry run (E2E_ENV=local) stays out of the nightly's history and tells no one. Then a known issue past
its review date (a scratch catalogue) turns a #1278 night into a new cause to re-triage.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from replica.handle import ReplicaHandle
from tests.selftest.github_api import GitHubStandIn

pytestmark = [pytest.mark.selftest, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
REPOSITORY = "netra-systems/zen"
TOKEN = "ghs_selftestTokenForTheStandIn0123456789"
BYPASS_KEY = "selftest-bypass-key-for-the-nights"
JWT_SECRET = "selftest-jwt-secret-for-the-nights-0123456789"
HISTORY = "nights/e2e-staging.custom.json"
DRY_RUN_HISTORY = "nights/e2e-staging.local.json"
KNOWN_TRACKER = 1278
# The local profile's budgets: a dead backend is diagnosed in seconds, not in staging's minute.
FAST = {
    "E2E_REQUEST_TIMEOUT_S": "5",
    "E2E_AGENT_TIMEOUT_S": "15",
    "E2E_RETRY_BUDGET_S": "5",
    "E2E_MAX_RPS": "100",
}


@dataclass
class Replica:
    run_dir: Path
    handle: ReplicaHandle

    def env(self) -> dict[str, str]:
        """The suite's environment for a night against this replica, as against staging: custom."""
        return {
            "E2E_ENV": "custom",
            "E2E_BACKEND_URL": self.handle.backend_url,
            "E2E_AUTH_URL": self.handle.auth_url,
            "E2E_WS_URL": self.handle.ws_url,
            "E2E_OAUTH_SIMULATION_KEY": BYPASS_KEY,
            "E2E_JWT_SECRET": JWT_SECRET,
            "E2E_STARTUP_EVIDENCE": f"file:{self.handle.cloud_logging_path}",
            **FAST,
        }


def _clean_env() -> dict[str, str]:
    return {
        k: v for k, v in os.environ.items() if not k.startswith(("E2E_", "REPLICA_", "PYTEST_", "GITHUB_"))
    }


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Replica]]:
    """`up(scenario)`: one replica per scenario, started as a person would (`python -m replica up`),
    shared by the nights that need it; all stopped at the end."""
    started: dict[str, Replica] = {}
    base = tmp_path_factory.mktemp("replicas")
    env = _clean_env() | {"E2E_OAUTH_SIMULATION_KEY": BYPASS_KEY, "REPLICA_JWT_SECRET": JWT_SECRET}

    def up(scenario: str) -> Replica:
        if scenario not in started:
            run_dir = base / scenario
            argv = [sys.executable, "-m", "replica", "--run-dir", str(run_dir), "up", "--scenario", scenario]
            done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stdout + done.stderr
            started[scenario] = Replica(run_dir, ReplicaHandle.attach(run_dir))
        return started[scenario]

    try:
        yield up
    finally:
        for replica in started.values():
            replica.handle.stop()


@dataclass
class NightRun:
    exit_code: int
    output: str
    verdict: dict[str, Any]

    @property
    def streak(self) -> str:
        return str((self.verdict.get("streak") or {}).get("text"))


def play(api: GitHubStandIn, reports: Path, run_id: int, env: dict[str, str], attempt: int = 1) -> NightRun:
    """One night as the workflow's steps run it: pull, run, push."""
    ci = {
        "GITHUB_API_URL": api.url,
        "GITHUB_REPOSITORY": REPOSITORY,
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_RUN_ID": str(run_id),
        "GITHUB_RUN_ATTEMPT": str(attempt),
        "E2E_SLACK_WEBHOOK_URL": f"{api.url}/slack/webhook",
    }
    base = _clean_env() | ci | env
    output, status = "", 0
    for step in ("pull", "run", "push"):
        step_env = base | ({} if step == "run" else {"GITHUB_TOKEN": TOKEN})  # as the workflow's steps
        argv = [
            sys.executable,
            "-m",
            "harness.nightly",
            step,
            "--job",
            "e2e-staging",
            "--reports",
            str(reports),
        ]
        done = subprocess.run(argv, cwd=ROOT, env=step_env, capture_output=True, text=True, timeout=300)
        output += done.stdout + done.stderr
        if step == "run":
            status = done.returncode
        else:
            assert done.returncode == 0, f"{step} exited {done.returncode}:\n{output[-4000:]}"
    verdict_path = reports / "verdict.json"
    assert verdict_path.exists(), output[-4000:]
    assert TOKEN not in output, "the token was printed"
    return NightRun(status, output, json.loads(verdict_path.read_text()))


def nights_held(api: GitHubStandIn, path: str = HISTORY) -> list[dict[str, Any]]:
    text = api.repo.file("e2e-history", path)
    return list(json.loads(text)["records"]) if text else []


def trackers(api: GitHubStandIn) -> list[dict[str, Any]]:
    return [i for n, i in sorted(api.repo.issues.items()) if n != KNOWN_TRACKER]


def test_five_nights_tell_the_owner_when_the_state_changes(
    up: Callable[[str], Replica], tmp_path: Path
) -> None:
    started = time.monotonic()
    with GitHubStandIn.running(REPOSITORY, TOKEN) as api:
        known = api.repo.add_issue(
            "Staging backend answers 503 (Issue #1278)", "the platform's issue", number=KNOWN_TRACKER
        )

        def told() -> int:
            return len(api.repo.comments[KNOWN_TRACKER])

        healthy = up("healthy")
        one = play(api, tmp_path / "night-1", 1001, healthy.env())
        assert (one.exit_code, one.verdict["outcome"]) == (0, "passed"), one.output[-4000:]
        assert one.streak == "the first night in this history: green"
        assert (len(nights_held(api)), trackers(api), told()) == (1, [], 0)

        broken = up("issue-1278")
        two = play(api, tmp_path / "night-2", 1002, broken.env())
        assert (two.exit_code, two.verdict["diagnosis"], two.verdict["known_issue"]) == (
            1,
            "known_issue",
            "issue-1278",
        ), two.output[-4000:]
        assert two.streak == "red tonight after 1 green night: a new cause: known issue issue-1278"
        assert (trackers(api), told()) == ([], 1), "the known issue's tracker is commented on, never opened"
        revision = two.verdict["revisions"][-1]
        since = nights_held(api)[-1]["started_at"]

        three = play(api, tmp_path / "night-3", 1003, broken.env())
        when = f"{since[:10]} {since[11:16]} UTC"
        assert three.streak == f"red for 2 nights, since {when} (revision {revision})", three.output[-4000:]
        assert (trackers(api), told()) == ([], 2)
        assert "red for 2 nights" in api.repo.comment_bodies(KNOWN_TRACKER)[-1]

        again = play(api, tmp_path / "night-3-rerun", 1003, broken.env(), attempt=2)
        assert again.streak == three.streak
        assert (len(nights_held(api)), told(), trackers(api)) == (3, 2, []), "a re-run changes nothing"
        assert "a re-run" in again.output

        deploy = up("bad-deploy")
        four = play(api, tmp_path / "night-4", 1004, deploy.env())
        new_revision = four.verdict["revisions"][-1]
        assert four.verdict["diagnosis"] == "product_defect", four.output[-4000:]
        assert four.streak == (
            f"red for 3 nights, since {when} (revision {revision} → {new_revision}); a new cause since last "
            "night: a startup phase raised an error: a bad deploy (not issue-1278) (was: known issue issue-1278)"
        )
        [opened] = trackers(api)
        assert (opened["title"], opened["state"]) == (
            "e2e-staging on custom: a startup phase raised an error: a bad deploy (not issue-1278)",
            "open",
        )
        assert told() == 3 and "Not seen tonight" in api.repo.comment_bodies(KNOWN_TRACKER)[-1]

        again = play(api, tmp_path / "night-4-rerun", 1004, deploy.env(), attempt=2)
        assert (
            len(nights_held(api)),
            told(),
            len(trackers(api)),
            api.repo.comment_bodies(opened["number"]),
        ) == (4, 3, 1, [])

        five = play(api, tmp_path / "night-5", 1005, healthy.env())
        assert (five.exit_code, five.streak) == (0, "green again after 3 red nights"), five.output[-4000:]
        assert (opened["state"], len(api.repo.comments[opened["number"]])) == ("closed", 1)
        assert "Green again: closing" in api.repo.comment_bodies(opened["number"])[0]
        assert (told(), known["state"]) == (4, "open"), "the known issue's tracker is told, never closed"

        # Slack heard each change of state (the first night, red, a new cause, green again), no re-run
        assert [m["text"].split("*: ", 1)[1].split(" <", 1)[0] for m in api.slack] == [
            one.streak, two.streak, four.streak, five.streak,
        ]  # fmt: skip

        history_before = api.repo.file("e2e-history", HISTORY)
        dry = play(api, tmp_path / "dry-run", 1006, {"E2E_ENV": "local", "REPLICA_SCENARIO": "issue-1278"})
        assert dry.verdict["environment"] == "local" and dry.exit_code == 1, dry.output[-4000:]
        assert dry.streak == "the first night in this history: red, a new cause: known issue issue-1278"
        assert api.repo.file("e2e-history", HISTORY) == history_before, (
            "a dry run entered the nightly's history"
        )
        assert [r["run_id"] for r in nights_held(api, DRY_RUN_HISTORY)] == ["1006"]
        assert (told(), len(trackers(api)), len(api.slack)) == (4, 1, 4), "a dry run told someone"
        assert [r["run_id"] for r in nights_held(api)] == ["1001", "1002", "1003", "1004", "1005"]
        _show(api, [one, two, three, four, five], time.monotonic() - started)


def _show(api: GitHubStandIn, nights: list[NightRun], elapsed: float) -> None:
    """What a person reads (pytest -s shows it; the README pastes it)."""
    print(f"\n-- five nights and three re-runs or dry runs in {elapsed:.0f}s")
    for n, night in enumerate(nights, 1):
        print(f"night {n}: {night.verdict['headline']}")
    for number, issue in sorted(api.repo.issues.items()):
        print(f"#{number} [{issue['state']}] {issue['title']}")
        for body in api.repo.comment_bodies(number):
            print("    comment: " + body.split("\n\n<!--")[0].replace("\n\n", " | "))


def test_a_known_issue_past_its_review_date_is_a_new_cause(
    up: Callable[[str], Replica], tmp_path: Path
) -> None:
    """A scratch catalogue whose #1278 was due for review yesterday: the night is red as a new failure,
    the headline says re-triage and who owns it, the job summary lists its failures as new, and a
    tracker "re-triage issue-1278" is opened; #1278's own tracker is not told."""
    catalogue = json.loads((ROOT / "fixtures" / "known_issues.json").read_text())
    for issue in catalogue["issues"]:
        if issue["id"] == "issue-1278":
            issue["review_by"] = "2026-01-01"
    scratch = tmp_path / "known_issues.json"
    scratch.write_text(json.dumps(catalogue))
    with GitHubStandIn.running(REPOSITORY, TOKEN) as api:
        api.repo.add_issue("Staging backend answers 503 (Issue #1278)", number=KNOWN_TRACKER)
        night = play(api, tmp_path / "night", 2001, up_env(up, scratch))
        assert night.verdict["headline"].startswith(
            "RE-TRIAGE: issue-1278 past its review date 2026-01-01: re-triage (owner: the platform/infrastructure team"
        ), night.output[-4000:]
        assert night.verdict["tracked_cause"]["key"] == "retriage:issue-1278"
        assert all(g["new"] for g in night.verdict["failure_groups"])
        summary = subprocess.run(
            [sys.executable, "-m", "harness.report.job_summary", str(tmp_path / "night" / "verdict.json")],
            cwd=ROOT, capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        assert "### New failures" in summary and "### Known issues" not in summary
        [opened] = trackers(api)
        assert opened["title"].startswith(
            "e2e-staging on custom: issue-1278 past its review date 2026-01-01: re-triage"
        )
        assert api.repo.comments[KNOWN_TRACKER] == []


def up_env(up: Callable[[str], Replica], catalogue: Path) -> dict[str, str]:
    return up("issue-1278").env() | {"E2E_KNOWN_ISSUES": str(catalogue)}
