"""The terminal's box, the last thing a person reads: the verdict's body (verdict.json) as a few
lines. It renders and decides nothing: the headline, the outcome, the coverage, one line per cause
with its count and key evidence, the reproductions, the retried passes and (verify-fix) the gates
table, each read from the body as `harness.report.verdict` wrote it."""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from harness import text

WIDTH = 100
# A message's first line, cut for a terminal.
first_line = functools.partial(text.first_line, width=220)


def render(body: Mapping[str, Any], verdict_path: str) -> list[str]:
    counts = body["counts"]
    lead = "DIAGNOSIS " if body.get("diagnosis") else ""  # a run that tested nothing has none
    lines = [
        "",
        "=" * WIDTH,
        f"{lead}{body['headline']}",
        (
            f"outcome {str(body['outcome']).upper()} (exit {body['exit_status']}) | "
            f"{counts['passed']} passed, {counts['failed']} failed, {counts['broken']} broken, "
            f"{counts['skipped']} skipped, {counts['flaky']} flaky | {body['duration_s']:.1f}s | "
            f"env {body['environment']}"
        ),
        *_streak_lines(body.get("streak")),
        *([] if body.get("slo") else _coverage_lines(body.get("coverage") or [])),
    ]
    by_category: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for group in body.get("failure_groups") or []:
        by_category[group["category"]].append(group)
    for category in sorted(by_category):
        groups = by_category[category]
        lines.append(f"  {category} ({sum(g['count'] for g in groups)}) {groups[0]['title']}")
        lines += _failure_lines(groups)
    lines += [
        f"  reproduced {r['known_issue']}: {first_line(r['message'])}" for r in body.get("reproduced") or []
    ]
    flaky = body.get("flaky") or []
    if flaky:
        lines.append(f"  passed after an infrastructure retry ({len(flaky)}): {', '.join(flaky)}")
    slo = body.get("slo")
    if slo:
        lines += gate_lines(slo["gates"])
        lines.append(f"{slo['issue_name']}: {slo['verdict']}")
    lines.append(f"verdict: {verdict_path}")
    lines.append("=" * WIDTH)
    return lines


def _streak_lines(streak: Mapping[str, Any] | None) -> list[str]:
    """What changed since the nights before, and the tests flaky tonight counted over the nights."""
    if not streak:
        return []
    lines = [f"  nights: {streak['text']}"]
    flaky = [f["text"] for f in streak.get("flaky") or []]
    if flaky:
        lines.append(f"  flaky over the nights: {'; '.join(flaky)}")
    return lines


def _failure_lines(groups: Sequence[Mapping[str, Any]]) -> list[str]:
    """One line per cause (its count and reason), then the tests' names."""
    lines = []
    for group in groups:
        known = f" [{group['known_issue']}]" if group.get("known_issue") else ""
        names = [nodeid.split("::")[-1] for nodeid in group["tests"]]
        if len(names) == 1:
            lines.append(f"    {names[0]}{known}: {first_line(group['reason'])}")
        else:
            lines.append(f"    {len(names)} tests{known}: {first_line(group['reason'])}")
            lines.append(f"      {', '.join(names)}")
    return lines


def _coverage_lines(coverage: Sequence[Mapping[str, Any]]) -> list[str]:
    """Verified, failed, and not verified grouped by reason (one reason is usually one cause); nothing
    for a run that selected no capability (a reproduction)."""
    if all(c.get("reason") == "not selected" for c in coverage):
        return []
    verified = [
        c["title"] + (f" ({c['reason']})" if c.get("reason") else "")
        for c in coverage
        if c["state"] == "verified"
    ]
    failed = [c["title"] for c in coverage if c["state"] == "failed"]
    lines = [f"  verified: {', '.join(verified) or 'nothing'}"]
    if failed:
        lines.append(f"  failed: {', '.join(failed)}")
    by_reason: dict[str, list[str]] = defaultdict(list)
    for c in coverage:
        if c["state"] == "not_verified":
            by_reason[c.get("reason") or "no reason"].append(c["title"])
    lines += [f"  not verified ({reason}): {', '.join(titles)}" for reason, titles in by_reason.items()]
    return lines


def gate_lines(gates: Sequence[Mapping[str, Any]]) -> list[str]:
    """The gates as a small table: status, gate, measured, threshold, then each detail not passed."""
    rows = [("gate", "status", "measured", "threshold")]
    rows += [
        (g["name"], g["status"].upper(), _fmt(g.get("measured")), g.get("threshold") or "") for g in gates
    ]
    widths = [max(len(str(r[i])) for r in rows) for i in range(4)]
    lines = [
        ("  " + "  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True))).rstrip() for row in rows
    ]
    # whole: a gate's detail says how to measure it (a command a person copies)
    lines += [
        f"    {g['name']}: {text.first_line(g['detail'])}"
        for g in gates
        if g.get("detail") and g["status"] != "passed"
    ]
    return lines


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
