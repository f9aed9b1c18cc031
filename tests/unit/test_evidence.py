"""The key fact of a body, as every summary of an exchange shows it (harness.evidence.key_fact)."""

from __future__ import annotations

import pytest

from harness.evidence import key_fact

pytestmark = pytest.mark.unit

GFE_503 = "<!DOCTYPE html><html lang=en><meta charset=utf-8><title>Error 503 (Server Error)!!1</title><p>..."


@pytest.mark.parametrize(
    ("snippet", "parsed", "fact"),
    [
        (GFE_503, None, "page title 'Error 503 (Server Error)!!1'"),
        (
            '{"error": true, "error_code": "SERVICE_UNAVAILABLE", "message": "Database unavailable"}',
            {"error": True, "error_code": "SERVICE_UNAVAILABLE", "message": "Database unavailable"},
            "its JSON says SERVICE_UNAVAILABLE, message: 'Database unavailable'",
        ),
        (
            '{"detail": "E2E authentication not configured"}',
            {"detail": "E2E authentication not configured"},
            "its JSON says detail: 'E2E authentication not configured'",
        ),
        ("upstream connect error", None, "body: 'upstream connect error'"),
        ("", None, "empty body"),
    ],
    ids=["gateway-page-title", "error-envelope", "fastapi-detail", "plain-text", "empty"],
)
def test_the_key_fact_of_a_body(snippet: str, parsed: object, fact: str) -> None:
    assert key_fact(snippet, parsed) == fact
