"""The suite's markers, declared once: one row per marker, registered by the plugin (as allure-pytest
registers its own), read by the usage checks (what `MARKERS=` may name, what a marker's argument may
be) and by the selection (which suites run only when asked for).

A known issue with a reproduction suite of its own is one more row (`reproduces` names its catalogue
id), beside its catalogue entry and its test module.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from harness.report.coverage import CAPABILITIES
from harness.report.gates import NO_RETRY, TITLES


@dataclass(frozen=True)
class Marker:
    name: str
    help: str
    selectable: bool  # a person selects the suite's tests by it (`MARKERS=...`); kept in the verdict
    opt_in: bool  # its tests run only when a marker expression selects them
    arguments: frozenset[str] | None  # the one argument it takes must be one of these; None: no argument
    reproduces: str | None  # the known issue its tests reproduce

    @property
    def line(self) -> str:
        """The line pytest registers (`name(arg): help`)."""
        signature = f"{self.name}(value)" if self.arguments is not None else self.name
        return f"{signature}: {self.help}"


MARKERS: tuple[Marker, ...] = (
    Marker(
        "e2e_staging",
        "a test of the staging validation suite (runs against E2E_ENV's target)",
        True,
        False,
        None,
        None,
    ),
    Marker("health", "backend and auth health and readiness", True, False, None, None),
    Marker("golden_path", "login -> WebSocket chat -> AI answer -> stored message", True, False, None, None),
    Marker("auth", "authentication, including negative cases that must be refused", True, False, None, None),
    Marker(
        "issue_1278",
        "reproduces Issue #1278 (gateway 503 pages, startup failing in its database phase)",
        True,
        True,
        None,
        "issue-1278",
    ),
    Marker(
        "verify_fix",
        "post-infrastructure-fix verification (make verify-fix): wait, golden path runs, SLO gates",
        True,
        True,
        None,
        None,
    ),
    Marker(
        "verifies",
        "the capability a staging test verifies",
        False,
        False,
        frozenset(c.name for c in CAPABILITIES),
        None,
    ),
    Marker("gate", "the verify-fix gate a test measures", False, False, frozenset(TITLES) - {NO_RETRY}, None),
)

SELECTABLE: tuple[str, ...] = tuple(m.name for m in MARKERS if m.selectable)
OPT_IN: tuple[str, ...] = tuple(m.name for m in MARKERS if m.opt_in)
WITH_ARGUMENTS: dict[str, frozenset[str]] = {m.name: m.arguments for m in MARKERS if m.arguments is not None}


def selectable_of(names: Iterable[str]) -> list[str]:
    """The selectable markers among a test's marker names, sorted (what the verdict keeps)."""
    return sorted(set(names) & set(SELECTABLE))
