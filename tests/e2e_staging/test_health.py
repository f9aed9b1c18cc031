"""Health and readiness of the backend and the auth service: 2xx JSON that says healthy.

Read as the real system writes them, in both eras (`harness.health`). `/ws/health` is not checked:
in staging the readiness middleware refuses any plain GET under /ws with its own 503, so it says
nothing about health (the chat socket itself is checked in test_auth and test_golden_path).
"""

from __future__ import annotations

import pytest

from contract.identity import AUTH_SERVICE, BACKEND_SERVICE
from harness import allure_api as allure
from harness import health
from harness.allure_steps import issue_link
from harness.classify import Expect
from harness.operations import Operations

pytestmark = [pytest.mark.health]

BACKEND_HEALTH = Expect(service=BACKEND_SERVICE, keys=("status",))
AUTH_HEALTH = Expect(service=AUTH_SERVICE, keys=("status",))


@allure.epic("Staging validation")
@allure.feature("Health")
@allure.story("Backend")
@allure.severity(allure.severity_level.BLOCKER)
@issue_link("issue-1278")
class TestBackendHealth:
    @allure.title("The backend's /health answers 200 JSON that says it is healthy")
    @pytest.mark.verifies("backend_health")
    def test_health_is_healthy_json_from_the_backend(self, platform: Operations) -> None:
        body = platform.check("backend", "/health", BACKEND_HEALTH)
        health.require_healthy(body, "backend", "/health")

    @allure.title("The backend's readiness says ready, and every component it reports works")
    @pytest.mark.verifies("backend_health")
    def test_readiness_is_ready(self, platform: Operations) -> None:
        body = platform.check("backend", "/health/ready", BACKEND_HEALTH)
        health.require_healthy(body, "backend", "/health/ready")

    @allure.title("The backend says its database is connected")
    @pytest.mark.verifies("backend_health")
    def test_database_health_is_connected(self, platform: Operations) -> None:
        body = platform.check("backend", "/health/database", Expect(keys=("connected",)))
        health.require_connected(body, "backend")


@allure.epic("Staging validation")
@allure.feature("Health")
@allure.story("Auth service")
@allure.severity(allure.severity_level.CRITICAL)
class TestAuthHealth:
    @allure.title("The auth service's /health answers 200 JSON that says it is healthy")
    @pytest.mark.verifies("auth_health")
    def test_health_is_healthy_json_from_the_auth_service(self, platform: Operations) -> None:
        body = platform.check("auth", "/health", AUTH_HEALTH)
        health.require_healthy(body, "auth", "/health")

    @allure.title("The auth service's readiness says ready")
    @pytest.mark.verifies("auth_health")
    def test_readiness_is_ready(self, platform: Operations) -> None:
        body = platform.check("auth", "/health/ready", Expect(keys=("status",)))
        health.require_healthy(body, "auth", "/health/ready")
