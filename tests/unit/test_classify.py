"""The decision table: every taxonomy row is reached from a realistic exchange.

Responses are real httpx responses produced by `httpx.MockTransport` and read through HttpProbe,
so the classifier sees exactly the evidence a staging run would produce.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from contract.identity import AUTH_SERVICE, BACKEND_SERVICE
from harness import record
from harness.classify import (
    Expect,
    check_http,
    classify_http,
    classify_ws_close,
    classify_ws_handshake,
)
from harness.errors import InfraFailure, ProductFailure
from harness.evidence import HttpEvidence
from harness.http import probe
from harness.redact import register
from harness.taxonomy import Category

pytestmark = pytest.mark.unit

HEALTH = Expect(service=BACKEND_SERVICE, keys=("status",))
GFE_503 = (
    b"<!DOCTYPE html><html lang=en><title>Error 503 (Server Error)!!1</title>"
    b"<p>The server encountered a temporary error and could not complete your request.</p></html>"
)


def respond(
    status: int,
    body: bytes | str | dict[str, Any] | None = None,
    content_type: str | None = None,
    *,
    path: str = "/health",
    host: str = "backend.test",
    body_limit: int | None = None,
) -> HttpEvidence:
    """Evidence of one real httpx exchange answered by a mock transport."""
    if isinstance(body, dict):
        body, content_type = json.dumps(body).encode(), content_type or "application/json"
    content = body.encode() if isinstance(body, str) else (body or b"")
    headers = {"content-type": content_type} if content_type else {}

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=content, headers=headers)

    kwargs: dict[str, Any] = {"body_limit": body_limit} if body_limit else {}
    return probe("GET", f"http://{host}{path}", transport=httpx.MockTransport(handler), **kwargs)


def failing(exc: Exception) -> HttpEvidence:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    return probe("GET", "http://backend.test/health", transport=httpx.MockTransport(handler))


def category(ev: HttpEvidence, expect: Expect = HEALTH) -> Category | None:
    return classify_http(ev, expect).category


# --- no response ------------------------------------------------------------------------------


def test_no_response_within_the_deadline_is_infra_timeout() -> None:
    async def hang(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return httpx.Response(200)

    ev = probe("GET", "http://backend.test/health", transport=httpx.MockTransport(hang), deadline_s=0.05)
    assert category(ev) is Category.INFRA_TIMEOUT


def test_httpx_connect_timeout_is_infra_timeout() -> None:
    assert category(failing(httpx.ConnectTimeout("timed out"))) is Category.INFRA_TIMEOUT


def test_connection_refused_is_infra_unreachable() -> None:
    assert (
        category(failing(httpx.ConnectError("[Errno 111] Connection refused"))) is Category.INFRA_UNREACHABLE
    )


def test_dns_failure_is_infra_unreachable() -> None:
    ev = failing(httpx.ConnectError("[Errno -2] Name or service not known"))
    assert category(ev) is Category.INFRA_UNREACHABLE


def test_body_deadline_after_headers_is_infra_timeout() -> None:
    ev = HttpEvidence(
        "GET", "http://backend.test/health", status=200, timed_out=True, error_type="DeadlineExceeded"
    )
    assert category(ev) is Category.INFRA_TIMEOUT


def test_connection_lost_mid_body_is_infra_unreachable() -> None:
    ev = HttpEvidence(
        "GET", "http://backend.test/health", status=200, error_type="RemoteProtocolError", error="x"
    )
    assert category(ev) is Category.INFRA_UNREACHABLE


# --- gateway pages ----------------------------------------------------------------------------


def test_gfe_html_503_is_infra_gateway() -> None:
    assert category(respond(503, GFE_503, "text/html; charset=UTF-8")) is Category.INFRA_GATEWAY


def test_json_typed_503_with_html_body_is_infra_gateway() -> None:
    assert category(respond(503, GFE_503, "application/json")) is Category.INFRA_GATEWAY


def test_empty_503_is_infra_gateway() -> None:
    assert category(respond(503)) is Category.INFRA_GATEWAY


def test_invalid_utf8_json_503_is_infra_gateway() -> None:
    assert category(respond(503, b'{"status": "\xff\xfe"}', "application/json")) is Category.INFRA_GATEWAY


def test_envoy_text_502_is_infra_gateway() -> None:
    ev = respond(502, "upstream connect error or disconnect/reset before headers", "text/plain")
    assert category(ev) is Category.INFRA_GATEWAY


def test_cloud_run_no_instance_429_is_infra_gateway() -> None:
    ev = respond(429, "The request was aborted because there was no available instance.", "text/plain")
    assert category(ev) is Category.INFRA_GATEWAY


def test_gateway_504_is_infra_gateway() -> None:
    assert category(respond(504, "upstream request timeout", "text/plain")) is Category.INFRA_GATEWAY


def test_shutdown_json_503_is_infra_gateway() -> None:
    body = {"error": "Service Unavailable", "message": "Service is shutting down gracefully"}
    assert category(respond(503, body)) is Category.INFRA_GATEWAY


# --- the service's own 503 --------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"status": "unhealthy", "message": "Startup in progress", "startup_in_progress": True},
        {"status": "unhealthy", "message": "Startup failed: database timeout", "startup_failed": True},
        {"status": "unhealthy", "message": "Startup not complete", "startup_complete": False},
        {"status": "unhealthy", "message": "Startup state unknown", "startup_complete": None},
        {"status": "unhealthy", "message": "Startup in progress - not ready"},
    ],
    ids=["in-progress", "failed", "not-complete", "unknown", "message-only"],
)
def test_startup_json_503_is_infra_starting(body: dict[str, Any]) -> None:
    assert category(respond(503, body)) is Category.INFRA_STARTING


@pytest.mark.parametrize(
    "body",
    [
        {"detail": "Database unavailable"},
        {"status": "unhealthy", "service": "auth-service", "reason": "Database connectivity failed"},
        {"status": "unhealthy", "connected": False},
        {"status": "not_ready", "reason": "redis ping failed"},
        {
            "error": "not_ready",
            "message": "WebSocket service is not ready",
            "details": {"failed_services": ["redis"]},
        },
    ],
    ids=["database-unavailable", "auth-db-reason", "connected-false", "redis-reason", "ws-failed-services"],
)
def test_dependency_json_503_is_infra_dependency(body: dict[str, Any]) -> None:
    assert category(respond(503, body, path="/health/database")) is Category.INFRA_DEPENDENCY


# --- product statuses -------------------------------------------------------------------------


def test_500_is_product_http() -> None:
    assert category(respond(500, {"error": True, "error_code": "INTERNAL_ERROR"})) is Category.PRODUCT_HTTP


def test_500_html_is_product_http_not_gateway() -> None:
    assert category(respond(500, "<html>Internal Server Error</html>", "text/html")) is Category.PRODUCT_HTTP


def test_404_is_product_http() -> None:
    assert category(respond(404, {"detail": "Not Found"}, path="/api/health")) is Category.PRODUCT_HTTP


def test_401_on_auth_endpoint_is_product_auth() -> None:
    expect = Expect(service=AUTH_SERVICE, auth_endpoint=True)
    ev = respond(401, {"detail": "Invalid E2E bypass key"}, path="/auth/e2e/test-auth", host="auth.test")
    assert category(ev, expect) is Category.PRODUCT_AUTH


def test_401_elsewhere_is_product_http() -> None:
    assert (
        category(respond(401, {"detail": "Not authenticated"}, path="/api/threads")) is Category.PRODUCT_HTTP
    )


# --- contract ---------------------------------------------------------------------------------


def test_html_200_on_health_path_is_product_contract() -> None:
    ev = respond(200, "<!DOCTYPE html><html><body>Netra</body></html>", "text/html")
    assert category(ev, Expect(json=False)) is Category.PRODUCT_CONTRACT


def test_frontend_health_answering_is_product_contract() -> None:
    ev = respond(200, {"status": "degraded", "service": "frontend"})
    assert category(ev) is Category.PRODUCT_CONTRACT


def test_frontend_answer_reason_names_the_frontend() -> None:
    ev = respond(200, {"status": "degraded", "service": "frontend"})
    assert "the frontend answered" in classify_http(ev, HEALTH).reason


def test_text_body_on_json_endpoint_is_product_contract() -> None:
    assert category(respond(200, "ok", "text/plain", path="/api/threads")) is Category.PRODUCT_CONTRACT


def test_unparsable_json_200_is_product_contract() -> None:
    assert category(respond(200, b'{"status": "ok\xff"}', "application/json")) is Category.PRODUCT_CONTRACT


def test_missing_keys_is_product_contract() -> None:
    ev = respond(200, {"service": BACKEND_SERVICE})
    assert category(ev) is Category.PRODUCT_CONTRACT


def test_json_list_where_object_expected_is_product_contract() -> None:
    ev = probe(
        "GET",
        "http://backend.test/health",
        transport=httpx.MockTransport(lambda request: httpx.Response(200, json=["ok"])),
    )
    assert category(ev) is Category.PRODUCT_CONTRACT


def test_json_cut_at_the_body_limit_is_product_contract() -> None:
    ev = respond(200, {"status": "ok", "padding": "x" * 5000}, body_limit=1024)
    assert category(ev) is Category.PRODUCT_CONTRACT


# --- passing exchanges ------------------------------------------------------------------------


def test_healthy_backend_passes() -> None:
    ev = respond(200, {"status": "healthy", "service": BACKEND_SERVICE})
    assert category(ev) is None


def test_body_without_service_field_passes_the_identity_check() -> None:
    assert category(respond(200, {"status": "ok"})) is None


def test_expected_startup_503_passes_when_listed_as_ok() -> None:
    expect = Expect(ok=frozenset({503}), keys=("startup_failed",))
    assert category(respond(503, {"message": "Startup failed", "startup_failed": True}), expect) is None


def test_non_json_expectation_accepts_any_body() -> None:
    assert category(respond(204, path="/auth/logout"), Expect(ok=frozenset({204}), json=False)) is None


# --- check_http ---------------------------------------------------------------------------------


@pytest.fixture
def test_record() -> record.TestRecord:
    return record.begin("tests/unit/test_classify.py::check_http")


def test_check_http_returns_the_parsed_json(test_record: record.TestRecord) -> None:
    body = {"status": "healthy", "service": BACKEND_SERVICE}
    assert check_http(respond(200, body), HEALTH, what="backend /health") == body


def test_check_http_raises_infra_failure_for_a_gateway_page(test_record: record.TestRecord) -> None:
    with pytest.raises(InfraFailure) as info:
        check_http(respond(503, GFE_503, "text/html"), HEALTH, what="backend /health")
    assert info.value.category is Category.INFRA_GATEWAY


def test_check_http_raises_product_failure_for_a_contract_break(test_record: record.TestRecord) -> None:
    with pytest.raises(ProductFailure) as info:
        check_http(respond(200, {"status": "ok", "service": "frontend"}), HEALTH, what="backend /health")
    assert info.value.category is Category.PRODUCT_CONTRACT


def test_check_http_message_names_what_and_the_exchange(test_record: record.TestRecord) -> None:
    with pytest.raises(InfraFailure) as info:
        check_http(respond(503), HEALTH, what="backend /health")
    assert str(info.value).startswith("[infra.gateway] backend /health: 503 with a non-JSON body") and (
        "GET http://backend.test/health -> 503" in str(info.value)
    )


def test_check_http_labels_issue_1278(test_record: record.TestRecord) -> None:
    with pytest.raises(InfraFailure) as info:
        check_http(respond(503, GFE_503, "text/html"), HEALTH, what="backend /health")
    assert info.value.known_issue == "issue-1278"


def test_check_http_does_not_label_the_auth_service_with_1278(test_record: record.TestRecord) -> None:
    with pytest.raises(InfraFailure) as info:
        check_http(
            respond(503, GFE_503, "text/html", host="auth.test"), Expect(service=AUTH_SERVICE), what="auth"
        )
    assert info.value.known_issue is None


def test_check_http_notes_redacted_evidence(test_record: record.TestRecord) -> None:
    register("classify-secret-0042")
    check_http(
        respond(200, {"status": "ok", "token": "classify-secret-0042"}), HEALTH, what="backend /health"
    )
    assert "classify-secret-0042" not in json.dumps(test_record.evidence) and len(test_record.evidence) == 1


# --- WebSocket helpers --------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_ws_upgrade_refused_with_5xx_is_infra_ws(status: int) -> None:
    assert classify_ws_handshake(status).category is Category.INFRA_WS


@pytest.mark.parametrize("status", [401, 403])
def test_ws_upgrade_refused_with_401_403_is_product_auth(status: int) -> None:
    assert classify_ws_handshake(status).category is Category.PRODUCT_AUTH


def test_ws_upgrade_accepted_passes() -> None:
    assert classify_ws_handshake(101).ok


def test_ws_upgrade_404_is_product_http() -> None:
    assert classify_ws_handshake(404).category is Category.PRODUCT_HTTP


def test_ws_upgrade_without_answer_is_infra_unreachable() -> None:
    assert classify_ws_handshake(None).category is Category.INFRA_UNREACHABLE


@pytest.mark.parametrize("code", [1006, 1011, 1012, 1013, 1014])
def test_ws_infra_close_codes_are_infra_ws(code: int) -> None:
    assert classify_ws_close(code).category is Category.INFRA_WS


def test_ws_close_1008_is_product_auth() -> None:
    assert classify_ws_close(1008).category is Category.PRODUCT_AUTH


def test_ws_normal_close_passes() -> None:
    assert classify_ws_close(1000).ok


def test_ws_missing_close_frame_is_infra_ws() -> None:
    assert classify_ws_close(None).category is Category.INFRA_WS


def test_ws_unsupported_subprotocol_close_is_product_contract() -> None:
    assert classify_ws_close(1003).category is Category.PRODUCT_CONTRACT


# --- coverage of the taxonomy -----------------------------------------------------------------


def test_every_exchange_category_is_reachable() -> None:
    reached = {
        category(failing(httpx.ConnectTimeout("t"))),
        category(failing(httpx.ConnectError("refused"))),
        category(respond(503, GFE_503, "text/html")),
        category(respond(503, {"message": "Startup in progress", "startup_in_progress": True})),
        category(respond(503, {"detail": "Database unavailable"})),
        classify_ws_close(1011).category,
        category(respond(200, {"status": "ok", "service": "frontend"})),
        category(respond(401, {"detail": "bad key"}), Expect(auth_endpoint=True)),
        category(respond(500, {"error": True})),
    }
    not_http = {Category.PRODUCT_GOLDEN_PATH, Category.PRODUCT_SLO}  # judged by the chat and SLO checks
    assert reached == set(Category) - not_http
