"""The one decision table (`harness.classify.RULES`), reached through its live entry points.

Evidence is built by hand in the shapes `harness.http` and `harness.ws` record (no sockets), with
the bodies and frames the real staging sends (docs/protocol.md). Every row of the table is
reached by a case below with its category and kind; a new row without a case fails
`test_every_rule_is_reached_by_a_case`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from contract.frames import flatten
from contract.identity import AUTH_SERVICE, BACKEND_SERVICE
from harness.classify import (
    RULES,
    Expect,
    Judgement,
    classify_http,
    classify_ws,
    dependency_down,
    error_code,
    finding,
    says_config_missing,
    says_starting,
)
from harness.evidence import HttpEvidence, NetworkFailure, Observation, WsEvidence
from harness.taxonomy import Category

pytestmark = pytest.mark.unit

BACKEND = "https://api.staging.netrasystems.ai"
AUTH = "https://auth.staging.netrasystems.ai"
WS_URL = "wss://api.staging.netrasystems.ai/ws"

BACKEND_HEALTH = Expect(service=BACKEND_SERVICE, keys=("status",))
AUTH_HEALTH = Expect(service=AUTH_SERVICE, keys=("status",))
LOGIN = Expect(auth_endpoint=True, keys=("access_token",))
API = Expect()

# Google's front end / Cloud Run while the backend starts or after it crashed (#1278).
GFE_503 = (
    "<!DOCTYPE html><html lang=en><meta charset=utf-8><title>Error 503 (Server Error)!!1</title>"
    "<p><b>503.</b> <ins>That's an error.</ins><p>The server encountered a temporary error and could "
    "not complete your request.<p>Please try again in 30 seconds. <ins>That's all we know.</ins></html>"
)
STACK = ["Traceback (most recent call last):", '  File "thread_service.py", line 88, in get_thread']

# The backend's own error envelope (routes/utils/error_handlers.py), with staging's debug fields.
DB_UNAVAILABLE_503 = {
    "error": True,
    "error_code": "SERVICE_UNAVAILABLE",
    "message": "Database unavailable",
    "user_message": "The service is temporarily unavailable. Please try again in a few moments.",
    "details": {"status_code": 503},
    "trace_id": "0f3c",
    "request_id": "req_1",
    "timestamp": "2025-09-18T10:00:00Z",
    "stack_trace": STACK,
}
THREAD_NOT_FOUND_404 = {
    "error": True,
    "error_code": "DB_RECORD_NOT_FOUND",
    "message": "Thread not found",
    "user_message": "The requested item could not be found.",
    "details": {"status_code": 404},
    "trace_id": "0f3d",
    "request_id": "req_2",
    "timestamp": "2025-09-18T10:00:01Z",
    "line_number": 88,
    "source_file": "thread_service.py",
    "stack_trace": STACK,
}
QUERY_FAILED_500 = {
    "error": True,
    "error_code": "INTERNAL_ERROR",
    "message": "Database query failed while saving the message",
    "user_message": "An unexpected error occurred. Please try again later.",
    "details": {"status_code": 500},
    "stack_trace": STACK,
}
WS_HEALTH_NOT_READY_503 = {
    "error": "service_not_ready",
    "message": "WebSocket service is not ready. Enhanced uvicorn compatibility check failed.",
    "details": {"state": "uvicorn_compatibility_failed", "failed_services": [], "environment": "staging"},
}
STARTING_503 = {
    "status": "unhealthy",
    "message": "Startup in progress",
    "startup_in_progress": True,
    "startup_complete": False,
}

# Frames as the real server sends them.
MAIN_MODE_ERROR = {  # aebb16f as shipped: right after the upgrade, then close 1011 "main mode error"
    "type": "error_message",
    "data": {
        "error_code": "CONNECTION_ERROR",
        "error_message": "WebSocket main mode failed: maximum recursion depth exceeded",
        "details": {"error_type": "RecursionError"},
    },
    "timestamp": 1758189600.0,
}
AGENT_DB_DOWN = {
    "type": "agent_error",
    "run_id": "run_1",
    "data": {
        "status": "error",
        "error_code": "SERVICE_UNAVAILABLE",
        "error_message": "Database unavailable",
        "error_context": "ConnectionRefusedError",
        "message": "Agent failed",
    },
}
AGENT_FAILED = {
    "type": "error_message",
    "error_code": "INTERNAL_ERROR",
    "error_message": "Agent execution failed",
    "details": {"error_type": "RuntimeError"},
}
AUTH_FAILED = {
    "type": "error_message",
    "error_code": "AUTH_FAILED",
    "error_message": "Authentication failed",
    "details": {"error_type": "AuthenticationError"},
}

EXCLUDED_CATEGORIES = {  # raised by tests and plugins, not by the table
    Category.REPRO_NOT_REPRODUCED,
    Category.SUITE_ERROR,
    Category.PRODUCT_SLO,
}


# -- evidence as the harness records it -----------------------------------------------------------


def http(
    status: int | None,
    body: Mapping[str, Any] | list[Any] | str = "",
    *,
    path: str = "/health",
    base: str = BACKEND,
    content_type: str | None = None,
    **fields: Any,
) -> HttpEvidence:
    """One exchange: the snippet always; `json` only for a complete JSON body (as harness.http)."""
    if isinstance(body, str):
        snippet, parsed = body, None
    else:
        snippet, parsed = json.dumps(body), body
        content_type = content_type or "application/json"
    return HttpEvidence(
        "GET",
        f"{base}{path}",
        status=status,
        content_type=content_type,
        body_snippet=snippet,
        body_bytes=len(snippet),
        json=parsed,
        **fields,
    )


def no_answer(network: NetworkFailure, error: str, *, base: str = BACKEND) -> HttpEvidence:
    return http(
        None,
        base=base,
        error=error,
        error_type="ConnectError",
        network=network,
        timed_out=network == "timeout",
    )


def classify(ev: HttpEvidence, expect: Expect) -> Judgement:
    """`classify_http` with the target the URL names (the auth service's host, else the backend)."""
    return classify_http(ev, expect, target="auth" if ev.url.startswith(AUTH) else "backend")


def socket(
    status: int | None = 101,
    *,
    close: int | None = None,
    reason: str | None = None,
    body: str = "",
    body_json: Any = None,
    network: NetworkFailure | None = None,
    error: str | None = None,
) -> WsEvidence:
    return WsEvidence(
        url=WS_URL,
        token_via="header",
        status=status,
        body_snippet=body,
        body_json=body_json,
        network=network,
        error=error,
        close_code=close,
        close_reason=reason,
    )


# -- the cases: every row of the table, and the real system's shapes -------------------------------


@dataclass(frozen=True)
class HttpCase:
    ev: HttpEvidence
    expect: Expect
    category: Category | None
    kind: str

    def outcome(self) -> Judgement:
        return classify(self.ev, self.expect)


@dataclass(frozen=True)
class WsCase:
    ev: WsEvidence
    category: Category | None
    kind: str
    frame: Mapping[str, Any] | None = None
    auth_step: bool = True

    def outcome(self) -> Judgement:
        return classify_ws(self.ev, error_frame=self.frame, auth_step=self.auth_step)


HTTP_CASES: dict[str, HttpCase] = {
    # passing exchanges
    "backend-health-ok-without-service": HttpCase(http(200, {"status": "ok"}), BACKEND_HEALTH, None, "ok"),
    "backend-health-older-shape": HttpCase(
        http(200, {"status": "healthy", "service": BACKEND_SERVICE}), BACKEND_HEALTH, None, "ok"
    ),
    "auth-health": HttpCase(
        http(
            200,
            {"status": "healthy", "service": AUTH_SERVICE, "database_status": "connected"},
            base=AUTH,
        ),
        AUTH_HEALTH,
        None,
        "ok",
    ),
    "expected-503-listed-as-ok": HttpCase(
        http(503, STARTING_503), Expect(ok=frozenset({503}), keys=("startup_in_progress",)), None, "ok"
    ),
    "no-json-wanted-204": HttpCase(
        http(204, path="/auth/logout"), Expect(ok=frozenset({204}), json=False), None, "ok"
    ),
    # no answer
    "timeout": HttpCase(
        no_answer("timeout", "no complete response within 10s"),
        API,
        Category.INFRA_TIMEOUT,
        "no_answer_timeout",
    ),
    "dns": HttpCase(
        no_answer("dns", "[Errno -2] Name or service not known"), API, Category.INFRA_UNREACHABLE, "dns"
    ),
    "tls": HttpCase(
        no_answer("tls", "[SSL: CERTIFICATE_VERIFY_FAILED]"), API, Category.INFRA_UNREACHABLE, "tls"
    ),
    "refused": HttpCase(
        no_answer("refused", "[Errno 111] Connection refused"), API, Category.INFRA_UNREACHABLE, "refused"
    ),
    "reset": HttpCase(
        no_answer("reset", "[Errno 104] Connection reset by peer"), API, Category.INFRA_UNREACHABLE, "reset"
    ),
    "network": HttpCase(
        no_answer("network", "Server disconnected without sending a response."),
        API,
        Category.INFRA_UNREACHABLE,
        "network",
    ),
    # a status, then the body failed
    "body-timeout": HttpCase(
        http(
            200,
            '{"status": "o',
            content_type="application/json",
            timed_out=True,
            network="timeout",
            error="no complete response within 10s",
            error_type="DeadlineExceeded",
            json_error="body incomplete: not parsed",
        ),
        BACKEND_HEALTH,
        Category.INFRA_TIMEOUT,
        "body_timeout",
    ),
    "body-dropped": HttpCase(
        http(
            200,
            '{"status": "o',
            content_type="application/json",
            network="network",
            error="peer closed connection without sending complete message body",
            error_type="RemoteProtocolError",
            json_error="body incomplete: not parsed",
        ),
        BACKEND_HEALTH,
        Category.INFRA_UNREACHABLE,
        "body_dropped",
    ),
    # the service's own JSON names an infrastructure cause
    "auth-bypass-not-configured": HttpCase(
        http(503, {"detail": "E2E authentication not configured"}, base=AUTH, path="/auth/e2e/test-auth"),
        LOGIN,
        Category.INFRA_CONFIG,
        "config_missing",
    ),
    "startup-in-progress": HttpCase(
        http(503, STARTING_503), BACKEND_HEALTH, Category.INFRA_STARTING, "service_starting"
    ),
    "startup-failed": HttpCase(
        http(
            503,
            {"status": "unhealthy", "message": "Startup failed: database timeout", "startup_failed": True},
        ),
        BACKEND_HEALTH,
        Category.INFRA_STARTING,
        "service_starting",
    ),
    "envelope-database-unavailable": HttpCase(
        http(503, DB_UNAVAILABLE_503, path="/api/threads"), API, Category.INFRA_DEPENDENCY, "dependency_down"
    ),
    "auth-database-connectivity": HttpCase(
        http(503, {"status": "unhealthy", "reason": "Database connectivity failed"}, base=AUTH),
        AUTH_HEALTH,
        Category.INFRA_DEPENDENCY,
        "dependency_down",
    ),
    "health-database-disconnected": HttpCase(
        http(503, {"status": "unhealthy", "connected": False}, path="/health/database"),
        BACKEND_HEALTH,
        Category.INFRA_DEPENDENCY,
        "dependency_down",
    ),
    # gateways
    "rate-limited": HttpCase(
        http(
            429, "The request was aborted because there was no available instance.", content_type="text/plain"
        ),
        API,
        Category.INFRA_GATEWAY,
        "rate_limited",
    ),
    "gfe-503-page": HttpCase(
        http(503, GFE_503, content_type="text/html; charset=UTF-8"),
        BACKEND_HEALTH,
        Category.INFRA_GATEWAY,
        "gateway_page",
    ),
    "envoy-502-text": HttpCase(
        http(502, "upstream connect error or disconnect/reset before headers", content_type="text/plain"),
        API,
        Category.INFRA_GATEWAY,
        "gateway_page",
    ),
    "gateway-504-empty": HttpCase(http(504), API, Category.INFRA_GATEWAY, "gateway_page"),
    # a proxy's JSON on 502/504 carries no product error code: still the gateway, not the service's code
    "proxy-json-502": HttpCase(
        http(502, {"message": "Bad Gateway"}), API, Category.INFRA_GATEWAY, "gateway_page"
    ),
    "google-style-nested-error-503": HttpCase(
        http(503, {"error": {"code": 503, "message": "Database unavailable", "status": "UNAVAILABLE"}}),
        API,
        Category.INFRA_DEPENDENCY,
        "dependency_down",
    ),
    "page-labelled-json-503": HttpCase(
        http(503, GFE_503, content_type="application/json", json_error="JSONDecodeError: Expecting value"),
        BACKEND_HEALTH,
        Category.INFRA_GATEWAY,
        "gateway_page",
    ),
    # authentication
    "login-wrong-key-401": HttpCase(
        http(401, {"detail": "Invalid E2E bypass key"}, base=AUTH, path="/auth/e2e/test-auth"),
        LOGIN,
        Category.PRODUCT_AUTH,
        "auth_refused",
    ),
    "me-403-on-auth-endpoint": HttpCase(
        http(403, {"detail": "Forbidden"}, base=AUTH, path="/auth/me"),
        Expect(auth_endpoint=True),
        Category.PRODUCT_AUTH,
        "auth_refused",
    ),
    "401-elsewhere-with-json": HttpCase(
        http(401, {"detail": "Not authenticated"}, path="/api/threads"),
        API,
        Category.PRODUCT_HTTP,
        "service_error",
    ),
    "401-elsewhere-without-body": HttpCase(
        http(401, path="/api/threads"),
        API,
        Category.PRODUCT_HTTP,
        "unexpected_status",
    ),
    # the service's own code failed
    "envelope-thread-not-found-404": HttpCase(
        http(404, THREAD_NOT_FOUND_404, path="/api/threads/thread_1/messages"),
        API,
        Category.PRODUCT_HTTP,
        "service_error",
    ),
    "envelope-query-error-500-names-the-database": HttpCase(
        http(500, QUERY_FAILED_500, path="/api/threads/thread_1/messages"),
        API,
        Category.PRODUCT_HTTP,
        "service_error",
    ),
    "ws-health-service-not-ready-503": HttpCase(
        http(503, WS_HEALTH_NOT_READY_503, path="/ws/health"), API, Category.PRODUCT_HTTP, "service_error"
    ),
    "shutting-down-503": HttpCase(
        http(503, {"error": "Service Unavailable", "message": "Service is shutting down gracefully"}),
        BACKEND_HEALTH,
        Category.INFRA_STARTING,
        "service_unavailable",
    ),
    "envelope-unavailable-without-a-cause-503": HttpCase(
        http(
            503,
            {"error": True, "error_code": "SERVICE_UNAVAILABLE", "message": "Try again later"},
            path="/api/threads",
        ),
        API,
        Category.INFRA_STARTING,
        "service_unavailable",
    ),
    "envelope-internal-error-503": HttpCase(
        http(
            503,
            {"error": True, "error_code": "INTERNAL_ERROR", "message": "Unexpected error"},
            path="/api/threads",
        ),
        API,
        Category.PRODUCT_HTTP,
        "service_error",
    ),
    "500-html": HttpCase(
        http(500, "<html><body>Internal Server Error</body></html>", content_type="text/html"),
        API,
        Category.PRODUCT_HTTP,
        "unexpected_status",
    ),
    # the contract of an expected answer
    "html-200-on-health": HttpCase(
        http(200, "<!DOCTYPE html><html><body>Netra</body></html>", content_type="text/html"),
        BACKEND_HEALTH,
        Category.PRODUCT_CONTRACT,
        "html_on_health",
    ),
    "too-large": HttpCase(
        http(
            200,
            '{"status": "ok", "padding": "xxxx',
            content_type="application/json",
            body_truncated=True,
            json_error="body cut at the 1048576-byte limit: not parsed",
        ),
        BACKEND_HEALTH,
        Category.PRODUCT_CONTRACT,
        "too_large",
    ),
    "not-json": HttpCase(
        http(200, "ok", path="/api/threads", content_type="text/plain"),
        API,
        Category.PRODUCT_CONTRACT,
        "not_json",
    ),
    "bad-json": HttpCase(
        http(200, '{"status": "ok",}', content_type="application/json", json_error="JSONDecodeError: x"),
        BACKEND_HEALTH,
        Category.PRODUCT_CONTRACT,
        "bad_json",
    ),
    "not-object": HttpCase(http(200, ["ok"]), BACKEND_HEALTH, Category.PRODUCT_CONTRACT, "not_object"),
    "missing-keys": HttpCase(
        http(200, {"service": BACKEND_SERVICE}), BACKEND_HEALTH, Category.PRODUCT_CONTRACT, "missing_keys"
    ),
    "frontend-answers-health": HttpCase(
        http(200, {"status": "healthy", "service": "frontend"}),
        BACKEND_HEALTH,
        Category.PRODUCT_CONTRACT,
        "wrong_service",
    ),
    # the wrong service is the better reason even when its body also lacks an expected key
    "frontend-without-status": HttpCase(
        http(200, {"service": "frontend"}), BACKEND_HEALTH, Category.PRODUCT_CONTRACT, "wrong_service"
    ),
}

WS_CASES: dict[str, WsCase] = {
    "accepted": WsCase(socket(), None, "ok"),
    # the upgrade
    "upgrade-refused-with-gfe-503": WsCase(socket(503, body=GFE_503), Category.INFRA_GATEWAY, "gateway_page"),
    "upgrade-403": WsCase(socket(403, body="Forbidden"), Category.PRODUCT_AUTH, "auth_refused"),
    "upgrade-401": WsCase(socket(401), Category.PRODUCT_AUTH, "auth_refused"),
    "upgrade-404": WsCase(socket(404, body="Not Found"), Category.PRODUCT_HTTP, "unexpected_status"),
    "refused": WsCase(
        socket(None, network="refused", error="[Errno 111] Connect call failed"),
        Category.INFRA_UNREACHABLE,
        "refused",
    ),
    "dns": WsCase(
        socket(None, network="dns", error="[Errno -2] Name or service not known"),
        Category.INFRA_UNREACHABLE,
        "dns",
    ),
    "open-timeout": WsCase(
        socket(None, network="timeout", error="timed out during opening handshake"),
        Category.INFRA_TIMEOUT,
        "no_answer_timeout",
    ),
    # after the upgrade: error frames and closes
    "main-mode-error-then-1011": WsCase(
        socket(close=1011, reason="main mode error"),
        Category.PRODUCT_GOLDEN_PATH,
        "service_error",
        frame=MAIN_MODE_ERROR,
    ),
    "close-1011-alone": WsCase(
        socket(close=1011, reason="Internal error"), Category.PRODUCT_GOLDEN_PATH, "service_error"
    ),
    "agent-failed-mid-turn": WsCase(
        socket(close=1011, reason="Internal error"),
        Category.PRODUCT_GOLDEN_PATH,
        "service_error",
        frame=AGENT_FAILED,
        auth_step=False,
    ),
    "close-1006": WsCase(socket(close=1006), Category.INFRA_WS, "platform_close"),
    "close-1012": WsCase(socket(close=1012, reason="service restart"), Category.INFRA_WS, "platform_close"),
    "close-1013": WsCase(socket(close=1013, reason="try again later"), Category.INFRA_WS, "platform_close"),
    "close-1014": WsCase(socket(close=1014, reason="bad gateway"), Category.INFRA_WS, "platform_close"),
    "close-1015": WsCase(socket(close=1015), Category.INFRA_WS, "platform_close"),
    "main-mode-error-then-1006": WsCase(
        socket(close=1006), Category.INFRA_WS, "platform_close", frame=MAIN_MODE_ERROR
    ),
    "agent-error-database-unavailable-then-1012": WsCase(
        socket(close=1012), Category.INFRA_WS, "platform_close", frame=AGENT_DB_DOWN, auth_step=False
    ),
    "close-1008": WsCase(
        socket(close=1008, reason="Authentication failed"), Category.PRODUCT_AUTH, "auth_refused"
    ),
    "auth-failed-frame-then-1008": WsCase(
        socket(close=1008), Category.PRODUCT_AUTH, "auth_refused", frame=AUTH_FAILED
    ),
    "auth-failed-frame": WsCase(socket(), Category.PRODUCT_AUTH, "auth_refused", frame=AUTH_FAILED),
    "router-defect-close-1000": WsCase(
        socket(close=1000, reason="main cleanup"),
        Category.PRODUCT_GOLDEN_PATH,
        "closed_early",
        auth_step=False,
    ),
    "agent-error-database-unavailable": WsCase(
        socket(), Category.INFRA_DEPENDENCY, "dependency_down", frame=AGENT_DB_DOWN, auth_step=False
    ),
}


# Cases where harness/classify.py disagrees with the real system (reported, not fixed here).
KNOWN_BUGS: dict[str, str] = {}


def _params(cases: Mapping[str, HttpCase]) -> list[Any]:
    return [
        pytest.param(case, id=name, marks=[pytest.mark.xfail(strict=True, reason=KNOWN_BUGS[name])])
        if name in KNOWN_BUGS
        else pytest.param(case, id=name)
        for name, case in cases.items()
    ]


@pytest.mark.parametrize("case", _params(HTTP_CASES))
def test_http_category(case: HttpCase) -> None:
    assert case.outcome().category == case.category


@pytest.mark.parametrize("case", _params(HTTP_CASES))
def test_http_kind(case: HttpCase) -> None:
    assert case.outcome().kind == case.kind


@pytest.mark.parametrize("case", WS_CASES.values(), ids=WS_CASES.keys())
def test_ws_category(case: WsCase) -> None:
    assert case.outcome().category == case.category


@pytest.mark.parametrize("case", WS_CASES.values(), ids=WS_CASES.keys())
def test_ws_kind(case: WsCase) -> None:
    assert case.outcome().kind == case.kind


@pytest.mark.parametrize(
    "name", ["main-mode-error-then-1011", "agent-error-database-unavailable", "auth-failed-frame"]
)
def test_a_flattened_frame_is_judged_like_the_frame_as_sent(name: str) -> None:
    """harness.ws keeps error frames flattened (`contract.frames.flatten`): same verdict."""
    case = WS_CASES[name]
    assert case.frame is not None
    flat = classify_ws(case.ev, error_frame=flatten(case.frame), auth_step=case.auth_step)
    assert (flat.category, flat.kind) == (case.category, case.kind)


# -- coverage of the table and the taxonomy --------------------------------------------------------


def _all_outcomes() -> list[Judgement]:
    return [case.outcome() for case in HTTP_CASES.values()] + [case.outcome() for case in WS_CASES.values()]


def test_rule_names_are_unique() -> None:
    names = [rule.name for rule in RULES]
    assert len(names) == len(set(names))


def test_every_rule_is_reached_by_a_case() -> None:
    reached = {outcome.kind for outcome in _all_outcomes() if not outcome.ok}
    assert reached == {rule.name for rule in RULES}


def test_every_table_category_is_produced_by_a_case() -> None:
    reached = {outcome.category for outcome in _all_outcomes() if outcome.category is not None}
    assert reached == set(Category) - EXCLUDED_CATEGORIES


# -- what the reasons say ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("network", "hint"),
    [
        ("dns", "connect to the VPN"),
        ("tls", "certificate"),
        ("refused", "wrong port"),
        ("reset", "reset"),
        ("network", "no HTTP answer"),
        ("timeout", "no answer within the deadline"),
    ],
)
def test_no_answer_reason_names_the_hint(network: NetworkFailure, hint: str) -> None:
    assert hint in classify(no_answer(network, "boom"), API).reason


