"""`python -m harness.nightly pull|run|push|night --job JOB`: one night of a job, as the workflow runs it.

    pull   this job and environment's history from the store into the local history file
    run    the job (`make JOB`) with E2E_HISTORY and E2E_JOB set: the verdict knows the nights before,
           and the run appends its night to the file; exits with the job's status
    push   the night into the store, then the trackers and (on a change of state) Slack; exits 0:
           a failing API call is one line, never the night's verdict nor the job's status
    night  pull, run, push (`make nightly JOB=…`); exits with the job's status

The workflow runs pull, run and push as steps of their own, so that the job's token reaches only
pull and push, and the bypass key only run. Settings (environment):

    E2E_ENV                  the environment (local: a dry run on the replica; its history is its own,
                             and it tells no tracker)
    E2E_HISTORY              the local history file (default REPORTS/nights/JOB.ENV.json)
    GITHUB_REPOSITORY, GITHUB_TOKEN, GITHUB_API_URL
                             the store and the trackers (as Actions sets them); without the first two
                             the history stays in the local file and no one is told
    E2E_HISTORY_BRANCH       the history's branch (default e2e-history, created on first use)
    E2E_SLACK_WEBHOOK_URL    optional: a Slack incoming webhook told on a change of state (never printed)
    GITHUB_RUN_ID, GITHUB_RUN_ATTEMPT, GITHUB_SERVER_URL
                             the run's identity and link (a re-run keeps its run id: it replaces its night)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.nightly import notify, tracker
from harness.nightly.github import GitHub, GitHubConfig, GitHubError
from harness.nightly.history import History, HistoryError, HistoryFile, file_name
from harness.nightly.record import NightRecord, night_of
from harness.nightly.store import BranchStore
from harness.settings import Settings, SettingsError

ROOT = Path(__file__).resolve().parents[2]
JOBS = ("e2e-staging", "reproduce-1278", "verify-fix")
# What the suite's process never needs: the job's token and the webhook stay with pull and push.
_NOT_FOR_THE_SUITE = ("GITHUB_TOKEN", "E2E_SLACK_WEBHOOK_URL")


class Night:
    """One night's settings, read once from the environment."""

    def __init__(self, job: str, reports: Path, environ: Mapping[str, str]) -> None:
        settings = Settings.from_env(environ)  # a SettingsError is the night's usage error
        self.job = job
        self.reports = reports
        self.environ = environ
        self.environment = settings.env
        self.dry_run = settings.judges_the_replica  # the local replica: nobody is told
        self.history_path = (
            Path(settings.history)
            if settings.history
            else reports / "nights" / file_name(job, self.environment)
        )
        self.branch = settings.history_branch
        self.slack_webhook_url = settings.slack_webhook_url
        self.github = GitHubConfig.from_env(environ)

    def say(self, line: str, *, warning: bool = False) -> None:
        print(f"nightly: {line}", flush=True)
        if warning and self.environ.get("GITHUB_ACTIONS") == "true":
            print(f"::warning title=nightly::{line}", flush=True)

    def store(self) -> BranchStore | None:
        if isinstance(self.github, str):
            return None
        return BranchStore(GitHub(self.github), self.branch)

    def no_store(self) -> str:
        return f"no store ({self.github}): the history is the local file {self.history_path}"


def pull(night: Night) -> int:
    local = HistoryFile(night.history_path)
    store = night.store()
    if store is None:
        night.say(night.no_store())
        return 0
    where = f"{night.branch}:{store.path(night.job, night.environment)}"
    try:
        history = store.pull(night.job, night.environment)
    except (GitHubError, ValueError) as exc:
        local.write(History(night.job, night.environment, unavailable=str(exc)))
        night.say(
            f"the history could not be read ({exc}); tonight says nothing about the nights before",
            warning=True,
        )
        return 0
    finally:
        store.github.close()
    local.write(history)
    night.say(
        f"{len(history.records)} nights of {night.job} on {night.environment} from {where} into {night.history_path}"
    )
    return 0


