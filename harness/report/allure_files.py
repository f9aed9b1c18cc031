"""Allure: the launch-wide files (categories, environment, executor, the verdict on the first page,
flaky marks) and the per-test attachments and steps the plugin adds. Allure is optional at run time
(no --alluredir): then every call here does nothing, and the evidence still reaches the verdict.

What Allure 3.14.3 (the awesome report) shows first: the header (the report's name, which it takes
from the config only: allurerc.mjs passes on executor.json's `reportName`), then the counts, then
the Metadata block: the executor, then environment.properties' entries in file order (8 before
"Show more", each value cut to one line, the whole text on click). Global errors and attachments
are tabs of their own, and the Quality Gates tab is fed only by `allure run` or by the report
step's own gate evaluation (tools/allure-report.mjs), never by a results file.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness import known_issues
from harness.allure_steps import FLAKY_TAG
from harness.redact import redact
from harness.report.cause import Cause
from harness.taxonomy import Category
from harness.text import first_line

REPORT_NAME = "Staging validation"


def categories(cause: Cause | None = None) -> list[dict[str, Any]]:
    """Allure categories: each catalogued known issue first (the first match wins), then the taxonomy.

    The run's cause weighs them as everywhere else: an issue its record ruled out gets no category
    (its failures fall to their taxonomy category), an unconfirmed one says so in its name.
    Regexes avoid inline flags: Allure 2 (Java) and Allure 3 (JavaScript) both read them.
    """
    rows: list[dict[str, Any]] = [
        {
            "name": issue.allure_category + _strength(issue.id, cause),
            "matchedStatuses": ["broken", "failed"],
            "messageRegex": rf"[\s\S]*{re.escape(issue.mark)}[\s\S]*",
        }
        for issue in known_issues.load()
        if not (cause and cause.known_issue == issue.id and cause.status == "ruled_out")
    ]
    for category in Category:
        rows.append(
            {
                "name": f"{category.value} - {category.description}",
                "matchedStatuses": [category.allure_status],
                "messageRegex": rf"[\s\S]*\[{re.escape(category.value)}\][\s\S]*",
            }
        )
    rows.append(
        {"name": "Passed only after an infrastructure retry", "matchedStatuses": ["passed"], "flaky": True}
    )
    return rows


def _strength(issue_id: str, cause: Cause | None) -> str:
    return (
        " (unconfirmed: outside signature only)"
        if cause and cause.known_issue == issue_id and cause.status == "unconfirmed"
        else ""
    )


def write_launch_files(
    results_dir: Path, environment: dict[str, str], executor: dict[str, Any], cause: Cause | None = None
) -> None:
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "categories.json").write_text(json.dumps(categories(cause), indent=2))
    lines = [f"{key}={_escape(value)}" for key, value in sorted(environment.items())]
    (results_dir / "environment.properties").write_text("\n".join(lines) + "\n")
    (results_dir / "executor.json").write_text(json.dumps(executor, indent=2))


def settle_flaky(result: dict[str, Any]) -> bool:
    """Flaky means passed only after a retry: a retried test that then failed or broke is not flaky
    (Allure 3 counts `statusDetails.flaky` as "Flaky tests" and badges the test, whatever its status).
    The teardown cannot know the test's status, so it tags every retried test and this settles it.
    Returns whether the result is flaky."""
    labels = result.get("labels", [])
    retried = [label for label in labels if label.get("name") == "tag" and label.get("value") == FLAKY_TAG]
    if retried and result.get("status") == "passed":
        result.setdefault("statusDetails", {})["flaky"] = True
        return True
    if retried:
        result["labels"] = [label for label in labels if label not in retried]
    if isinstance(result.get("statusDetails"), dict):
        result["statusDetails"].pop("flaky", None)
    return False


def mark_flaky_results(results_dir: Path) -> int:
    """Settle the flaky mark of every result file (allure-pytest has no runtime API for it); returns
    how many are flaky."""
    marked = 0
    for path in results_dir.glob("*-result.json"):
        result = json.loads(path.read_text())
        before = json.dumps(result)
        marked += settle_flaky(result)
        if json.dumps(result) != before:
            path.write_text(json.dumps(result))
    return marked


def has_results(results_dir: Path) -> bool:
    """A run with no test result (nothing collected, a crash, no run at all) is empty: the report
    says so and adds no history entry (an empty run would read as a run that tested nothing)."""
    return results_dir.is_dir() and any(results_dir.glob("*-result.json"))


# -- the verdict on the report's first page ------------------------------------------------------

_OWNER_BY_DIAGNOSIS = {
    "healthy": "nobody (nothing failed)",
    "infrastructure": "infrastructure (the platform team)",
    "product_defect": "product (the service's own code)",
    "not_reproduced": "nobody (the issue was not seen)",
    "suite_error": "the validation suite (not staging)",
}


def first_page(verdict: Mapping[str, Any]) -> dict[str, str]:
    """The run's verdict as the report's first entries (`harness.report.verdict.Verdict.to_json` output):
    the diagnosis (headline), its cause, who must act, the outcome and the coverage, redacted."""
    counts = verdict.get("counts") or {}
    tally = ", ".join(f"{counts.get(k, 0)} {k}" for k in ("passed", "failed", "broken", "skipped", "flaky"))
    outcome = (
        f"{str(verdict.get('outcome', 'unknown')).upper()} (exit {verdict.get('exit_status', '?')}): {tally}"
    )
    entries = {
        "diagnosis": str(verdict.get("headline") or "no headline"),
        "cause": _cause(verdict),
        "owner": _owner(verdict),
        "outcome": outcome,
        **_coverage(verdict.get("coverage") or []),
    }
    return {key: redact(value) for key, value in entries.items()}


def _cause(verdict: Mapping[str, Any]) -> str:
    cause = verdict.get("cause")
    if isinstance(cause, Mapping):
        issue, status = cause.get("known_issue"), str(cause.get("status", "")).replace("_", " ")
        subject = f"{issue} {status}" if issue else f"no known issue ({status})"
        return f"{subject}: {cause.get('evidence') or 'no evidence given'}"
    issue = verdict.get("known_issue")
    return f"known issue {issue}" if issue else "none assessed"


def _owner(verdict: Mapping[str, Any]) -> str:
    """Who must act: a known issue's blame, else the diagnosis's; a healthy run that is not a pass
    (incomplete), or a run stopped by a usage error, is the operator's to finish."""
    diagnosis = str(verdict.get("diagnosis", ""))
    if diagnosis == "known_issue":
        issue = known_issues.get(verdict.get("known_issue"))
        return f"{issue.blame if issue else 'unknown'} (known issue {verdict.get('known_issue')})"
    if diagnosis == "healthy" and verdict.get("outcome") not in ("passed", None):
        return "the run's operator (nothing failed; the run is not complete)"
    if verdict.get("outcome") == "error":
        return "the run's operator (the run could not start)"
    cause = verdict.get("cause")
    if isinstance(cause, Mapping) and cause.get("status") == "ruled_out" and diagnosis == "product_defect":
        return "product (a bad deploy: the code or its configuration)"  # the startup record shows it
    return _OWNER_BY_DIAGNOSIS.get(diagnosis, f"unknown ({diagnosis or 'no diagnosis'})")