def test_unreachable_reason_names_where_and_the_error() -> None:
    reason = classify(no_answer("refused", "[Errno 111] Connection refused"), API).reason
    assert "api.staging.netrasystems.ai:443: [Errno 111] Connection refused" in reason


def test_envelope_reason_mentions_the_stack_trace() -> None:
    assert "stack trace" in HTTP_CASES["envelope-thread-not-found-404"].outcome().reason


def test_envelope_reason_without_a_stack_trace_does_not_mention_one() -> None:
    body = {k: v for k, v in THREAD_NOT_FOUND_404.items() if k != "stack_trace"}
    assert "stack trace" not in classify(http(404, body, path="/api/threads/t/messages"), API).reason


def test_envelope_reason_names_the_error_code_and_message() -> None:
    reason = HTTP_CASES["envelope-thread-not-found-404"].outcome().reason
    assert "DB_RECORD_NOT_FOUND" in reason and "Thread not found" in reason


def test_ws_403_reason_mentions_the_readiness_guard() -> None:
    assert "readiness guard" in WS_CASES["upgrade-403"].outcome().reason


def test_error_frame_then_1011_reason_names_the_code_and_the_close() -> None:
    reason = WS_CASES["main-mode-error-then-1011"].outcome().reason
    assert "CONNECTION_ERROR" in reason and "close 1011 'main mode error'" in reason


