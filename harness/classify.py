"""The decision table from evidence to one taxonomy category (None when the exchange met the expectation).

It replaces the old suite's guesswork (keyword-matching exception text, relabelling client timeouts
as 503, `.json()` on gateway pages) with rules on explicit facts: did a response arrive, in time,
with which status, content type and (parsed) body. Rows, in order:

| evidence                                                        | category          |
|-----------------------------------------------------------------|-------------------|
| no response, deadline hit                                       | infra.timeout     |
| no response, transport error (DNS, refused, reset, TLS)         | infra.unreachable |
| unexpected 4xx; unexpected 5xx other than 502/503/504 (and 429) | product.http (401/403 on an auth endpoint: product.auth) |
| 429/502/503/504 whose body is not parseable JSON                | infra.gateway     |
| ... JSON with startup fields (startup_in_progress/failed, ...)  | infra.starting    |
| ... JSON naming a dependency (database, redis, connected=false) | infra.dependency  |
| ... other JSON                                                  | infra.gateway     |
| status line arrived, body did not complete (deadline / dropped) | infra.timeout / infra.unreachable |
| expected status, body cut at the limit on a JSON endpoint       | product.contract  |
| expected status, HTML/wrong type, bad JSON, missing keys, wrong service | product.contract |
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from contract.events import INFRA_CLOSE_CODES, CloseCode
from contract.identity import AUTH_SERVICE, BACKEND_SERVICE, FRONTEND_SERVICE
from harness import known_issues, record
from harness.errors import E2EFailure
from harness.evidence import HttpEvidence, is_json_type
from harness.taxonomy import Category

GATEWAY_STATUSES = frozenset({429, 502, 503, 504})
_DEPENDENCY_WORDS = re.compile(r"(?i)\b(database|db|postgres(ql)?|cloud ?sql|redis|cache|clickhouse)\b")
_DEPENDENCY_STATUS_KEYS = ("database_status", "core_db", "redis_db")
_DEPENDENCY_DOWN = frozenset({"error", "disconnected", "not_initialized", "failed", "unavailable"})
_SERVICE_TARGETS = {BACKEND_SERVICE: "backend", AUTH_SERVICE: "auth"}


@dataclass(frozen=True)
class Expect:
    """What a passing exchange looks like.

    `target` ("backend" | "auth" | "ws") selects known-issue signatures; it defaults from `service`.
    """

    ok: frozenset[int] = frozenset({200})
    service: str | None = None
    json: bool = True
    keys: tuple[str, ...] = ()
    auth_endpoint: bool = False
    target: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "ok", frozenset(self.ok))  # accept any iterable of statuses
        object.__setattr__(self, "keys", tuple(self.keys))

    @property
    def target_name(self) -> str:
        return self.target or _SERVICE_TARGETS.get(self.service or "", "backend")


@dataclass(frozen=True)
class Outcome:
    """The verdict on one exchange: `category` None means it met the expectation."""

    category: Category | None
    reason: str

    @property
    def ok(self) -> bool:
        return self.category is None


def classify_http(ev: HttpEvidence, expect: Expect) -> Outcome:
    """Apply the decision table (module docstring) to one exchange."""
    if ev.status is None:
        if ev.timed_out:
            return Outcome(Category.INFRA_TIMEOUT, f"no response within the deadline ({ev.error_type})")
        return Outcome(Category.INFRA_UNREACHABLE, f"no HTTP response ({ev.error_type}: {ev.error})")

    status = ev.status
    if status not in expect.ok:
        if status in GATEWAY_STATUSES:
            return _classify_unavailable(ev)
        if status >= 500:
            return Outcome(Category.PRODUCT_HTTP, f"server error {status}, expected {_statuses(expect)}")
        if expect.auth_endpoint and status in (401, 403):
            return Outcome(Category.PRODUCT_AUTH, f"auth endpoint refused with {status}")
        return Outcome(Category.PRODUCT_HTTP, f"unexpected status {status}, expected {_statuses(expect)}")

    incomplete = _incomplete(ev)
    if incomplete is not None:
        return incomplete
    if _is_html(ev) and _is_health_path(ev.url) and 200 <= status < 300:
        return Outcome(
            Category.PRODUCT_CONTRACT, "an HTML page answered a health path: the wrong service (frontend?)"
        )
    if not expect.json:
        return Outcome(None, f"status {status} as expected")
    return _check_json(ev, expect)


def _classify_unavailable(ev: HttpEvidence) -> Outcome:
    """429/502/503/504: who answered, the gateway (non-JSON page) or the service itself (its JSON)?"""
    incomplete = _incomplete(ev)
    if incomplete is not None:
        return incomplete
    body = ev.json if is_json_type(ev.content_type) and ev.json_error is None else None
    if not isinstance(body, Mapping):
        kind = ev.content_type or "no content-type"
        why = ev.json_error or ("empty body" if not ev.body_bytes else "not JSON")
        return Outcome(Category.INFRA_GATEWAY, f"{ev.status} with a non-JSON body ({kind}; {why})")
    if _startup_fields(body):
        return Outcome(
            Category.INFRA_STARTING, f"{ev.status}: the service reports its startup ({_gist(body)})"
        )
    dependency = _dependency(body)
    if dependency:
        return Outcome(Category.INFRA_DEPENDENCY, f"{ev.status}: the service reports {dependency}")
    return Outcome(
        Category.INFRA_GATEWAY, f"{ev.status} JSON without startup or dependency fields ({_gist(body)})"
    )


def _incomplete(ev: HttpEvidence) -> Outcome | None:
    """A status line arrived but the body did not: an infrastructure failure, never a product one."""
    if ev.timed_out:
        return Outcome(Category.INFRA_TIMEOUT, f"status {ev.status} arrived but the body missed the deadline")
    if ev.error is not None:
        return Outcome(
            Category.INFRA_UNREACHABLE,
            f"connection lost while reading the body ({ev.error_type}: {ev.error})",
        )
    return None


def _check_json(ev: HttpEvidence, expect: Expect) -> Outcome:
    if ev.body_truncated:
        return Outcome(Category.PRODUCT_CONTRACT, f"body larger than the {ev.body_bytes}-byte limit")
    if not is_json_type(ev.content_type):
        return Outcome(
            Category.PRODUCT_CONTRACT, f"expected JSON, got {ev.content_type or 'no content-type'}"
        )
    if ev.json_error is not None:
        return Outcome(Category.PRODUCT_CONTRACT, f"JSON content type but unparsable body ({ev.json_error})")
    body = ev.json
    if expect.keys or expect.service:
        if not isinstance(body, Mapping):
            return Outcome(Category.PRODUCT_CONTRACT, f"expected a JSON object, got {type(body).__name__}")
        missing = [key for key in expect.keys if key not in body]
        if missing:
            return Outcome(Category.PRODUCT_CONTRACT, f"missing keys {missing}")
        service = body.get("service")
        if expect.service and service is not None and service != expect.service:
            who = "the frontend" if service == FRONTEND_SERVICE else f"service {service!r}"
            return Outcome(Category.PRODUCT_CONTRACT, f"{who} answered instead of {expect.service!r}")
    return Outcome(None, f"status {ev.status} with the expected JSON")


def _startup_fields(body: Mapping[str, Any]) -> bool:
    message = body.get("message")
    return (
        body.get("startup_in_progress") is True
        or body.get("startup_failed") is True
        or ("startup_complete" in body and not body["startup_complete"])
        or (isinstance(message, str) and message.startswith("Startup"))
    )


def _dependency(body: Mapping[str, Any]) -> str | None:
    """The dependency the service says is down, from its structured fields (not from exception text)."""
    if body.get("connected") is False:
        return "connected: false"
    for key in _DEPENDENCY_STATUS_KEYS:
        value = body.get(key)
        if isinstance(value, str) and value in _DEPENDENCY_DOWN:
            return f"{key}: {value}"
    for key in ("detail", "reason"):
        value = body.get(key)
        if isinstance(value, str) and _DEPENDENCY_WORDS.search(value):
            return f"{key}: {value!r}"
    details = body.get("details")
    if isinstance(details, Mapping) and details.get("failed_services"):
        return f"failed services {details['failed_services']!r}"
    return None


def _gist(body: Mapping[str, Any]) -> str:
    for key in ("message", "detail", "reason", "status", "error"):
        if isinstance(body.get(key), str):
            return f"{key}: {body[key]!r}"
    return "keys " + ", ".join(list(body)[:6])


def _is_html(ev: HttpEvidence) -> bool:
    media = (ev.content_type or "").split(";", 1)[0].strip().lower()
    return media in ("text/html", "application/xhtml+xml") or ev.body_snippet.lstrip()[
        :15
    ].lower().startswith(("<!doctype html", "<html"))


def _is_health_path(url: str) -> bool:
    try:
        path = urlsplit(url).path
    except ValueError:
        return False
    return "/health" in path or path.endswith("/ready")


def _statuses(expect: Expect) -> str:
    return "/".join(str(s) for s in sorted(expect.ok))


def check_http(ev: HttpEvidence, expect: Expect, *, what: str) -> Any:
    """The parsed JSON of a passing exchange; otherwise raise the classified `E2EFailure`.

    Evidence is noted into the current test record either way; a known-issue match labels the
    failure without changing its category.
    """
    evidence = ev.to_dict()  # redacted
    record.current().note_evidence(evidence)
    outcome = classify_http(ev, expect)
    if outcome.category is None:
        return ev.json
    issue = known_issues.match(expect.target_name, ev, outcome.category)
    raise E2EFailure.of(
        outcome.category,
        f"{what}: {outcome.reason} — {ev.summary()}",
        evidence=evidence,
        known_issue=issue.id if issue else None,
    )


def classify_ws_handshake(status: int | None) -> Outcome:
    """A WebSocket upgrade answered with `status` (None: no HTTP answer at all)."""
    if status is None:
        return Outcome(Category.INFRA_UNREACHABLE, "no answer to the WebSocket upgrade")
    if status == 101:
        return Outcome(None, "upgrade accepted")
    if status in (401, 403):
        return Outcome(Category.PRODUCT_AUTH, f"upgrade refused with {status}")
    if status >= 500 or status in (408, 429):
        return Outcome(Category.INFRA_WS, f"upgrade refused with {status}")
    return Outcome(Category.PRODUCT_HTTP, f"upgrade answered with {status}")


def classify_ws_close(code: int | None) -> Outcome:
    """A WebSocket close code (None: the connection dropped without a close frame, i.e. 1006)."""
    if code is None:
        code = CloseCode.ABNORMAL
    if code in (CloseCode.NORMAL, CloseCode.GOING_AWAY):
        return Outcome(None, f"closed normally ({code})")
    if code in INFRA_CLOSE_CODES:
        return Outcome(Category.INFRA_WS, f"closed with {code} ({_close_name(code)})")
    if code == CloseCode.POLICY_VIOLATION:
        return Outcome(Category.PRODUCT_AUTH, "closed with 1008 (authentication failed)")
    return Outcome(Category.PRODUCT_CONTRACT, f"closed with unexpected code {code} ({_close_name(code)})")


def _close_name(code: int) -> str:
    try:
        return CloseCode(code).name.lower()
    except ValueError:
        return "application-defined" if 4000 <= code <= 4999 else "unknown"
