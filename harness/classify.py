"""The one decision table from evidence to a taxonomy category, for HTTP and WebSocket alike.

It replaces the old suite's guesswork (keyword-matching exception text, relabelling client timeouts
as 503, `.json()` on gateway pages) with rules on explicit facts, gathered into an `Observation`:
did an answer arrive, in time, with which status; is the body the service's own JSON (a JSON object
on an error status, or an error frame on the socket) and what does it say; how did a socket close.
`RULES` is read top to bottom; the first row whose condition holds decides (its name is the
finding's `kind`); no row means the exchange met its expectation.

| row               | when                                                              | category           |
|-------------------|-------------------------------------------------------------------|--------------------|
| no_answer_timeout | nothing arrived within the deadline                               | infra.timeout      |
| dns / tls / refused / reset / network | no answer: name, certificate, connection      | infra.unreachable  |
| body_timeout      | the status arrived, the body missed the deadline                  | infra.timeout      |
| body_dropped      | the status arrived, the connection dropped during the body        | infra.unreachable  |
| platform_close    | the socket dropped (1006) or the platform closed it (1012-1015)   | infra.ws           |
| config_missing    | the service's own JSON says staging lacks a setting               | infra.config       |
| service_starting  | the service's own JSON says its startup runs or failed            | infra.starting     |
| dependency_down   | the service's own JSON names a dependency down (database, cache)  | infra.dependency   |
| service_unavailable | the service's own 503 that names no cause (not ready, overloaded) | infra.starting     |
| rate_limited      | 429                                                               | infra.gateway      |
| gateway_page      | 502/503/504 whose body is not the service's JSON (GFE, Cloud Run) | infra.gateway      |
| auth_refused      | 401/403 where an auth decision is made, close 1008, AUTH_FAILED   | product.auth       |
| service_error     | any other error from the service's own code (envelope, error frame, close 1011) | product.http / product.golden_path (socket) |
| closed_early      | the socket closed in order before the exchange was done           | product.golden_path |
| unexpected_status | a status the caller did not expect                                | product.http       |
| html_on_health    | 2xx HTML on a health path: the wrong service (the frontend?)      | product.contract   |
| too_large / not_json / bad_json / not_object / wrong_service / missing_keys | the body breaks the contract | product.contract |

A known-issue signature (fixtures/known_issues.json) that fits the observation labels the outcome;
it never changes the category.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal
from urllib.parse import urlsplit

from contract.events import INFRA_CLOSE_CODES, CloseCode
from contract.identity import FRONTEND_SERVICE
from harness import known_issues
from harness.evidence import HttpEvidence, Transport, WsEvidence, is_json_type
from harness.taxonomy import Category

Channel = Literal["http", "ws", "logs"]  # logs: a finding read from the backend's startup logs
GATEWAY_STATUSES = frozenset({502, 503, 504})

# What the service's own JSON can say, read from its structured fields and its own words.
_CONFIG_MISSING = re.compile(r"(?i)\bnot configured\b|\bmissing (configuration|secret)\b")
_STARTUP = re.compile(r"(?i)\bstartup (in progress|failed|not complete|incomplete)\b")
_DEPENDENCY_WORDS = re.compile(r"(?i)\b(database|db|postgres(ql)?|cloud ?sql|redis|cache|clickhouse)\b")
_DEPENDENCY_STATUS_KEYS = ("database_status", "core_db", "redis_db")
_DEPENDENCY_DOWN = frozenset({"error", "disconnected", "not_initialized", "failed", "unavailable"})
# Error codes that mean "a dependency is unavailable", and codes that mean the service's code failed
# whatever its message says (a query error names the database but is a product defect).
_UNAVAILABLE_CODES = frozenset({"SERVICE_UNAVAILABLE", "DATABASE_UNAVAILABLE", "DEPENDENCY_UNAVAILABLE"})
_TEXT_KEYS = ("message", "error_message", "detail", "reason", "error", "user_message")
_AUTH_CODES = frozenset({"AUTH_FAILED", "AUTHENTICATION_FAILED", "UNAUTHORIZED"})

_TRANSPORT_HINTS: dict[str, str] = {
    "dns": "the name does not resolve: check the host name, or connect to the VPN",
    "tls": "the TLS handshake or certificate check failed: wrong host, or a proxy intercepting TLS",
    "refused": "nothing accepts connections there: wrong port, or the service/load balancer is down",
    "reset": "the connection was reset",
    "network": "no HTTP answer",
    "timeout": "no answer within the deadline",
}


@dataclass(frozen=True)
class Expect:
    """What a passing HTTP exchange looks like.

    `target` ("backend" | "auth") selects known-issue signatures; `auth_endpoint` says that a
    401/403 here is an authentication decision. `service` is judged only when the body reports one.
    """

    target: str = "backend"
    ok: frozenset[int] = frozenset({200})
    service: str | None = None
    json: bool = True
    keys: tuple[str, ...] = ()
    auth_endpoint: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "ok", frozenset(self.ok))  # accept any iterable of statuses
        object.__setattr__(self, "keys", tuple(self.keys))


@dataclass(frozen=True)
class Observation:
    """The facts of one exchange that the table reads."""

    channel: Channel
    target: str
    path: str
    transport: Transport | None = None  # no answer: how the transport failed
    error: str | None = None
    status: int | None = None  # HTTP status, or the upgrade's (101: accepted)
    expected: bool = False  # the status the caller expected (an accepted upgrade)
    body_cut: Literal["timeout", "dropped"] | None = None
    service_json: Mapping[str, Any] | None = None  # a JSON object on an error status, or an error frame
    close_code: int | None = None
    close_reason: str | None = None
    auth_step: bool = False  # 401/403 here is an authentication decision
    http: HttpEvidence | None = None
    expect: Expect | None = None
    body_snippet: str = ""
    content_type: str | None = None

    @property
    def failed(self) -> bool:
        """Something to explain: an unexpected status, an error frame, or a close."""
        return not self.expected or self.close_code is not None or self.service_json is not None


@dataclass(frozen=True)
class Outcome:
    """The verdict on one exchange: `category` None means it met the expectation."""

    category: Category | None
    kind: str
    reason: str
    known_issue: str | None = None

    @property
    def ok(self) -> bool:
        return self.category is None


@dataclass(frozen=True)
class Rule:
    name: str
    category: Category | Callable[[Observation], Category]
    when: Callable[[Observation], bool]
    why: Callable[[Observation], str]

    def category_for(self, obs: Observation) -> Category:
        return self.category(obs) if callable(self.category) else self.category


# -- what the service's own JSON says -------------------------------------------------------------


_NESTED = ("data", "details", "error")  # where services put the fields of an error


def _text(body: Mapping[str, Any]) -> str:
    """The service's own words: its message fields, and those nested under data/details/error."""
    parts = [str(body[key]) for key in _TEXT_KEYS if isinstance(body.get(key), str)]
    for nested in _NESTED:
        inner = body.get(nested)
        if isinstance(inner, Mapping):
            parts += [str(inner[key]) for key in _TEXT_KEYS if isinstance(inner.get(key), str)]
    return " | ".join(parts)