def test_dependency_reason_names_what_is_down() -> None:
    assert "Database unavailable" in HTTP_CASES["envelope-database-unavailable"].outcome().reason


def test_config_reason_says_it_is_not_retried() -> None:
    assert "not retried" in HTTP_CASES["auth-bypass-not-configured"].outcome().reason


def test_gateway_reason_says_it_is_not_the_service() -> None:
    assert "not the service" in HTTP_CASES["gfe-503-page"].outcome().reason


def test_wrong_service_reason_names_the_frontend() -> None:
    assert "the frontend answered" in HTTP_CASES["frontend-answers-health"].outcome().reason


def test_wrong_service_reason_names_another_service() -> None:
    ev = http(200, {"status": "healthy", "service": AUTH_SERVICE})
    assert f"service {AUTH_SERVICE!r} answered" in classify(ev, BACKEND_HEALTH).reason


def test_missing_keys_reason_lists_them() -> None:
    assert "['status']" in HTTP_CASES["missing-keys"].outcome().reason


# -- the first row wins ----------------------------------------------------------------------------


def test_config_missing_wins_over_a_dependency_it_names() -> None:
    body = {"detail": "Database URL not configured"}
    assert classify(http(503, body, base=AUTH), AUTH_HEALTH).kind == "config_missing"


