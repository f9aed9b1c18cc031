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