def _coverage(coverage: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """verified / failed / not verified, each a list of capability titles (reasons grouped)."""
    titles = {
        state: [str(c.get("title") or c.get("name")) for c in coverage if c.get("state") == state]
        for state in ("verified", "failed")
    }
    reasons: dict[str, list[str]] = {}
    for c in coverage:
        if c.get("state") == "not_verified":
            reasons.setdefault(str(c.get("reason") or "no reason given"), []).append(
                str(c.get("title") or c.get("name"))
            )
    return {
        "verified": ", ".join(titles["verified"]) or "nothing",
        "failed": ", ".join(titles["failed"]) or "none",
        "not verified": "; ".join(f"{', '.join(names)} ({why})" for why, names in reasons.items()) or "none",
    }


_LEAD = re.compile(r"[A-Z][A-Z ]*[A-Z]")


def report_name(verdict: Mapping[str, Any]) -> str:
    """The header's line: the headline's verdict words, the known issue and how strongly the cause is
    established ("KNOWN ISSUE issue-1278 (confirmed)", "HEALTHY"), on one line. The whole headline
    wraps to three lines or more, and a header that tall pushes the first test low enough that the
    report scrolls it into view on load, taking the header out of sight."""
    headline = str(verdict.get("headline") or "no headline")
    lead = _LEAD.match(headline)
    parts = [lead.group(0) if lead else first_line(headline.split(": ", 1)[0], 60)]
    issue = verdict.get("known_issue")
    if issue:
        parts.append(str(issue))
    cause = verdict.get("cause")
    if isinstance(cause, Mapping) and cause.get("status"):
        status = str(cause["status"]).replace("_", " ")
        subject = "" if cause.get("known_issue") in (None, issue) else f"{cause['known_issue']} "
        parts.append(f"({subject}{status})")
    return redact(f"{REPORT_NAME}: {' '.join(parts)}")


def write_first_page(results_dir: Path, verdict: Mapping[str, Any]) -> None:
    """Put the verdict where Allure 3.14.3 shows it first: ahead of the run's environment entries in
    environment.properties (the Metadata block), and its label as the report's name in executor.json
    (the header, via allurerc.mjs). Call it after `write_launch_files`, whose entries it keeps."""
    results_dir.mkdir(parents=True, exist_ok=True)
    entries = first_page(verdict)
    env_file = results_dir / "environment.properties"
    ours = {f"{_escape_key(key)}=" for key in entries}
    kept = [
        line
        for line in (env_file.read_text().splitlines() if env_file.exists() else [])
        if line and not any(line.startswith(prefix) for prefix in ours)
    ]
    lines = [f"{_escape_key(key)}={_escape(value)}" for key, value in entries.items()]
    env_file.write_text("\n".join(lines + kept) + "\n")
    executor_file = results_dir / "executor.json"
    executor = json.loads(executor_file.read_text()) if executor_file.exists() else {}
    executor["reportName"] = report_name(verdict)
    executor_file.write_text(json.dumps(executor, indent=2))


def executor_info() -> dict[str, Any]:
    """From CI variables when there are any (GitHub Actions), else a local run."""
    if os.environ.get("GITHUB_RUN_ID"):
        server = os.environ.get("GITHUB_SERVER_URL", "https://github.com")
        repo = os.environ.get("GITHUB_REPOSITORY", "")
        run_id = os.environ["GITHUB_RUN_ID"]
        return {
            "name": "GitHub Actions",
            "type": "github",
            "buildName": f"{os.environ.get('GITHUB_WORKFLOW', 'e2e')} #{os.environ.get('GITHUB_RUN_NUMBER', run_id)}",
            "buildOrder": int(os.environ.get("GITHUB_RUN_NUMBER", "0") or 0),
            "buildUrl": f"{server}/{repo}/actions/runs/{run_id}",
            "reportName": REPORT_NAME,
        }
    return {
        "name": "local",
        "type": "local",
        "buildName": "make e2e-staging",
        "reportName": REPORT_NAME,
    }


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace("=", "\\=").replace(":", "\\:")


def _escape_key(key: str) -> str:
    """A .properties key ends at the first unescaped space, `=` or `:`."""
    return _escape(key).replace(" ", "\\ ")


def main(argv: Sequence[str]) -> int:
    """`python -m harness.report.allure_files has-results DIR`: exit 0 if DIR holds a test result, else 1
    (`make report` then adds no history entry)."""
    if len(argv) == 2 and argv[0] == "has-results":
        return 0 if has_results(Path(argv[1])) else 1
    print("usage: python -m harness.report.allure_files has-results RESULTS_DIR", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