def test_config_missing_wins_over_the_startup_it_explains() -> None:
    body = {"message": "Startup failed: JWT secret not configured", "startup_failed": True}
    assert classify(http(503, body), BACKEND_HEALTH).kind == "config_missing"


def test_startup_wins_over_the_database_it_names() -> None:
    body = {"message": "Startup failed: database phase timed out", "startup_failed": True}
    assert classify(http(503, body), BACKEND_HEALTH).kind == "service_starting"


def test_a_dependency_named_on_429_is_a_dependency() -> None:
    ev = http(429, {"error_code": "SERVICE_UNAVAILABLE", "message": "Redis unavailable"}, path="/api/threads")
    assert classify(ev, API).kind == "dependency_down"


def test_an_unavailability_code_on_another_status_is_the_service() -> None:
    body = {"error": True, "error_code": "SERVICE_UNAVAILABLE", "message": "Try again later"}
    assert classify(http(500, body, path="/api/threads"), API).kind == "service_error"


def test_a_socket_refused_with_the_services_json_503_is_not_a_gateway_page() -> None:
    body = {"error": "Service Unavailable", "message": "Service is shutting down gracefully"}
    ev = socket(503, body=json.dumps(body), body_json=body)
    assert classify_ws(ev).kind == "service_unavailable"


