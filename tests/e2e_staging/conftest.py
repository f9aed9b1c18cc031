"""Fixtures of the staging suite. No mocks here: every fixture talks to the real target."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness import allure_api as allure
from harness.errors import E2EFailure
from harness.operations import Login, Operations, SocketControl
from harness.pytest_plugin import suite_of
from harness.settings import Settings

NO_KEY = "E2E_OAUTH_SIMULATION_KEY is not set: the suite cannot log in to this target"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test here is part of the staging suite, and mocks have no place in it."""
    for item in items:
        item.add_marker(pytest.mark.e2e_staging)
        module = getattr(item, "module", None)
        if module is not None and any(
            name in vars(module) for name in ("mock", "MagicMock", "patch", "respx")
        ):
            raise pytest.UsageError(f"{item.nodeid}: mocks are not allowed in the staging suite")


@pytest.fixture(scope="session")
def settings(pytestconfig: pytest.Config) -> Settings:
    return suite_of(pytestconfig).settings


@pytest.fixture(scope="session")
def platform(pytestconfig: pytest.Config) -> Operations:
    return suite_of(pytestconfig).operations


@pytest.fixture(scope="session")  # one login per run (per xdist worker): kinder to the auth service
def login(platform: Operations, settings: Settings) -> Iterator[Login]:
    """Precondition of every authenticated check: the bypass login works."""
    if not settings.oauth_simulation_key:
        pytest.skip(NO_KEY)
    with allure.step("login through POST /auth/e2e/test-auth"):
        yield platform.login()


@pytest.fixture(scope="session")
def socket_control(platform: Operations, login: Login) -> SocketControl:
    with allure.step("control: open a chat socket with the logged-in user's token"):
        try:
            return SocketControl(platform.welcome(login.access_token), None)
        except E2EFailure as failure:
            return SocketControl(None, failure)
