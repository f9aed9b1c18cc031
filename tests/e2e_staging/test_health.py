"""Health and readiness of the backend and the auth service: 2xx JSON that says healthy.

Read as the real system writes them, in both eras: the backend's `/health` is `{"status": "ok"}`
(aebb16f) or `{"status": "healthy", "service": ...}` (older); readiness may or may not report its
components. What a body does not report is judged nowhere, and said in the evidence. `/ws/health`
is not checked: in staging the readiness middleware refuses any plain GET under /ws with its own
503, so it says nothing about health (the chat socket itself is checked in test_auth/golden_path).
"""

from __future__ import annotations

from typing import Any

import allure
import pytest

from contract.identity import AUTH_SERVICE, BACKEND_SERVICE
from contract.rest import HEALTHY_STATUSES, READY_STATUSES
from harness import record
from harness.classify import Expect
from harness.errors import InfraFailure, ProductFailure
from harness.staging import Staging
from harness.taxonomy import Category

pytestmark = [pytest.mark.health]
# Readiness components, and the values that mean "working" (or deliberately not required).
COMPONENTS = ("core_db", "redis_db", "clickhouse_db", "database_status")
COMPONENT_OK = frozenset(
    {"connected", "healthy", "ok", "skipped_optional", "disabled_optional", "not_configured"}
)


def _healthy(body: dict[str, Any], what: str, statuses: frozenset[str]) -> None:
    if body.get("status") not in statuses:
        raise ProductFailure(
            Category.PRODUCT_CONTRACT,
            f"{what} answered 200 but says status {body.get('status')!r} (healthy is one of {sorted(statuses)})",
            kind="unhealthy_status",
        )


def _note_unreported(body: dict[str, Any], what: str) -> None:
    """The evidence says what this body did not report, so nobody reads its absence as a pass."""
    unreported = [name for name in ("service", *COMPONENTS) if name not in body]
    record.current().note = f"{what}: not reported: {', '.join(unreported)}" if unreported else None
    allure.dynamic.description(record.current().note or f"{what}: every field reported")


def _components(body: dict[str, Any], what: str) -> None:
    """Judge the components the body reports, and only those."""
    failing = {k: body[k] for k in COMPONENTS if k in body and body[k] not in COMPONENT_OK}
    if failing:
        raise InfraFailure(
            Category.INFRA_DEPENDENCY,
            f"{what} reports components not working: {failing}",
            kind="dependency_down",
            service="backend" if "backend" in what else "auth",
        )


@allure.epic("Staging validation")
@allure.feature("Health")
@allure.story("Backend")
@allure.severity(allure.severity_level.BLOCKER)
@allure.link("https://github.com/netra-systems/zen/issues/1278", link_type="issue", name="#1278")
class TestBackendHealth:
    @allure.title("The backend's /health answers 200 JSON that says it is healthy")
    @pytest.mark.verifies("backend_health")
    def test_health_is_healthy_json_from_the_backend(self, staging: Staging) -> None:
        body = staging.check(
            "backend", "/health", Expect(target="backend", service=BACKEND_SERVICE, keys=("status",))
        )
        _note_unreported(body, "backend /health")
        _healthy(body, "backend /health", HEALTHY_STATUSES)

    @allure.title("The backend's readiness says ready, and every component it reports works")
    @pytest.mark.verifies("backend_health")
    def test_readiness_is_ready(self, staging: Staging) -> None:
        body = staging.check(
            "backend", "/health/ready", Expect(target="backend", service=BACKEND_SERVICE, keys=("status",))
        )
        _note_unreported(body, "backend /health/ready")
        _components(body, "backend /health/ready")
        _healthy(body, "backend /health/ready", READY_STATUSES)

    @allure.title("The backend says its database is connected")
    @pytest.mark.verifies("backend_health")
    def test_database_health_is_connected(self, staging: Staging) -> None:
        body = staging.check("backend", "/health/database", Expect(target="backend", keys=("connected",)))
        if body["connected"] is not True:
            raise InfraFailure(
                Category.INFRA_DEPENDENCY,
                f"the backend says its database is not connected: {body}",
                kind="dependency_down",
                service="backend",
            )


@allure.epic("Staging validation")
@allure.feature("Health")
@allure.story("Auth service")
@allure.severity(allure.severity_level.CRITICAL)
class TestAuthHealth:
    @allure.title("The auth service's /health answers 200 JSON that says it is healthy")
    @pytest.mark.verifies("auth_health")
    def test_health_is_healthy_json_from_the_auth_service(self, staging: Staging) -> None:
        body = staging.check("auth", "/health", Expect(target="auth", service=AUTH_SERVICE, keys=("status",)))
        _note_unreported(body, "auth /health")
        _components(body, "auth /health")
        _healthy(body, "auth /health", HEALTHY_STATUSES)

    @allure.title("The auth service's readiness says ready")
    @pytest.mark.verifies("auth_health")
    def test_readiness_is_ready(self, staging: Staging) -> None:
        body = staging.check("auth", "/health/ready", Expect(target="auth", keys=("status",)))
        _components(body, "auth /health/ready")
        _healthy(body, "auth /health/ready", READY_STATUSES)