def error_code(body: Mapping[str, Any]) -> str | None:
    """The service's error code: `error_code` or `code` (top level or nested), or an `error` that is a
    code itself (`"error": "service_not_ready"`)."""
    for source in (body, *(body.get(key) for key in _NESTED)):
        if isinstance(source, Mapping):
            for key in ("error_code", "code"):
                if isinstance(source.get(key), str):
                    return str(source[key]).upper()
    error = body.get("error")
    if isinstance(error, str) and error and " " not in error:
        return error.upper()
    return None


def says_config_missing(body: Mapping[str, Any]) -> bool:
    return bool(_CONFIG_MISSING.search(_text(body)))


def says_starting(body: Mapping[str, Any]) -> bool:
    message = body.get("message")
    return (
        body.get("startup_in_progress") is True
        or body.get("startup_failed") is True
        or ("startup_complete" in body and not body["startup_complete"])
        or (isinstance(message, str) and message.startswith("Startup"))
        or bool(_STARTUP.search(_text(body)))
    )


def dependency_down(body: Mapping[str, Any], status: int | None) -> str | None:
    """The dependency the service says is down, from its structured fields, or from its own words
    when it also says it is unavailable (503 or an unavailability code); None otherwise."""
    if body.get("connected") is False:
        return "connected: false"
    for key in _DEPENDENCY_STATUS_KEYS:
        value = body.get(key)
        if isinstance(value, str) and value in _DEPENDENCY_DOWN:
            return f"{key}: {value}"
    details = body.get("details")
    if isinstance(details, Mapping) and details.get("failed_services"):
        return f"failed services {details['failed_services']!r}"
    code = error_code(body)
    unavailable = code in _UNAVAILABLE_CODES or (code is None and status == 503)
    words = _text(body)
    if unavailable and _DEPENDENCY_WORDS.search(words):
        return f"{code + ': ' if code else ''}{words[:160]!r}"
    return None


def _gist(body: Mapping[str, Any]) -> str:
    code = error_code(body)
    words = _text(body)
    if code or words:
        return ", ".join(x for x in (code, repr(words[:200]) if words else None) if x)
    return "keys " + ", ".join(list(body)[:6])


