"""The nightly's store and trackers over HTTP, against the GitHub stand-in, without a suite run (a
verdict made by `conclude`): a write that raced another is merged and retried, a missing branch is
created, and every failing API call (401, 403, 404, 5xx, unreachable) is one line that names the call
and never the token, with exit 0: the night's verdict and the job's status stay what they were."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.nightly import cli
from harness.nightly.history import History
from harness.nightly.record import RunIdentity
from harness.report.cause import Cause
from harness.report.verdict import RunFacts, TestResult, conclude, write_verdict
from tests.selftest.github_api import GitHubStandIn

pytestmark = pytest.mark.unit

TOKEN = "ghs_unitTokenForTheStandIn0123456789abcdef"
REPO = "acme/suite"
PATH = "nights/e2e-staging.staging.json"


def _verdict(reports: Path, run_id: str, *, red: bool) -> dict[str, object]:
    down = TestResult(
        nodeid="tests/e2e_staging/test_health.py::test_health",
        markers=["health"],
        status="broken" if red else "passed",
        category="infra.gateway" if red else None,
        known_issue="issue-1278" if red else None,
        service="backend",
        message="[infra.gateway] 503 page (known issue issue-1278)" if red else None,
    )
    body = conclude(
        RunFacts(
            pytest_exit=1 if red else 0,
            environment="staging",
            targets={"backend": "https://api.staging.example"},
            started_at=f"2026-12-07T03:{int(run_id) % 60:02d}:00Z",
            tests=(down,),
            cause=Cause("issue-1278", "confirmed", "the record confirms it") if red else None,
            job="e2e-staging",
            run=RunIdentity(run_id, 1, f"https://github.com/{REPO}/actions/runs/{run_id}"),
            history=(),
        )
    ).body()
    write_verdict(reports / "verdict.json", body)
    return body


def _env(api_url: str, token: str = TOKEN) -> dict[str, str]:
    return {"E2E_ENV": "staging", "GITHUB_REPOSITORY": REPO, "GITHUB_TOKEN": token, "GITHUB_API_URL": api_url}


def _push(reports: Path, env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    status = cli.main(["push", "--reports", str(reports)], env)
    return status, capsys.readouterr().out


def test_the_first_push_creates_the_branch_and_a_raced_write_is_merged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with GitHubStandIn.running(REPO, TOKEN) as api:
        api.repo.add_issue("Issue #1278", number=1278)
        _verdict(tmp_path, "11", red=True)
        status, out = _push(tmp_path, _env(api.url), capsys)
        assert status == 0 and "e2e-history" in api.repo.branches, out
        other = History.from_json(api.repo.file("e2e-history", PATH) or "")

        def concurrent_writer() -> None:  # another run wrote its night between our read and our write
            night = other.records[0]
            moved = type(night)(**{**night.__dict__, "run_id": "12", "started_at": "2026-12-07T03:12:30Z"})
            api.repo.files[("e2e-history", PATH)] = other.with_night(moved).to_json().encode()

        api.before_put = concurrent_writer
        _verdict(tmp_path, "13", red=False)
        status, out = _push(tmp_path, _env(api.url), capsys)
        held = [r["run_id"] for r in json.loads(api.repo.file("e2e-history", PATH) or "")["records"]]
        assert (status, held) == (0, ["11", "12", "13"]), out
        assert api.requests.count(f"PUT /repos/{REPO}/contents/{PATH}") == 3  # one refused (409), retried


@pytest.mark.parametrize(
    ("fault", "said"),
    [
        (
            "bad token",
            "-> 401 'Bad credentials': the token is missing, expired or not a token (GITHUB_TOKEN)",
        ),
        (403, "-> 403 'Resource not accessible by integration': the token lacks a permission"),
        (404, "-> 404 'Not Found': no such repository"),
        (502, "-> 502 'Server Error': GitHub failed on its side"),
        ("unreachable", "unreachable (ConnectError"),
    ],
)
def test_a_failing_api_call_is_one_line_and_never_the_jobs_status(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fault: object, said: str
) -> None:
    with GitHubStandIn.running(REPO, TOKEN) as api:
        body = _verdict(tmp_path, "21", red=True)
        env = _env(api.url, "ghs_notTheRightToken0123456789abcdefgh" if fault == "bad token" else TOKEN)
        if fault == "unreachable":
            env["GITHUB_API_URL"] = "http://127.0.0.1:9"  # discard: nothing listens
        elif isinstance(fault, int):
            api.fail_with(fault)
        status, out = _push(tmp_path, env, capsys)
        pulled = cli.main(["pull", "--reports", str(tmp_path)], env)
        pull_out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if said in line]
    assert (status, pulled) == (0, 0), out
    assert [line.split(": GitHub API", 1)[0] for line in lines] == [
        "nightly: history not saved",
        "nightly: trackers not updated",
    ], out
    assert TOKEN not in out + pull_out and "ghs_notTheRightToken" not in out + pull_out
    assert json.loads((tmp_path / "verdict.json").read_text()) == json.loads(json.dumps(body, default=str))
    unavailable = History.from_json(
        (tmp_path / "nights" / "e2e-staging.staging.json").read_text()
    ).unavailable
    assert unavailable and said in unavailable and "says nothing about the nights before" in pull_out
