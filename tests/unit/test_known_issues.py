"""Known-issue signatures (fixtures/known_issues.json) label exactly the Issue #1278 shapes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from harness import known_issues
from harness.evidence import HttpEvidence
from harness.taxonomy import Category

pytestmark = pytest.mark.unit

GFE_PAGE = "<html><title>Error 503 (Server Error)!!1</title></html>"


def evidence(status: int, body: str | dict[str, Any], *, path: str = "/health") -> HttpEvidence:
    if isinstance(body, dict):
        return HttpEvidence(
            "GET",
            f"https://api.staging.netrasystems.ai{path}",
            status=status,
            content_type="application/json",
            body_snippet=json.dumps(body, separators=(",", ":")),
            json=body,
        )
    return HttpEvidence(
        "GET",
        f"https://api.staging.netrasystems.ai{path}",
        status=status,
        content_type="text/html",
        body_snippet=body,
    )


def test_catalogue_loads_issue_1278_with_its_link() -> None:
    issue = known_issues.by_id("issue-1278")
    assert issue is not None and issue.link == "https://github.com/netra-systems/zen/issues/1278"


@pytest.mark.parametrize("path", ["/health", "/health/", "/health/ready", "/health/database"])
def test_gateway_503_on_backend_health_is_1278(path: str) -> None:
    issue = known_issues.match("backend", evidence(503, GFE_PAGE, path=path), Category.INFRA_GATEWAY)
    assert issue is not None and issue.id == "issue-1278"


def test_gateway_503_off_the_health_path_is_not_1278() -> None:
    assert (
        known_issues.match("backend", evidence(503, GFE_PAGE, path="/api/threads"), Category.INFRA_GATEWAY)
        is None
    )


def test_gateway_503_on_auth_health_is_not_1278() -> None:
    assert known_issues.match("auth", evidence(503, GFE_PAGE), Category.INFRA_GATEWAY) is None


def test_gateway_json_503_on_backend_health_is_not_1278() -> None:
    ev = evidence(503, {"error": "Service Unavailable", "message": "Service is shutting down gracefully"})
    assert known_issues.match("backend", ev, Category.INFRA_GATEWAY) is None


def test_gateway_502_is_not_1278() -> None:
    assert known_issues.match("backend", evidence(502, GFE_PAGE), Category.INFRA_GATEWAY) is None


def test_startup_failed_in_database_phase_is_1278() -> None:
    body = {
        "status": "unhealthy",
        "message": "Startup failed",
        "startup_failed": True,
        "details": {"phase": "database"},
    }
    issue = known_issues.match("backend", evidence(503, body), Category.INFRA_STARTING)
    assert issue is not None and issue.id == "issue-1278"


def test_startup_error_mentioning_the_database_phase_is_1278() -> None:
    body = {
        "status": "unhealthy",
        "message": "Startup failed: database phase timed out after 95s",
        "startup_failed": True,
    }
    issue = known_issues.match("backend", evidence(503, body), Category.INFRA_STARTING)
    assert issue is not None and issue.id == "issue-1278"


def test_startup_failed_in_cache_phase_is_not_1278() -> None:
    body = {
        "status": "unhealthy",
        "message": "Startup failed: redis error -3",
        "startup_failed": True,
        "phase": "cache",
    }
    assert known_issues.match("backend", evidence(503, body), Category.INFRA_STARTING) is None


def test_startup_in_progress_in_database_phase_is_not_1278() -> None:
    body = {"message": "Startup in progress", "startup_in_progress": True, "details": {"phase": "database"}}
    assert known_issues.match("backend", evidence(503, body), Category.INFRA_STARTING) is None


def test_category_must_match() -> None:
    assert known_issues.match("backend", evidence(503, GFE_PAGE), Category.INFRA_TIMEOUT) is None


def test_invalid_regex_in_the_catalogue_is_refused(tmp_path: Path) -> None:
    catalogue = {
        "issues": [
            {"id": "x", "title": "x", "link": "x", "signatures": [{"name": "bad", "body_regex": ["("]}]}
        ]
    }
    path = tmp_path / "issues.json"
    path.write_text(json.dumps(catalogue))
    with pytest.raises(ValidationError):
        known_issues.load(path)


def test_unknown_rule_in_the_catalogue_is_refused(tmp_path: Path) -> None:
    catalogue = {
        "issues": [{"id": "x", "title": "x", "link": "x", "signatures": [{"name": "n", "host": "a"}]}]
    }
    path = tmp_path / "issues.json"
    path.write_text(json.dumps(catalogue))
    with pytest.raises(ValidationError, match="host"):
        known_issues.load(path)