def run(night: Night, make: str = "make") -> int:
    env = {k: v for k, v in night.environ.items() if k not in _NOT_FOR_THE_SUITE}
    env |= {"E2E_HISTORY": str(night.history_path), "E2E_JOB": night.job, "REPORTS": str(night.reports)}
    night.say(f"make {night.job} (E2E_ENV={night.environment}, E2E_HISTORY={night.history_path})")
    verdict = night.reports / "verdict.json"
    verdict.unlink(missing_ok=True)  # a verdict left by an earlier run must not speak for this one
    status = subprocess.call([make, "--no-print-directory", night.job], cwd=ROOT, env=env)
    try:  # the verdict's exit status, not make's (2 for any failed recipe)
        return int(json.loads(verdict.read_text())["exit_status"])
    except (OSError, ValueError, KeyError, TypeError):
        return status


def push(night: Night) -> int:
    verdict_path = night.reports / "verdict.json"
    if not verdict_path.exists():
        night.say(
            f"no verdict at {verdict_path}: the run did not end; nothing recorded, no one told", warning=True
        )
        return 0
    body: dict[str, Any] = json.loads(verdict_path.read_text())
    tonight = night_of(body)
    if tonight.key != (night.job, night.environment):
        night.say(
            f"the verdict is {tonight.job} on {tonight.environment}'s, not {night.job} on {night.environment}'s: nothing pushed",
            warning=True,
        )
        return 0
    try:
        previous = HistoryFile(night.history_path).read(night.job, night.environment).previous(tonight.run_id)
    except HistoryError as exc:
        night.say(str(exc), warning=True)
        previous = ()
    store = night.store()
    if store is None:
        night.say(night.no_store() + "; no tracker told")
        return 0
    try:
        return _push(night, store, body, tonight, previous)
    finally:
        store.github.close()


def _push(
    night: Night,
    store: BranchStore,
    body: Mapping[str, Any],
    tonight: NightRecord,
    previous: Sequence[NightRecord],
) -> int:
    streak = body.get("streak") or {}
    text = str(streak.get("text") or "the nights before are unknown (the history could not be read)")
    rerun = False
    try:
        pushed = store.push(night.job, night.environment, [tonight])
        rerun = pushed.already_held
        kept = "replaced (a re-run of the same run)" if rerun else "added"
        night.say(
            f"history: the night of run {tonight.run_id} {kept}; {len(pushed.history.records)} nights held on {night.branch}"
        )
    except (GitHubError, ValueError) as exc:
        night.say(f"history not saved: {exc}", warning=True)
    if night.dry_run:
        night.say("trackers: a dry run on the replica (E2E_ENV=local) tells no one")
    else:
        try:
            issues = store.github.issues(labels=tracker.LABEL)
            open_ones = tracker.open_trackers(issues, night.job, night.environment)
            actions = tracker.plan(tonight, text, previous, open_ones)
            if not actions:
                night.say("trackers: nothing to say (green, and no tracker open)")
            tracker.apply(store.github, tonight, actions, lambda line: night.say(line))
        except GitHubError as exc:
            night.say(f"trackers not updated: {exc}", warning=True)
    webhook = night.slack_webhook_url
    if webhook and not night.dry_run and streak.get("changed") and not rerun:
        night.say(notify.post(webhook, notify.message(tonight, text)))
    return 0


def main(argv: list[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m harness.nightly",
        description=__doc__.split("\n\n", 1)[0] if __doc__ else None,
        epilog=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=("pull", "run", "push", "night"))
    parser.add_argument(
        "--job", choices=JOBS, default="e2e-staging", help="the Makefile target (default e2e-staging)"
    )
    parser.add_argument(
        "--reports", type=Path, default=Path("reports"), help="the reports directory (default reports)"
    )
    args = parser.parse_args(argv)
    try:
        night = Night(args.job, args.reports, os.environ if environ is None else environ)
    except SettingsError as exc:  # the command's usage error, as argparse's own
        print(f"nightly: E2E settings: {exc}", flush=True)
        return 2
    if args.command == "pull":
        return pull(night)
    if args.command == "run":
        return run(night)
    if args.command == "push":
        return push(night)
    pull(night)
    status = run(night)
    push(night)
    return status
