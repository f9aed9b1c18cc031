"""The terminal summary a person reads in five seconds: the diagnosis, then failures by category."""

from __future__ import annotations

from collections import defaultdict

from harness.taxonomy import DESCRIPTIONS
from harness.verdict import TestResult, Verdict

HEADLINES = {
    "healthy": "HEALTHY: staging works (login, chat, AI answer, persistence)",
    "issue_1278": "ISSUE #1278: the backend is down with the #1278 signature (gateway 503 / startup failed in its database phase) - infrastructure",
    "infrastructure": "INFRASTRUCTURE: staging's infrastructure failed the run (not the product's code)",
    "product_defect": "PRODUCT DEFECT: infrastructure answered, the product misbehaved",
}


def render_summary(verdict: Verdict, exit_status: int, verdict_path: str) -> list[str]:
    counts = verdict.counts
    lines = [
        "",
        "=" * 100,
        f"DIAGNOSIS {HEADLINES[verdict.diagnosis]}",
        (
            f"outcome {verdict.outcome(exit_status).upper()} | {counts['passed']} passed, {counts['failed']} failed, "
            f"{counts['broken']} broken, {counts['skipped']} skipped, {counts['flaky']} flaky | "
            f"{verdict.duration_s:.1f}s | env {verdict.environment}"
        ),
    ]
    groups: dict[str, list[TestResult]] = defaultdict(list)
    for test in verdict.failures:
        groups[test.category or ""].append(test)
    for category in sorted(groups):
        description = DESCRIPTIONS.get(category, "")  # type: ignore[call-overload]  # StrEnum keys match str
        lines.append(f"  {category} ({len(groups[category])}) {description}")
        for test in sorted(groups[category], key=lambda t: t.nodeid):
            known = f" [known {test.known_issue}]" if test.known_issue else ""
            lines.append(f"    {test.nodeid.split('::')[-1]}{known}: {first_line(test.message)}")
    for test in sorted(verdict.tests, key=lambda t: t.nodeid):
        if test.status == "passed" and test.known_issue:
            lines.append(f"  reproduced {test.known_issue}: {first_line(test.message)}")
    flaky = [t for t in verdict.tests if t.flaky]
    if flaky:
        lines.append(
            f"  passed after an infrastructure retry ({len(flaky)}): "
            + ", ".join(t.nodeid.split("::")[-1] for t in flaky)
        )
    if verdict.slo is not None:
        lines.extend(_verify_lines(verdict.slo))
    lines.append(f"verdict: {verdict_path}")
    lines.append("=" * 100)
    return lines


def first_line(message: str | None, width: int = 220) -> str:
    text = (message or "").strip().splitlines()[0] if message else ""
    return text if len(text) <= width else text[: width - 3] + "..."


def _verify_lines(slo: dict[str, object]) -> list[str]:
    figures = ", ".join(f"{k}={v}" for k, v in slo.items() if k not in ("fixed", "reasons"))
    lines = [f"  measured: {figures}"] if figures else []
    if slo.get("fixed"):
        return [*lines, "Issue #1278: FIXED"]
    reasons = [str(r) for r in slo.get("reasons") or []]  # type: ignore[attr-defined]
    return [*lines, "Issue #1278: NOT FIXED", *(f"  - {first_line(r)}" for r in reasons)]
