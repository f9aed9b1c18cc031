"""The durable history: one file per job and environment on a branch of the repository itself
(`e2e-history`, `E2E_HISTORY_BRANCH`), read and written through GitHub's contents API.

Why this store: it lives as long as the repository (the Actions cache evicts an entry unused for 7
days, and a cache entry cannot be replaced under the same key), it needs no service or secret beyond the
job's own token (`contents: write`), every night is a commit a person can read and `git log` can date,
and the contents API's blob `sha` makes each write conditional: a write based on a stale read is
refused (409), so the store reads again, merges its nights in, and writes again. Merging by run id
makes a re-run replace its night and makes two writers (the workflow's `concurrency` group already
serialises runs) lose nothing. A branch of its own keeps the history out of the code's history.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from harness.nightly.github import GitHub, GitHubError
from harness.nightly.history import History, file_name
from harness.nightly.record import NightRecord

DIRECTORY = "nights"
ATTEMPTS = 4


@dataclass(frozen=True)
class Pushed:
    history: History
    already_held: bool  # the store held this run's night before (a re-run)
    changed: bool  # a commit was made


class BranchStore:
    def __init__(self, github: GitHub, branch: str) -> None:
        self.github = github
        self.branch = branch

    def path(self, job: str, environment: str) -> str:
        return f"{DIRECTORY}/{file_name(job, environment)}"

    def pull(self, job: str, environment: str) -> History:
        """The job and environment's history; empty when the branch or the file does not exist yet."""
        found = self.github.content(self.path(job, environment), self.branch)
        if found is None:  # GitHub says 404 for a repository the token cannot see, too: make sure it sees it
            self.github.repository()
            return History(job, environment)
        history = History.from_json(found.text)
        if history.key != (job, environment):
            raise GitHubError(
                f"{self.branch}:{self.path(job, environment)} holds {history.job} on {history.environment}"
            )
        return history

    def push(self, job: str, environment: str, nights: Sequence[NightRecord]) -> Pushed:
        """Merge `nights` into the stored history (a night of a run id already held is replaced), written
        only if that changes it, retried on a concurrent write."""
        path = self.path(job, environment)
        run_ids = {n.run_id for n in nights}
        for attempt in range(1, ATTEMPTS + 1):
            found = self.github.content(path, self.branch)
            stored = History.from_json(found.text) if found else History(job, environment)
            held = any(r.run_id in run_ids for r in stored.records)
            merged = stored.merged(nights)
            if found is not None and merged.to_json() == found.text:
                return Pushed(merged, held, changed=False)
            if found is None:
                self.github.ensure_branch(self.branch)
            names = ", ".join(sorted(run_ids))
            try:
                self.github.put_content(
                    path,
                    merged.to_json(),
                    branch=self.branch,
                    sha=found.sha if found else None,
                    message=f"{job} on {environment}: the night of run {names}",
                )
            except GitHubError as exc:
                if (
                    exc.status in (409, 422) and attempt < ATTEMPTS
                ):  # written meanwhile: read again, merge again
                    continue
                raise
            return Pushed(merged, held, changed=True)
        raise GitHubError(f"{self.branch}:{path}: still changing after {ATTEMPTS} attempts")
