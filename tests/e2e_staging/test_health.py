"""Health and readiness of the backend and the auth service: 2xx JSON from the right service."""

from __future__ import annotations

import allure
import pytest

from contract.identity import AUTH_SERVICE, BACKEND_SERVICE
from harness.classify import Expect
from harness.staging import Staging

pytestmark = [pytest.mark.health]


@allure.epic("Staging validation")
@allure.feature("Health")
@allure.story("Backend")
@allure.severity(allure.severity_level.BLOCKER)
@allure.link("https://github.com/netra-systems/zen/issues/1278", link_type="issue", name="#1278")
class TestBackendHealth:
    def test_health_is_healthy_json_from_the_backend(self, staging: Staging) -> None:
        body = staging.check(
            "backend", "/health", Expect(service=BACKEND_SERVICE, keys=("status",), target="backend")
        )
        assert body["status"] == "healthy", (
            f"backend /health status is {body['status']!r}, expected 'healthy'"
        )

    def test_readiness_reports_the_database_connected(self, staging: Staging) -> None:
        body = staging.check(
            "backend",
            "/health/ready",
            Expect(service=BACKEND_SERVICE, keys=("status", "core_db"), target="backend"),
        )
        assert (body["status"], body["core_db"]) == ("ready", "connected"), f"readiness: {body}"

    def test_database_health_is_connected(self, staging: Staging) -> None:
        body = staging.check("backend", "/health/database", Expect(keys=("connected",), target="backend"))
        assert body["connected"] is True, f"/health/database says {body}"

    def test_websocket_health_is_served(self, staging: Staging) -> None:
        body = staging.check("backend", "/ws/health", Expect(keys=("status",), target="backend"))
        assert body["status"] == "healthy", f"/ws/health says {body}"


@allure.epic("Staging validation")
@allure.feature("Health")
@allure.story("Auth service")
@allure.severity(allure.severity_level.CRITICAL)
class TestAuthHealth:
    def test_health_is_healthy_json_from_the_auth_service(self, staging: Staging) -> None:
        body = staging.check("auth", "/health", Expect(service=AUTH_SERVICE, keys=("status",), target="auth"))
        assert body["status"] == "healthy", f"auth /health status is {body['status']!r}, expected 'healthy'"

    def test_readiness_is_ready(self, staging: Staging) -> None:
        body = staging.check("auth", "/health/ready", Expect(keys=("status",), target="auth"))
        assert body["status"] == "ready", f"auth readiness: {body}"
