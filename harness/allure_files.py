"""Allure: the launch-wide files (categories, environment, executor, flaky marks) and the per-test
attachments and steps the plugin adds. Allure is optional at run time (no --alluredir): then every
call here does nothing, and the evidence still reaches the verdict."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness import known_issues
from harness.redact import redact, redact_data
from harness.taxonomy import DESCRIPTIONS, Category

FLAKY_TAG = "flaky"


def categories() -> list[dict[str, Any]]:
    """Allure categories: each catalogued known issue first (the first match wins), then the taxonomy.

    Regexes avoid inline flags: Allure 2 (Java) and Allure 3 (JavaScript) both read them.
    """
    rows: list[dict[str, Any]] = [
        {
            "name": issue.allure_category,
            "matchedStatuses": ["broken", "failed"],
            "messageRegex": rf"[\s\S]*{re.escape(issue.mark)}[\s\S]*",
        }
        for issue in known_issues.load()
    ]
    for category in Category:
        rows.append(
            {
                "name": f"{category.value} - {DESCRIPTIONS[category]}",
                "matchedStatuses": [category.allure_status],
                "messageRegex": rf"[\s\S]*\[{re.escape(category.value)}\][\s\S]*",
            }
        )
    rows.append(
        {"name": "Passed only after an infrastructure retry", "matchedStatuses": ["passed"], "flaky": True}
    )
    return rows


def write_launch_files(results_dir: Path, environment: dict[str, str], executor: dict[str, Any]) -> None:
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "categories.json").write_text(json.dumps(categories(), indent=2))
    lines = [f"{key}={_escape(value)}" for key, value in sorted(environment.items())]
    (results_dir / "environment.properties").write_text("\n".join(lines) + "\n")
    (results_dir / "executor.json").write_text(json.dumps(executor, indent=2))


def mark_flaky_results(results_dir: Path) -> int:
    """Set statusDetails.flaky on results tagged flaky (allure-pytest has no runtime API for it)."""
    marked = 0
    for path in results_dir.glob("*-result.json"):
        result = json.loads(path.read_text())
        tags = {label.get("value") for label in result.get("labels", []) if label.get("name") == "tag"}
        if FLAKY_TAG in tags and not result.get("statusDetails", {}).get("flaky"):
            result.setdefault("statusDetails", {})["flaky"] = True
            path.write_text(json.dumps(result))
            marked += 1
    return marked


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
            "reportName": "Staging validation",
        }
    return {
        "name": "local",
        "type": "local",
        "buildName": "make e2e-staging",
        "reportName": "Staging validation",
    }


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace("=", "\\=").replace(":", "\\:")


# -- per test ----------------------------------------------------------------------------------------


def attach_json(name: str, data: Any) -> None:
    """Redacted JSON attached to the running test (or fixture)."""
    try:
        import allure

        body = json.dumps(redact_data(data), indent=2, default=str)
        allure.attach(redact(body), name=name, attachment_type=allure.attachment_type.JSON)
    except Exception:  # no Allure in this run: the verdict keeps the evidence
        return


def attach_attempts(attempt_log: Sequence[tuple[str, list[str]]]) -> None:
    """Each attempt of a retried operation as its own step, so a retried pass shows in the report."""
    try:
        import allure

        for describe, outcomes in attempt_log:
            with allure.step(f"{describe}: {len(outcomes)} attempts"):
                for number, outcome in enumerate(outcomes, 1):
                    with allure.step(redact(f"attempt {number}: {outcome}")):
                        pass
    except Exception:
        return


def tag_flaky() -> None:
    try:
        import allure

        allure.dynamic.tag(FLAKY_TAG)  # type: ignore[no-untyped-call]  # allure-python leaves it unannotated
    except Exception:
        return
