"""verdict.json holds to its published schema (docs/verdict.schema.json), whatever the run concluded:
a reader (a dashboard, the nightly, a person's script) can rely on every field it names. The self-tests
check every verdict of a real run against it too (tests/selftest/conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from harness.report.cause import Cause
from harness.report.verdict import EXIT_USAGE, RunFacts, TestResult, TestStatus, conclude
from harness.taxonomy import Category

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "docs" / "verdict.schema.json").read_text(encoding="utf-8"))
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker())


def _test(name: str, status: TestStatus, category: str | None = None, **extra: Any) -> TestResult:
    return TestResult(
        nodeid=f"tests/e2e_staging/test_x.py::{name}",
        markers=["health"],
        status=status,
        capabilities=["backend_health"],
        category=category,
        service="backend",
        message=f"[{category}] {name}" if category else None,
        **extra,
    )


def _body(*tests: TestResult, pytest_exit: int = 1, **facts: Any) -> dict[str, Any]:
    base = {"environment": "staging", "targets": {"backend": "b", "auth": "a", "ws": "w"}}
    return conclude(
        RunFacts(pytest_exit, started_at="2026-12-07T03:17:00Z", tests=tests, **(base | facts))
    ).body()


BODIES = {
    "healthy": lambda: _body(_test("ok", "passed"), _test("retried", "passed", flaky=True), pytest_exit=0),
    "known issue": lambda: _body(
        _test("down", "broken", "infra.gateway", known_issue="issue-1278"),
        cause=Cause("issue-1278", "confirmed", "3 of 3 startups died in phase database after 95 s"),
    ),
    "product defect": lambda: _body(_test("chat", "failed", "product.golden_path")),
    "verify-fix": lambda: _body(
        _test("gate", "passed", gate="health", gate_figures={"measured": "1s", "threshold": "<= 60s"}),
        pytest_exit=0,
        verified_issue="issue-1278",
    ),
    "usage error": lambda: conclude(RunFacts(EXIT_USAGE, usage_error="unknown marker 'golden-path'")).body(),
}


@pytest.mark.parametrize("story", BODIES)
def test_every_verdict_holds_to_the_published_schema(story: str) -> None:
    VALIDATOR.validate(BODIES[story]())


def test_the_schema_refuses_a_field_it_does_not_name() -> None:
    """A new field is added to the schema first: the contract says everything a reader may rely on."""
    body = BODIES["healthy"]() | {"surprise": 1}
    with pytest.raises(jsonschema.ValidationError, match="surprise"):
        VALIDATOR.validate(body)


def test_the_schemas_categories_are_the_taxonomys() -> None:
    assert set(SCHEMA["$defs"]["category"]["enum"]) == {c.value for c in Category}


def test_the_schema_is_a_valid_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
