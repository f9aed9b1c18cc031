"""Judging a reproduction: did every probe show the known issue's signature?

A reproduction passes when its issue reproduces; when it does not, it fails as
`repro.not_reproduced` (a system not in the state a reproduction looks for is not a defect), naming
a probe without the signature. Each probe is judged once, by the one decision table.
"""

from __future__ import annotations

from collections.abc import Sequence

from harness import allure_api as allure
from harness import journal
from harness.classify import Expect, classify_http
from harness.errors import NotReproduced
from harness.evidence import HttpEvidence, Target


def require_reproduced(
    issue: str, evidence: Sequence[HttpEvidence], what: str, *, target: Target = "backend"
) -> None:
    """Every probe of `evidence` carries `issue`'s signature; the test's record then says so."""
    matched = [(ev, classify_http(ev, Expect(), target=target).known_issue == issue) for ev in evidence]
    hits = [ev for ev, hit in matched if hit]
    lines = [f"{i + 1}: {issue if hit else 'other'} | {ev.summary()}" for i, (ev, hit) in enumerate(matched)]
    allure.attach("\n".join(lines), name=f"{what}: probes", attachment_type=allure.attachment_type.TEXT)
    summary = f"reproduced in {len(hits)}/{len(evidence)} probes"
    allure.dynamic.description(f"{what}: {summary}")
    if len(hits) != len(evidence) or not hits:
        other = next((ev.summary() for ev, hit in matched if not hit), "no probe")
        raise NotReproduced(
            f"{issue} did not reproduce: {what} {summary}; a probe without the signature: {other}"
        )
    current = journal.current()
    current.reproduced = issue
    current.note = f"{issue} {summary} ({what}); e.g. {hits[0].summary()}"