def test_a_socket_refused_with_the_services_json_500_is_its_own_failure() -> None:
    body = {"error": True, "error_code": "INTERNAL_ERROR", "message": "boom"}
    ev = socket(500, body=json.dumps(body), body_json=body)
    assert classify_ws(ev).category is Category.PRODUCT_GOLDEN_PATH


def test_a_refused_upgrade_is_an_auth_decision_by_default() -> None:
    """harness.ws classifies a refused upgrade with `classify_ws(evidence)`: no auth_step given."""
    assert classify_ws(socket(403)).category is Category.PRODUCT_AUTH


@pytest.mark.parametrize(
    ("body", "content_type"),
    [("<body>Netra</body>", "text/html; charset=utf-8"), ("  <!doctype html><html></html>", None)],
    ids=["html-content-type", "html-sniffed"],
)
def test_html_on_health_by_content_type_or_by_its_first_bytes(body: str, content_type: str | None) -> None:
    ev = http(200, body, path="/health/ready", content_type=content_type)
    assert classify(ev, BACKEND_HEALTH).kind == "html_on_health"


def test_403_without_an_auth_step_is_not_an_auth_decision() -> None:
    ev = http(403, {"detail": "Access denied"}, path="/api/threads/thread_1")
    assert classify(ev, API).category is Category.PRODUCT_HTTP


