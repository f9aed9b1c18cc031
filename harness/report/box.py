"""What a person reads in five seconds: the headline (the diagnosis in one line, naming only what
the run verified), the outcome, the coverage, then failures by category with one line of evidence."""

from __future__ import annotations

import functools
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from harness import known_issues, text
from harness.report.cause import Cause
from harness.report.coverage import Coverage
from harness.report.gates import Gate
from harness.report.verdict import EXIT_NO_TESTS, FailureGroup, TestResult, Verdict
from harness.taxonomy import Category

WIDTH = 100
# A message's first line, cut for a terminal or a job summary.
first_line = functools.partial(text.first_line, width=220)
KEY_HINT = "E2E_OAUTH_SIMULATION_KEY (from the secret store)"


def headline(verdict: Verdict, pytest_exit: int) -> str:
    outcome = verdict.outcome(pytest_exit)
    diagnosis = verdict.diagnosis
    cov = verdict.coverage
    if outcome == "error":
        if verdict.usage_error:
            return f"USAGE ERROR: {verdict.usage_error}"
        if pytest_exit == EXIT_NO_TESTS:
            return "NO TESTS RAN: the selection (MARKERS / -m, -k) matched no test of the suite; nothing verified"
        return "USAGE ERROR: pytest refused the run (its message is above); nothing verified"
    if verdict.verify:
        return _fix_headline(verdict.gates, verdict.fix_verdict)
    cause = verdict.cause
    if diagnosis.kind == "known_issue":
        issue = known_issues.get(diagnosis.known_issue)
        text = issue.headline if issue else "a catalogued issue explains every failure"
        if cause and cause.known_issue == diagnosis.known_issue and cause.status == "unconfirmed":
            return f"KNOWN ISSUE {diagnosis.known_issue}, unconfirmed: {cause.detail}"
        if cause and cause.known_issue == diagnosis.known_issue:
            return f"KNOWN ISSUE {diagnosis.known_issue}, confirmed by {cause.by} ({cause.detail}): {text}"
        return f"KNOWN ISSUE {diagnosis.known_issue}: {text}"
    if cause and cause.status == "ruled_out" and diagnosis.kind in ("product_defect", "infrastructure"):
        return _ruled_out(cause)
    if diagnosis.kind == "product_defect":
        categories = sorted(
            {t.category for t in verdict.failures if t.category and t.category.startswith("product.")}
        )
        return (
            f"PRODUCT DEFECT: the infrastructure answered, the product misbehaved ({', '.join(categories)})"
        )
    if diagnosis.kind == "infrastructure":
        return f"INFRASTRUCTURE, not the product's code: {_infra_cause(verdict.failures)}"
    if diagnosis.kind == "not_reproduced":
        return "NOT REPRODUCED: the issue's signature was not seen; staging is not in the state the reproduction looks for (not a defect)"
    if diagnosis.kind == "suite_error":
        return "SUITE ERROR: the validation suite itself failed, not staging (see the suite.error failures)"
    if outcome == "incomplete":
        return _incomplete(cov)
    return _healthy(cov)


def _ruled_out(cause: Cause) -> str:
    """The record ruled the known issue out: who must act instead, in the record's words."""
    if cause.instead == "bad_deploy":
        return (
            f"PRODUCT DEFECT (a bad deploy, not {cause.known_issue}): {cause.detail}; Cloud Run serves its "
            "503 page for any backend that is not up: the product or its configuration must act"
        )
    return f"INFRASTRUCTURE (the load balancer / ingress, not {cause.known_issue}): {cause.detail}"


# The gates a FIXED headline names (the table shows every one): the status update's own criteria.
_HEADLINE_GATES = ("startup_success_rate", "db_phase_max", "golden_path", "availability")


def _fix_headline(gates: Sequence[Gate], fix: str | None) -> str:
    if fix == "FIXED":
        return (
            "FIXED: Issue #1278's success criteria are met: every gate measured and passed ("
            + "; ".join(f"{g.name} {g.measured}" for g in gates if g.name in _HEADLINE_GATES)
            + ")"
        )
    failed = [g for g in gates if g.status == "failed"]
    if failed:
        return "NOT FIXED: " + "; ".join(f"{g.name}: {first_line(g.detail) or g.measured}" for g in failed)
    unmeasured: dict[str, list[str]] = defaultdict(list)  # one reason, the gates it leaves unmeasured
    for gate in gates:
        if gate.status == "unmeasured":
            unmeasured[text.first_line(gate.detail, 150)].append(gate.name)
    return "INCONCLUSIVE: nothing failed, but not measured: " + "; ".join(
        f"{', '.join(names)} ({reason})" for reason, names in unmeasured.items()
    )


def _names(items: Sequence[Coverage]) -> str:
    return ", ".join(c.title for c in items)


def _healthy(cov: Sequence[Coverage]) -> str:
    verified = [c for c in cov if c.state == "verified"]
    unselected = [c for c in cov if c.state == "not_verified"]
    text = (
        f"HEALTHY: {_names(verified)} verified" if verified else "HEALTHY: nothing failed, nothing verified"
    )
    return text + (f" (not verified: {_names(unselected)})" if unselected else "")