def _unavailable_code(obs: Observation) -> bool:
    """A 503 body that does not carry an error code of a failure of the service's code."""
    code = error_code(obs.service_json or {})
    return code is None or code in _UNAVAILABLE_CODES


def _service_says(obs: Observation, check: Callable[[Mapping[str, Any]], bool]) -> bool:
    return obs.failed and obs.service_json is not None and check(obs.service_json)


# -- the table -------------------------------------------------------------------------------------


def _where(obs: Observation) -> str:
    if obs.http is not None:
        parts = urlsplit(obs.http.url)
        return f"{parts.hostname}:{parts.port or ('443' if parts.scheme == 'https' else '80')}"
    return obs.target


def _no_answer(kind: str) -> Callable[[Observation], bool]:
    return lambda obs: obs.status is None and obs.close_code is None and obs.transport == kind


def _unreachable_why(obs: Observation) -> str:
    kind = obs.transport or "network"
    return f"{kind.upper()}: {_TRANSPORT_HINTS[kind]} ({_where(obs)}: {obs.error})"


def _is_html(obs: Observation) -> bool:
    ev = obs.http
    if ev is None:
        return False
    media = (ev.content_type or "").split(";", 1)[0].strip().lower()
    head = ev.body_snippet.lstrip()[:15].lower()
    return media in ("text/html", "application/xhtml+xml") or head.startswith(("<!doctype html", "<html"))


def _is_health_path(path: str) -> bool:
    return "/health" in path or path.endswith("/ready")


def _missing_keys(obs: Observation) -> list[str]:
    body = obs.http.json if obs.http else None
    keys = obs.expect.keys if obs.expect else ()
    return [key for key in keys if not isinstance(body, Mapping) or key not in body]


def _reported_service(obs: Observation) -> str | None:
    body = obs.http.json if obs.http else None
    service = body.get("service") if isinstance(body, Mapping) else None
    return service if isinstance(service, str) else None


def _wrong_service(obs: Observation) -> bool:
    want = obs.expect.service if obs.expect else None
    got = _reported_service(obs)
    return bool(want and got and got != want)


def _contract(obs: Observation) -> bool:
    """Body rules apply to an expected HTTP answer whose body the caller wants as JSON."""
    return obs.channel == "http" and obs.expected and obs.expect is not None and obs.expect.json


def _statuses(obs: Observation) -> str:
    return "/".join(str(s) for s in sorted(obs.expect.ok)) if obs.expect else "another status"


def _what_closed(obs: Observation) -> str:
    reason = f" {obs.close_reason!r}" if obs.close_reason else ""
    return f"close {obs.close_code}{reason}"


def _service_error_category(obs: Observation) -> Category:
    return Category.PRODUCT_GOLDEN_PATH if obs.channel == "ws" else Category.PRODUCT_HTTP


def _service_error_why(obs: Observation) -> str:
    if obs.service_json is not None:
        said = _gist(obs.service_json)
        trace = " (its error envelope carries a stack trace: internals exposed)" if _has_trace(obs) else ""
        where = (
            "an error frame" if obs.channel == "ws" and obs.expected else f"{obs.status} with its own JSON"
        )
        closed = f", then {_what_closed(obs)}" if obs.close_code else ""
        return f"the service's own code failed: {where} ({said}){closed}{trace}"
    return f"the service closed the socket with a server error ({_what_closed(obs)})"


def _has_trace(obs: Observation) -> bool:
    body = obs.service_json or {}
    return bool(body.get("stack_trace") or body.get("traceback"))


def _auth_refused(obs: Observation) -> bool:
    if obs.close_code == CloseCode.POLICY_VIOLATION:
        return True
    if obs.service_json is not None and error_code(obs.service_json) in _AUTH_CODES:
        return True
    return not obs.expected and obs.status in (401, 403) and obs.auth_step


def _auth_why(obs: Observation) -> str:
    if obs.close_code == CloseCode.POLICY_VIOLATION:
        return f"the socket was refused for authentication ({_what_closed(obs)})"
    if obs.expected and obs.service_json is not None:
        return f"the server refused authentication ({_gist(obs.service_json)})"
    if obs.channel == "ws" and obs.status == 403:
        return (
            "the upgrade was refused with HTTP 403 (an authentication refusal, or the readiness guard "
            "closing before accept, which refuses every socket alike)"
        )
    said = f" ({_gist(obs.service_json)})" if obs.service_json else ""
    return f"refused with {obs.status or error_code(obs.service_json or {})}{said}"