# -- finding, Expect, judge -------------------------------------------------------------------------


def test_finding_labels_a_known_issue() -> None:
    obs = Observation(channel="ws", target="backend", path="/ws", status=101, expected=True)
    outcome = finding(obs, Category.PRODUCT_AUTH, "ws_accepted_without_valid_token", "accepted 'demo-use...'")
    assert outcome == Judgement(
        Category.PRODUCT_AUTH,
        "ws_accepted_without_valid_token",
        "accepted 'demo-use...'",
        "staging-ws-auth-permissive",
        "socket-accepted-without-a-valid-token",
    )


def test_finding_without_a_known_issue_is_unlabelled() -> None:
    obs = Observation(channel="http", target="backend", path="/api/threads", status=200, expected=True)
    assert finding(obs, Category.PRODUCT_GOLDEN_PATH, "answer_off_topic", "x").known_issue is None


def test_a_passing_exchange_is_ok() -> None:
    outcome = HTTP_CASES["backend-health-ok-without-service"].outcome()
    assert outcome.ok and outcome == Judgement(None, "ok", "as expected")


@pytest.mark.parametrize(
    "ok",
    [[200, 204], (200, 204), iter([200, 204]), range(200, 205, 4)],
    ids=["list", "tuple", "iterator", "range"],
)
def test_expect_ok_accepts_any_iterable(ok: Any) -> None:
    assert Expect(ok=ok).ok == frozenset({200, 204})


