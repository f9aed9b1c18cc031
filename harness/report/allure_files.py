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

import argparse
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
from harness.taxonomy import Category

REPORT_NAME = "Staging validation"


def categories(cause: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Allure categories: each catalogued known issue first (the first match wins), then the taxonomy.

    `cause` is the verdict body's: an issue its record ruled out gets no category (its failures fall to
    their taxonomy category), an unconfirmed one says so in its name. Regexes avoid inline flags:
    Allure 2 (Java) and Allure 3 (JavaScript) both read them.
    """
    strength = {str(cause["known_issue"]): str(cause["status"])} if cause else {}
    rows: list[dict[str, Any]] = [
        {
            "name": issue.allure_category + _STRENGTH.get(strength.get(issue.id, ""), ""),
            "matchedStatuses": ["broken", "failed"],
            "messageRegex": rf"[\s\S]*{re.escape(issue.mark)}[\s\S]*",
        }
        for issue in known_issues.load()
        if strength.get(issue.id) != "ruled_out"
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


_STRENGTH = {"unconfirmed": " (unconfirmed: outside signature only)"}


def write_launch_files(
    results_dir: Path, environment: dict[str, str], executor: dict[str, Any], verdict: Mapping[str, Any]
) -> None:
    """categories.json, environment.properties and executor.json, with the verdict (its body) on the
    report's first page: ahead of the run's environment entries (the Metadata block) and its label as the
    report's name (the header, via allurerc.mjs)."""
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "categories.json").write_text(json.dumps(categories(verdict.get("cause")), indent=2))
    entries = [*first_page(verdict).items(), *sorted(environment.items())]
    lines = [f"{_escape_key(key)}={_escape(value)}" for key, value in entries]
    (results_dir / "environment.properties").write_text("\n".join(lines) + "\n")
    (results_dir / "executor.json").write_text(
        json.dumps(executor | {"reportName": report_name(verdict)}, indent=2)
    )


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


def first_page(verdict: Mapping[str, Any]) -> dict[str, str]:
    """The run's verdict (its body) as the report's first entries: the diagnosis (headline), its cause
    (and the startups' kind of death, when the record showed one), who must act, the outcome and the
    coverage, redacted."""
    counts = verdict.get("counts") or {}
    tally = ", ".join(f"{counts.get(k, 0)} {k}" for k in ("passed", "failed", "broken", "skipped", "flaky"))
    streak = verdict.get("streak") or {}
    flaky = "; ".join(str(f["text"]) for f in streak.get("flaky") or [])
    # Allure 3.14.3 shows the executor and 7 entries before "Show more": the verdict's essentials first
    # (the headline already ends with what changed since the nights before), the details after.
    entries = {
        "diagnosis": str(verdict["headline"]),
        "cause": _cause(verdict.get("cause")),
        "owner": str(verdict["owner"]),
        "outcome": f"{str(verdict['outcome']).upper()} (exit {verdict['exit_status']}): {tally}",
        **_coverage(verdict.get("coverage") or []),
        **_kind(verdict.get("cause")),
        **({"nights": str(streak["text"])} if streak else {}),
        **({"flaky over the nights": flaky} if flaky else {}),
    }
    return {key: redact(value) for key, value in entries.items()}


def _cause(cause: Mapping[str, Any] | None) -> str:
    if not cause:
        return "none assessed"
    status = str(cause["status"]).replace("_", " ")
    return f"{cause['known_issue']} {status}: {cause.get('evidence') or 'no evidence given'}"


def _kind(cause: Mapping[str, Any] | None) -> dict[str, str]:
    """The startups' kind of death, when the record showed them dying: its title, the line it quotes
    (an unrecognised one: the record's own lines) and the next step, as one entry."""
    kind = (cause or {}).get("kind")
    if not kind:
        return {}
    said = f': "{kind["quoted"]}"' if kind.get("quoted") else ""
    lines = "".join(f' | "{line}"' for line in (kind.get("lines") or [])[:3])
    return {"startup failure": f"{kind['title']} ({kind['id']}){said}{lines}; next: {kind['next_step']}"}


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


def report_name(verdict: Mapping[str, Any]) -> str:
    """The header's line: the verdict's label ("KNOWN ISSUE issue-1278 (confirmed)", "HEALTHY"), on one
    line. The whole headline wraps to three lines or more, and a header that tall pushes the first test
    low enough that the report scrolls it into view on load, taking the header out of sight."""
    return redact(f"{REPORT_NAME}: {verdict['label']}")


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
    """`python -m harness.report.allure_files has-results DIR`: exit 0 if DIR holds a test result, else
    1 (`make report` then adds no history entry)."""
    parser = argparse.ArgumentParser(
        prog="python -m harness.report.allure_files",
        description="Allure's launch files of a run of the suite. has-results DIR: exit 0 if DIR holds a "
        "test result, else 1 (an empty run adds no entry to the report's history).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("has-results", help="exit 0 if DIR holds a test result").add_argument(
        "dir", type=Path
    )
    args = parser.parse_args(list(argv))
    return 0 if has_results(args.dir) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
