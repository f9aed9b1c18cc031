"""Reproduce Issue #1278: the backend's health is answered by the gateway's 503 page (not the
service's JSON), consistently, while the auth service stays up.

These tests pass when the issue reproduces; when it does not, they fail as `repro.not_reproduced`
("Issue #1278 did not reproduce: ...") and the run's diagnosis is `not_reproduced`: a system not in
the state a reproduction looks for is not a defect. `make reproduce-1278` runs them alone.
"""

from __future__ import annotations

import time

import pytest

from harness import allure_api as allure
from harness.allure_steps import issue_marks
from harness.classify import Expect
from harness.errors import NotReproduced
from harness.operations import Operations
from harness.reproduction import require_reproduced

ISSUE = "issue-1278"
PROBES = 6
HEALTH_PATHS = ("/health", "/health/ready", "/health/database")

pytestmark = [
    pytest.mark.issue_1278,
    allure.feature("Reproduction"),
    allure.severity(allure.severity_level.BLOCKER),
    *issue_marks(ISSUE),
]


@allure.title("The backend's /health is answered by the gateway's 503 page, probe after probe")
def test_backend_health_is_answered_by_the_gateway_503_page(platform: Operations) -> None:
    evidence = []
    for n in range(PROBES):
        with allure.step(f"probe {n + 1}/{PROBES}: GET /health"):
            evidence.append(platform.probe("backend", "/health"))
        time.sleep(platform.settings.repro_probe_interval_s)
    require_reproduced(ISSUE, evidence, "backend /health")


@allure.title("Every backend health path is answered by the gateway's page")
def test_every_backend_health_path_is_answered_by_the_gateway_page(platform: Operations) -> None:
    evidence = [platform.probe("backend", path) for path in HEALTH_PATHS]
    require_reproduced(ISSUE, evidence, "backend health paths")


@allure.title("The auth service stays healthy during the outage (the control)")
def test_auth_service_stays_healthy_during_the_outage(platform: Operations) -> None:
    """The control: #1278 is the backend's database path, not the whole platform."""
    body = platform.check("auth", "/health", Expect(keys=("status",)))
    if body["status"] != "healthy":
        raise NotReproduced(f"auth /health is {body['status']!r}: a wider outage than #1278")
