"""Hooks that other plugins implement to serve the suite (explicit wiring, like pytest's own).

The replica's plugin (`replica.pytest_plugin`, loaded for E2E_ENV=local) implements
`pytest_e2e_provide_targets`; the harness never imports the replica.
"""

from __future__ import annotations

import pytest

from harness.settings import Settings


@pytest.hookspec(firstresult=True)
def pytest_e2e_provide_targets(config: pytest.Config, settings: Settings) -> Settings | None:
    """Settings with targets for a run that has none (and whatever the provider knows: the bypass
    key, the signing secret, where startup evidence is), or None. Called once, in the controller
    (never in an xdist worker), before any test runs; the provider stops what it started in its own
    `pytest_unconfigure`."""


@pytest.hookspec
def pytest_e2e_await_startups(config: pytest.Config, minimum: int, timeout_s: float) -> None:
    """Called once before a run reads the backend's startup record for the verify-fix gates. A provider
    that can cause startups itself (the local replica: new revisions rolled out after its fix, as Cloud
    Run starts new instances after a deploy) returns once at least `minimum` startups have finished
    since the window's start, once no more can come, or after `timeout_s`; it never raises for a
    shortfall (the gate then says how many were missing). Staging has no provider: the record is read
    as it is, and a gate short of startups names the command that starts more."""