def _incomplete(cov: Sequence[Coverage]) -> str:
    missing = [c for c in cov if c.golden_path and c.state == "not_verified" and c.reason != "not selected"]
    verified = [c for c in cov if c.state == "verified"]
    reasons = sorted({c.reason or "" for c in missing})
    needs_key = any("E2E_OAUTH_SIMULATION_KEY is not set" in r for r in reasons)
    how = f"; provide {KEY_HINT}" if needs_key else ""
    done = f"; verified: {_names(verified)}" if verified else ""
    return f"INCOMPLETE: {_names(missing)} not verified ({'; '.join(reasons)}){how}{done}"


def _infra_cause(failures: Sequence[TestResult]) -> str:
    infra = [t for t in failures if t.category and t.category.startswith("infra.")]
    if not infra:
        return "staging's infrastructure failed the run"
    category, _ = Counter(t.category or "" for t in infra).most_common(1)[0]
    first = next(t for t in infra if t.category == category)
    service = f"{first.service}: " if first.service else ""
    what = Category(category).description.removeprefix("Infrastructure: ")
    return f"{service}{what} — {_reason(first.message)}"


def _reason(message: str | None, width: int = 160) -> str:
    """The message's first line without its `[category]` prefix, cut to `width`."""
    line = text.first_line(message)
    if line.startswith("[") and "] " in line:
        line = line.split("] ", 1)[1]
    return text.first_line(line, width)


def render_summary(verdict: Verdict, pytest_exit: int, verdict_path: str) -> list[str]:
    counts = verdict.counts
    lines = [
        "",
        "=" * WIDTH,
        # a run that tested nothing has no diagnosis: its line says why, nothing more
        ("" if verdict.outcome(pytest_exit) == "error" else "DIAGNOSIS ") + headline(verdict, pytest_exit),
        (
            f"outcome {verdict.outcome(pytest_exit).upper()} (exit {verdict.exit_status(pytest_exit)}) | "
            f"{counts['passed']} passed, {counts['failed']} failed, {counts['broken']} broken, "
            f"{counts['skipped']} skipped, {counts['flaky']} flaky | {verdict.duration_s:.1f}s | "
            f"env {verdict.environment}"
        ),
        *([] if verdict.verify else _coverage_lines(verdict.coverage)),
    ]
    by_category: dict[str, list[FailureGroup]] = defaultdict(list)
    for group in verdict.failure_groups:
        by_category[group.category].append(group)
    for category in sorted(by_category):
        count = sum(len(g.tests) for g in by_category[category])
        description = Category(category).description if category else ""
        lines.append(f"  {category} ({count}) {description}")
        lines += _failure_lines(by_category[category])
    for test in sorted(verdict.tests, key=lambda t: t.nodeid):
        if test.status == "passed" and test.known_issue:
            lines.append(f"  reproduced {test.known_issue}: {first_line(test.message)}")
    flaky = [t for t in verdict.tests if t.flaky]
    if flaky:
        lines.append(
            f"  passed after an infrastructure retry ({len(flaky)}): "
            + ", ".join(t.nodeid.split("::")[-1] for t in flaky)
        )
    if verdict.verify:
        lines += gate_lines(verdict.gates)
        lines.append(f"Issue #1278: {verdict.fix_verdict}")
    lines.append(f"verdict: {verdict_path}")
    lines.append("=" * WIDTH)
    return lines


def _failure_lines(groups: Sequence[FailureGroup]) -> list[str]:
    """One line per cause (its count and reason), then the tests' names."""
    lines = []
    for group in groups:
        known = f" [{group.known_issue}]" if group.known_issue else ""
        names = [nodeid.split("::")[-1] for nodeid in group.tests]
        if len(names) == 1:
            lines.append(f"    {names[0]}{known}: {first_line(group.reason)}")
        else:
            lines.append(f"    {len(names)} tests{known}: {first_line(group.reason)}")
            lines.append(f"      {', '.join(names)}")
    return lines


def _coverage_lines(cov: Sequence[Coverage]) -> list[str]:
    """Verified, failed, and not verified grouped by reason (one reason is usually one cause); nothing
    for a run that selected no capability (a reproduction)."""
    if all(c.reason == "not selected" for c in cov):
        return []
    verified = [c.title + (f" ({c.reason})" if c.reason else "") for c in cov if c.state == "verified"]
    failed = [c.title for c in cov if c.state == "failed"]
    lines = [f"  verified: {', '.join(verified) or 'nothing'}"]
    if failed:
        lines.append(f"  failed: {', '.join(failed)}")
    by_reason: dict[str, list[str]] = defaultdict(list)
    for c in cov:
        if c.state == "not_verified":
            by_reason[c.reason or "no reason"].append(c.title)
    lines += [f"  not verified ({reason}): {', '.join(titles)}" for reason, titles in by_reason.items()]
    return lines


def gate_lines(gates: Sequence[Gate]) -> list[str]:
    """The gates as a small table: status, gate, measured, threshold, detail."""
    rows = [("gate", "status", "measured", "threshold")]
    rows += [(g.name, g.status.upper(), _fmt(g.measured), g.threshold or "") for g in gates]
    widths = [max(len(str(r[i])) for r in rows) for i in range(4)]
    lines = [
        ("  " + "  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True))).rstrip() for row in rows
    ]
    # whole: a gate's detail says how to measure it (a command a person copies)
    lines += [
        f"    {g.name}: {text.first_line(g.detail)}" for g in gates if g.detail and g.status != "passed"
    ]
    return lines


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
