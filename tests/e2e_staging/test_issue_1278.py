"""Reproduce Issue #1278: the backend's health is answered by the gateway's 503 page (not the
service's JSON), consistently, while the auth service stays up.

These tests pass when the issue reproduces; when it does not, they fail as `repro.not_reproduced`
("Issue #1278 did not reproduce: ...") and the run's diagnosis is `not_reproduced`: a system not in
the state a reproduction looks for is not a defect. `make reproduce-1278` runs them alone.
"""

from __future__ import annotations

import time

import allure
import pytest

from harness import record
from harness.classify import Expect, classify_http
from harness.errors import NotReproduced
from harness.evidence import HttpEvidence
from harness.staging import Staging

ISSUE = "issue-1278"
PROBES = 6
HEALTH_PATHS = ("/health", "/health/ready", "/health/database")

pytestmark = [
    pytest.mark.issue_1278,
    allure.epic("Issue #1278"),
    allure.feature("Reproduction"),
    allure.severity(allure.severity_level.BLOCKER),
    allure.link("https://github.com/netra-systems/zen/issues/1278", link_type="issue", name="#1278"),
]


def _reproduced(ev: HttpEvidence) -> bool:
    return classify_http(ev, Expect(target="backend")).known_issue == ISSUE


def _judge(evidence: list[HttpEvidence], what: str) -> None:
    matched = [(ev, _reproduced(ev)) for ev in evidence]
    hits = [ev for ev, hit in matched if hit]
    lines = [
        f"{i + 1}: {'#1278' if hit else 'other'} | {ev.summary()}" for i, (ev, hit) in enumerate(matched)
    ]
    allure.attach("\n".join(lines), name=f"{what}: probes", attachment_type=allure.attachment_type.TEXT)
    summary = f"reproduced in {len(hits)}/{len(evidence)} probes"
    allure.dynamic.description(f"{what}: {summary}")
    if len(hits) != len(evidence):
        other = next(ev for ev, hit in matched if not hit)
        raise NotReproduced(
            f"Issue #1278 did not reproduce: {what} {summary}; a probe without the signature: {other.summary()}"
        )
    current = record.current()
    current.reproduced = ISSUE
    current.note = f"Issue #1278 {summary} ({what}); e.g. {hits[0].summary()}"


@allure.title("The backend's /health is answered by the gateway's 503 page, probe after probe")
def test_backend_health_is_answered_by_the_gateway_503_page(staging: Staging) -> None:
    evidence = []
    for n in range(PROBES):
        with allure.step(f"probe {n + 1}/{PROBES}: GET /health"):
            evidence.append(staging.probe("backend", "/health"))
        time.sleep(0.5 if staging.settings.env == "local" else 5.0)
    _judge(evidence, "backend /health")


@allure.title("Every backend health path is answered by the gateway's page")
def test_every_backend_health_path_is_answered_by_the_gateway_page(staging: Staging) -> None:
    evidence = []
    for path in HEALTH_PATHS:
        with allure.step(f"GET {path}"):
            evidence.append(staging.probe("backend", path))
    _judge(evidence, "backend health paths")


@allure.title("The auth service stays healthy during the outage (the control)")
def test_auth_service_stays_healthy_during_the_outage(staging: Staging) -> None:
    """The control: #1278 is the backend's database path, not the whole platform."""
    body = staging.check("auth", "/health", Expect(target="auth", keys=("status",)))
    if body["status"] != "healthy":
        raise NotReproduced(f"auth /health is {body['status']!r}: a wider outage than #1278")