def test_one_expect_from_a_one_shot_iterable_judges_every_exchange() -> None:
    one_shot = (status for status in (200, 204))
    expect = Expect(ok=one_shot, json=False)  # type: ignore[arg-type]  # typed frozenset: taking any iterable is what this tests
    assert [classify(http(status, path="/auth/logout"), expect).ok for status in (204, 200)] == [
        True,
        True,
    ]


def test_expect_keys_from_a_list_are_a_tuple() -> None:
    assert Expect(keys=["status"]).keys == ("status",)  # type: ignore[arg-type]  # typed tuple: taking a list is what this tests


def test_unexpected_status_reason_names_the_expected_ones() -> None:
    ev = http(404, "Not Found", path="/api/x", content_type="text/plain")
    assert "expected 201/304" in classify(ev, Expect(ok=frozenset({304, 201}))).reason


# -- helpers ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "down"),
    [
        ({"status": "unhealthy", "connected": False}, 200, "connected: false"),
        ({"status": "not_ready", "core_db": "failed"}, 503, "core_db: failed"),
        ({"status": "unhealthy", "database_status": "disconnected"}, 503, "database_status: disconnected"),
        ({"redis_db": "not_initialized"}, None, "redis_db: not_initialized"),
        ({"error": "not_ready", "details": {"failed_services": ["redis"]}}, 503, "failed services ['redis']"),
    ],
    ids=["connected-false", "core-db-failed", "database-status", "redis-db", "failed-services"],
)
def test_dependency_down_from_structured_fields(body: dict[str, Any], status: int | None, down: str) -> None:
    assert dependency_down(body, status) == down


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"reason": "Database connectivity failed"}, 503),
        ({"error_code": "SERVICE_UNAVAILABLE", "message": "Database unavailable"}, 503),
        ({"data": {"error_code": "SERVICE_UNAVAILABLE", "error_message": "Database unavailable"}}, None),
        ({"error_code": "DATABASE_UNAVAILABLE", "message": "Cloud SQL unreachable"}, 500),
        ({"detail": "redis ping failed"}, 503),
    ],
    ids=["503-words", "503-code", "code-under-data", "database-unavailable-code", "redis-words"],
)
def test_dependency_down_from_words_when_unavailable(body: dict[str, Any], status: int | None) -> None:
    assert dependency_down(body, status) is not None


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"message": "Database query failed"}, 500),
        ({"error_code": "INTERNAL_ERROR", "message": "Database unavailable"}, 503),
        ({"error_code": "DB_RECORD_NOT_FOUND", "message": "Thread not found in the database"}, 404),
        ({"message": "Service is shutting down gracefully"}, 503),
        ({"status": "healthy", "connected": True, "core_db": "connected"}, 200),
        ({"details": {"failed_services": []}}, 503),
    ],
    ids=["words-on-500", "non-unavailability-code", "not-found", "no-dependency", "healthy", "none-failed"],
)
def test_dependency_down_is_none_otherwise(body: dict[str, Any], status: int | None) -> None:
    assert dependency_down(body, status) is None


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"detail": "E2E authentication not configured"}, True),
        ({"message": "missing secret E2E_OAUTH_SIMULATION_KEY"}, True),
        ({"data": {"error_message": "OAuth client NOT CONFIGURED"}}, True),
        ({"detail": "configured for staging"}, False),
        ({"detail": "Invalid E2E bypass key"}, False),
    ],
)
def test_says_config_missing(body: dict[str, Any], says: bool) -> None:
    assert says_config_missing(body) is says


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"startup_in_progress": True}, True),
        ({"startup_failed": True}, True),
        ({"startup_complete": False}, True),
        ({"message": "Startup in progress - not ready"}, True),
        ({"message": "Startup phase 3/7 (database)"}, True),
        ({"detail": "startup not complete"}, True),
        ({"startup_complete": True, "message": "ok"}, False),
        ({"startup_in_progress": False, "startup_failed": False}, False),
        ({"message": "Service started"}, False),
    ],
)
def test_says_starting(body: dict[str, Any], says: bool) -> None:
    assert says_starting(body) is says


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"error_code": "DB_RECORD_NOT_FOUND"}, "DB_RECORD_NOT_FOUND"),
        ({"code": "auth_failed"}, "AUTH_FAILED"),
        ({"data": {"error_code": "CONNECTION_ERROR"}}, "CONNECTION_ERROR"),
        ({"details": {"error_code": "SERVICE_UNAVAILABLE"}}, "SERVICE_UNAVAILABLE"),
        ({"error_code": "INTERNAL_ERROR", "data": {"error_code": "OTHER"}}, "INTERNAL_ERROR"),
        ({"code": 503, "message": "unavailable"}, None),
        ({"error": True, "message": "x"}, None),
    ],
    ids=["top", "code-key-upper-cased", "under-data", "under-details", "top-first", "int-code", "none"],
)
def test_error_code(body: dict[str, Any], code: str | None) -> None:
    assert error_code(body) == code


# -- the table as a reader sees it -----------------------------------------------------------------


def _docstring_rows() -> list[tuple[str, str, str]]:
    import harness.classify

    rows = []
    for line in (harness.classify.__doc__ or "").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if (
            line.lstrip().startswith("|")
            and len(cells) == 3
            and cells[0] not in ("row",)
            and "---" not in line
        ):
            rows.append((cells[0], cells[1], cells[2]))
    return rows


def test_the_docstring_table_is_the_rules_table() -> None:
    """The module's docstring lists every row, in order, with its summary and category."""

    def shown(rule: Any) -> str:
        if callable(rule.category):
            return "product.http (HTTP), product.golden_path (socket)"
        return str(rule.category.value)

    assert _docstring_rows() == [(rule.name, rule.summary, shown(rule)) for rule in RULES]


def test_a_502_carrying_json_is_not_described_as_a_non_json_body() -> None:
    ev = http(502, {"status": "bad gateway", "message": "upstream restarting"}, path="/api/threads")
    judgement = classify(ev, API)
    assert (judgement.category, judgement.kind) == (Category.INFRA_GATEWAY, "gateway_page")
    assert "non-JSON" not in judgement.reason and "upstream restarting" in judgement.reason