RULES: tuple[Rule, ...] = (
    Rule(
        "no_answer_timeout",
        Category.INFRA_TIMEOUT,
        _no_answer("timeout"),
        lambda o: f"no answer within the deadline ({o.error})",
    ),
    *(
        Rule(kind, Category.INFRA_UNREACHABLE, _no_answer(kind), _unreachable_why)
        for kind in ("dns", "tls", "refused", "reset", "network")
    ),
    Rule(
        "body_timeout",
        Category.INFRA_TIMEOUT,
        lambda o: o.body_cut == "timeout",
        lambda o: f"status {o.status} arrived but the body missed the deadline",
    ),
    Rule(
        "body_dropped",
        Category.INFRA_UNREACHABLE,
        lambda o: o.body_cut == "dropped",
        lambda o: f"status {o.status} arrived, then the connection dropped during the body ({o.error})",
    ),
    Rule(
        "platform_close",
        Category.INFRA_WS,
        lambda o: o.close_code in INFRA_CLOSE_CODES,
        lambda o: f"the connection was dropped or closed by the platform ({_what_closed(o)})",
    ),
    Rule(
        "config_missing",
        Category.INFRA_CONFIG,
        lambda o: _service_says(o, says_config_missing),
        lambda o: (
            f"the service says staging lacks its configuration ({_gist(o.service_json or {})}); "
            "not retried: it will not configure itself"
        ),
    ),
    Rule(
        "service_starting",
        Category.INFRA_STARTING,
        lambda o: _service_says(o, says_starting),
        lambda o: f"the service reports its startup ({_gist(o.service_json or {})})",
    ),
    Rule(
        "dependency_down",
        Category.INFRA_DEPENDENCY,
        lambda o: _service_says(o, lambda body: dependency_down(body, o.status) is not None),
        lambda o: (
            f"the service reports a dependency down ({dependency_down(o.service_json or {}, o.status)})"
        ),
    ),
    Rule(
        "service_unavailable",
        Category.INFRA_STARTING,
        lambda o: not o.expected and o.status == 503 and o.service_json is not None and _unavailable_code(o),
        lambda o: (
            f"the service itself answers 503 without naming a cause (not ready, or overloaded: "
            f"transient by HTTP's definition) ({_gist(o.service_json or {})})"
        ),
    ),
    Rule(
        "rate_limited",
        Category.INFRA_GATEWAY,
        lambda o: not o.expected and o.status == 429,
        lambda o: "429: rate limited (Retry-After honoured when retried)",
    ),
    Rule(
        "gateway_page",
        Category.INFRA_GATEWAY,
        lambda o: (
            not o.expected
            and o.status in GATEWAY_STATUSES
            and (o.service_json is None or (o.status != 503 and _unavailable_code(o)))
        ),
        lambda o: (
            f"{o.status} with a non-JSON body: a gateway page, not the service "
            f"({(o.http.content_type if o.http else None) or 'no content-type'}; "
            f"{(o.http.json_error if o.http else None) or ('empty body' if not o.body_snippet else 'not JSON')})"
        ),
    ),
    Rule("auth_refused", Category.PRODUCT_AUTH, _auth_refused, _auth_why),
    Rule(
        "service_error",
        _service_error_category,
        lambda o: (o.failed and o.service_json is not None) or o.close_code == CloseCode.INTERNAL_ERROR,
        _service_error_why,
    ),
    Rule(
        "closed_early",
        Category.PRODUCT_GOLDEN_PATH,
        lambda o: o.close_code is not None,
        lambda o: f"the server ended the socket ({_what_closed(o)}) before the exchange was done",
    ),
    Rule(
        "unexpected_status",
        Category.PRODUCT_HTTP,
        lambda o: not o.expected,
        lambda o: f"unexpected status {o.status}, expected {_statuses(o) if o.channel == 'http' else 101}",
    ),
    Rule(
        "html_on_health",
        Category.PRODUCT_CONTRACT,
        lambda o: o.channel == "http" and o.expected and _is_html(o) and _is_health_path(o.path),
        lambda o: "an HTML page answered a health path: the wrong service (the frontend?)",
    ),
    Rule(
        "too_large",
        Category.PRODUCT_CONTRACT,
        lambda o: _contract(o) and bool(o.http and o.http.body_truncated),
        lambda o: f"body larger than the {o.http.body_bytes if o.http else 0}-byte limit",
    ),
    Rule(
        "not_json",
        Category.PRODUCT_CONTRACT,
        lambda o: _contract(o) and not is_json_type(o.http.content_type if o.http else None),
        lambda o: f"expected JSON, got {(o.http.content_type if o.http else None) or 'no content-type'}",
    ),
    Rule(
        "bad_json",
        Category.PRODUCT_CONTRACT,
        lambda o: _contract(o) and bool(o.http and o.http.json_error),
        lambda o: f"JSON content type but unparsable body ({o.http.json_error if o.http else ''})",
    ),
    Rule(
        "not_object",
        Category.PRODUCT_CONTRACT,
        lambda o: (
            _contract(o)
            and bool(o.expect and (o.expect.keys or o.expect.service))
            and not isinstance(o.http.json if o.http else None, Mapping)
        ),
        lambda o: f"expected a JSON object, got {type(o.http.json if o.http else None).__name__}",
    ),
    Rule(
        "wrong_service",
        Category.PRODUCT_CONTRACT,
        lambda o: _contract(o) and _wrong_service(o),
        lambda o: (
            (
                "the frontend answered"
                if _reported_service(o) == FRONTEND_SERVICE
                else f"service {_reported_service(o)!r} answered"
            )
            + f" instead of {o.expect.service if o.expect else None!r}"
        ),
    ),
    Rule(
        "missing_keys",
        Category.PRODUCT_CONTRACT,
        lambda o: _contract(o) and bool(_missing_keys(o)),
        lambda o: f"missing keys {_missing_keys(o)}",
    ),
)


