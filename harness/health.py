"""Judging a health document the way the real system writes it, in both eras.

The backend's `/health` is `{"status": "ok"}` (aebb16f) or `{"status": "healthy", "service": ...}`
(older); readiness may or may not report its components. What a body does not report is judged
nowhere, and the evidence says what was not, so that nobody reads its absence as a pass. The service
is always named by the caller, never guessed from the text.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from contract.rest import HEALTHY_STATUSES, READY_STATUSES
from harness import allure_api as allure
from harness import journal
from harness.errors import InfraFailure, ProductFailure
from harness.evidence import Target
from harness.taxonomy import Category

# Readiness components, and the values that mean "working" (or deliberately not required).
COMPONENTS = ("core_db", "redis_db", "clickhouse_db", "database_status")
COMPONENT_OK = frozenset(
    {"connected", "healthy", "ok", "skipped_optional", "disabled_optional", "not_configured"}
)


def require_healthy(body: Mapping[str, Any], service: Target, path: str) -> None:
    """`body` (the 200 JSON of `service`'s `path`) says healthy, or ready for a readiness path; every
    component it reports works. What it does not report is noted, not judged."""
    where = f"{service} {path}"
    _note_unreported(body, where)
    failing = {k: body[k] for k in COMPONENTS if k in body and body[k] not in COMPONENT_OK}
    if failing:
        raise InfraFailure(
            Category.INFRA_DEPENDENCY,
            f"{where} reports components not working: {failing}",
            kind="dependency_down",
            service=service,
        )
    statuses = READY_STATUSES if path.rstrip("/").endswith("ready") else HEALTHY_STATUSES
    if body.get("status") not in statuses:
        raise ProductFailure(
            Category.PRODUCT_CONTRACT,
            f"{where} answered 200 but says status {body.get('status')!r} (healthy is one of {sorted(statuses)})",
            kind="unhealthy_status",
            service=service,
        )


def require_connected(body: Mapping[str, Any], service: Target) -> None:
    """The database-health document of `service` says its database is connected."""
    if body.get("connected") is not True:
        raise InfraFailure(
            Category.INFRA_DEPENDENCY,
            f"the {service} says its database is not connected: {dict(body)}",
            kind="dependency_down",
            service=service,
        )


def _note_unreported(body: Mapping[str, Any], where: str) -> None:
    unreported = [name for name in ("service", *COMPONENTS) if name not in body]
    note = f"{where}: not reported: {', '.join(unreported)}" if unreported else None
    journal.current().note = note
    allure.dynamic.description(note or f"{where}: every field reported")
