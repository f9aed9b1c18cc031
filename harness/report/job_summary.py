"""`python -m harness.report.job_summary reports/verdict.json`: the verdict as a CI job summary (Markdown).

The same words as the terminal's box and Allure's first page, read from the verdict's body and
deciding nothing: the headline, who must act, the cause and its strength (and, when the startup record
showed them dying, the startups' kind of death: its title, the line it quotes, the next step), the
coverage with a note on
every row that is not verified, then one row per cause (its count, the evidence's key fact, the known
issue linked). Known-issue failures are listed apart from new ones: a night that only shows #1278 again
needs no one's attention beyond its ticket; a new cause does. A verify-fix run shows its gates table; a
run that tested nothing shows only its headline.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from harness.text import first_line


def _cell(text: Any) -> str:
    """A table cell: one line, pipes escaped."""
    return first_line(str(text) if text is not None else "", 300).replace("|", "\\|")


def _issue(issue_id: str | None, link: str | None) -> str:
    if issue_id is None:
        return "-"
    return f"[{issue_id}]({link})" if link else issue_id


def _cause_line(cause: dict[str, Any] | None) -> list[str]:
    if not cause:
        return []
    issue = _issue(cause.get("known_issue"), cause.get("link"))
    lines = ["", f"Cause: **{cause['status'].replace('_', ' ')}** {issue}: {_cell(cause['evidence'])}"]
    return lines + _kind_lines(cause.get("kind"))


def _kind_lines(kind: dict[str, Any] | None) -> list[str]:
    """How the startups died, as the body names it: the kind's title, the line it quotes (or, for an
    unrecognised one, the record's own lines), who acts and the next step."""
    if not kind:
        return []
    quoted = f": `{_cell(kind['quoted'])}`" if kind.get("quoted") else ""
    lines = ["", f"Startups died of: **{_cell(kind['title'])}** (`{kind['id']}`){quoted}"]
    lines += [f"- `{_cell(line)}`" for line in (kind.get("lines") or [])[:5]]
    return [*lines, "", f"Next step, for {_cell(kind['who_acts'])}: {_cell(kind['next_step'])}"]


def _streak_lines(streak: dict[str, Any] | None) -> list[str]:
    """Night after night: what changed, the night before's run, the tests flaky tonight over the nights."""
    if not streak:
        return []
    before = f" ([the night before]({streak['previous_url']}))" if streak.get("previous_url") else ""
    lines = ["", f"Night after night: **{_cell(streak['text'])}**{before}"]
    flaky = streak.get("flaky") or []
    if flaky:
        lines += [""] + [f"- `{_cell(f['text'])}`" for f in flaky]
    return lines


def _groups(title: str, groups: list[dict[str, Any]]) -> list[str]:
    if not groups:
        return []
    lines = [
        "",
        f"### {title}",
        "",
        "| tests | category | known issue | cause (key evidence) |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {g['count']} | `{g['category']}` | {_issue(g.get('known_issue'), g.get('link'))} | {_cell(g['reason'])} |"
        for g in groups
    ]
    names = [f"`{nodeid.split('::')[-1]}`" for g in groups for nodeid in g["tests"]]
    lines += ["", f"<details><summary>{len(names)} tests</summary>", "", ", ".join(names), "", "</details>"]
    return lines


def render(verdict: dict[str, Any]) -> str:
    outcome = str(verdict.get("outcome", "?")).upper()
    lines = [
        f"## Staging validation: {outcome} (exit {verdict.get('exit_status', '?')})",
        "",
        f"**{first_line(str(verdict['headline']))}**",
    ]
    if not verdict.get("diagnosis"):  # nothing was tested: the headline says why, nothing to judge
        return "\n".join(lines) + "\n"
    lines += ["", f"Who acts: {verdict['owner']}"]
    lines += _streak_lines(verdict.get("streak"))
    lines += _cause_line(verdict.get("cause"))
    counts = verdict["counts"]
    lines += [
        "",
        f"{counts['passed']} passed, {counts['failed']} failed, {counts['broken']} broken, "
        f"{counts['skipped']} skipped, {counts['flaky']} flaky in {verdict['duration_s']:.1f}s "
        f"against `{verdict['targets'].get('backend', '')}` ({verdict['environment']})",
    ]
    coverage = verdict.get("coverage") or []
    if coverage and not all(c.get("reason") == "not selected" for c in coverage):
        lines += ["", "| capability | state | note |", "|---|---|---|"]
        lines += [
            f"| {c['title']} | {c['state'].replace('_', ' ')} | {_cell(c.get('reason'))} |" for c in coverage
        ]
    groups = verdict.get("failure_groups") or []
    lines += _groups("New failures", [g for g in groups if g["new"]])
    lines += _groups("Known issues", [g for g in groups if not g["new"]])
    slo = verdict.get("slo")
    if slo:
        lines += [
            "",
            f"### {slo['issue_name']}: {slo['verdict']}",
            "",
            "| gate | status | measured | threshold | detail |",
        ]
        lines.append("|---|---|---|---|---|")
        for gate in slo.get("gates", []):
            measured = "-" if gate.get("measured") is None else gate["measured"]
            lines.append(
                f"| {gate['name']} | {gate['status'].upper()} | {_cell(measured)} | {_cell(gate.get('threshold'))} "
                f"| {_cell(gate.get('detail'))} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m harness.report.job_summary",
        description="The verdict as a CI job summary (Markdown on stdout): the same words as the terminal's "
        'box and Allure\'s first page. In GitHub Actions: >> "$GITHUB_STEP_SUMMARY".',
    )
    parser.add_argument(
        "verdict",
        nargs="?",
        type=Path,
        default=Path("reports/verdict.json"),
        help="verdict.json (default: %(default)s)",
    )
    path = parser.parse_args(argv).verdict
    if not path.exists():
        print(
            f"## Staging validation: no verdict\n\n`{path}` was not written: the suite did not run to its end."
        )
        return 0
    print(render(json.loads(path.read_text())), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