def judge(obs: Observation) -> Outcome:
    """Apply the table; the first row that holds decides. A matching known issue labels it."""
    for rule in RULES:
        if rule.when(obs):
            category = rule.category_for(obs)
            outcome = Outcome(category, rule.name, rule.why(obs))
            issue = known_issues.match(obs, outcome.category, outcome.kind)
            return replace(outcome, known_issue=issue.id if issue else None)
    return Outcome(None, "ok", "as expected")


def finding(obs: Observation, category: Category, kind: str, reason: str) -> Outcome:
    """An outcome an operation decides beyond the table (a socket accepted that had to be refused),
    labelled by the known-issue catalogue like any other."""
    issue = known_issues.match(obs, category, kind)
    return Outcome(category, kind, reason, issue.id if issue else None)


# -- building observations from evidence ----------------------------------------------------------


def _path(url: str) -> str:
    try:
        return urlsplit(url).path or "/"
    except ValueError:
        return url


def observe_http(ev: HttpEvidence, expect: Expect) -> Observation:
    expected = ev.status in expect.ok
    body_cut: Literal["timeout", "dropped"] | None = None
    if ev.status is not None and ev.timed_out:
        body_cut = "timeout"
    elif ev.status is not None and ev.error is not None:
        body_cut = "dropped"
    service_json = ev.json if not expected and isinstance(ev.json, Mapping) else None
    return Observation(
        channel="http",
        target=expect.target,
        path=_path(ev.url),
        transport=("timeout" if ev.timed_out else ev.transport or "network") if ev.status is None else None,
        error=ev.error,
        status=ev.status,
        expected=expected,
        body_cut=body_cut,
        service_json=service_json,
        auth_step=expect.auth_endpoint,
        http=ev,
        expect=expect,
        body_snippet=ev.body_snippet,
        content_type=ev.content_type,
    )


def classify_http(ev: HttpEvidence, expect: Expect) -> Outcome:
    """The outcome of one HTTP exchange against `expect`."""
    return judge(observe_http(ev, expect))


def observe_ws(
    ev: WsEvidence,
    *,
    target: str = "backend",
    error_frame: Mapping[str, Any] | None = None,
    auth_step: bool = True,
) -> Observation:
    """A socket's facts: the refused upgrade (and its body), or the error frame and close after it."""
    accepted = ev.status == 101
    refusal_json = ev.body_json if not accepted and isinstance(ev.body_json, Mapping) else None
    no_answer = ev.status is None and ev.close_code is None
    content_type = next((v for k, v in ev.headers.items() if k.lower() == "content-type"), None)
    return Observation(
        channel="ws",
        target=target,
        path=_path(ev.url),
        transport=(ev.transport or "network") if no_answer else None,
        error=ev.error,
        status=ev.status,
        expected=accepted,
        service_json=error_frame if error_frame is not None else refusal_json,
        close_code=ev.close_code,
        close_reason=ev.close_reason,
        auth_step=auth_step,
        body_snippet=ev.body_snippet,
        content_type=content_type,
    )


def classify_ws(
    ev: WsEvidence, *, error_frame: Mapping[str, Any] | None = None, auth_step: bool = True
) -> Outcome:
    """The outcome of a chat socket so far: its upgrade, an error frame, its close."""
    return judge(observe_ws(ev, error_frame=error_frame, auth_step=auth_step))
