"""`python -m harness.job_summary reports/verdict.json`: the verdict as a CI job summary (Markdown).

Known-issue failures are listed apart from new ones: a night that only shows #1278 again needs
no one's attention beyond the infrastructure ticket; a new category does. A verify-fix run shows
its gates table.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from harness.summary import first_line


def render(verdict: dict[str, Any]) -> str:
    counts = verdict["counts"]
    lines = [
        f"## Staging validation: {verdict['outcome'].upper()} (exit {verdict.get('exit_status', '?')})",
        "",
        f"**{verdict.get('headline') or verdict['diagnosis']}**",
        "",
        f"{counts['passed']} passed, {counts['failed']} failed, {counts['broken']} broken, "
        f"{counts['skipped']} skipped, {counts['flaky']} flaky in {verdict['duration_s']:.1f}s "
        f"against `{verdict['targets'].get('backend', '')}` ({verdict['environment']})",
    ]
    coverage = verdict.get("coverage") or []
    if coverage:
        lines += ["", "| capability | state | note |", "|---|---|---|"]
        lines += [
            f"| {c['title']} | {c['state'].replace('_', ' ')} | {c.get('reason') or ''} |" for c in coverage
        ]
    failures = [t for t in verdict["tests"] if t["status"] in ("failed", "broken")]
    for title, group in (
        ("New failures", [t for t in failures if not t.get("known_issue")]),
        ("Known issues", [t for t in failures if t.get("known_issue")]),
    ):
        if not group:
            continue
        lines += ["", f"### {title}", "", "| category | tests | known issue |", "|---|---|---|"]
        for (category, known), n in sorted(
            Counter((t["category"], t.get("known_issue") or "") for t in group).items()
        ):
            lines.append(f"| `{category}` | {n} | {known or '-'} |")
        lines += ["", *(f"- `{t['nodeid']}`: {first_line(t.get('message'))}" for t in group)]
    slo = verdict.get("slo")
    if slo:
        lines += [
            "",
            f"### Issue #1278: {slo.get('verdict')}",
            "",
            "| gate | status | measured | threshold | detail |",
        ]
        lines.append("|---|---|---|---|---|")
        for gate in slo.get("gates", []):
            measured = "-" if gate.get("measured") is None else gate["measured"]
            lines.append(
                f"| {gate['name']} | {gate['status'].upper()} | {measured} | {gate.get('threshold') or ''} "
                f"| {first_line(gate.get('detail'))} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0] if args else "reports/verdict.json")
    if not path.exists():
        print(
            f"## Staging validation: no verdict\n\n`{path}` was not written: the suite did not run to its end."
        )
        return 0
    print(render(json.loads(path.read_text())), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
