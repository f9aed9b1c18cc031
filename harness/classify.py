"""The one decision table from the facts of an exchange to a taxonomy category, HTTP and WebSocket alike.

It replaces the old suite's guesswork (keyword-matching exception text, relabelling client timeouts
as 503, `.json()` on gateway pages) with rules on explicit facts (`harness.evidence.Observation`:
did an answer arrive, in time, with which status; is the body the service's own JSON (a JSON object
on an error status, or an error frame on the socket) and what does it say; how did a socket close)
held against what the caller expected (`Expect`). `RULES` is read top to bottom; the first row whose
condition holds decides (its name is the finding's `kind`); no row means the exchange met its
expectation. A test keeps this table in step with `RULES`:

| row                 | when                                                                   | category            |
|---------------------|------------------------------------------------------------------------|---------------------|
| no_answer_timeout   | nothing arrived within the deadline                                    | infra.timeout       |
| dns                 | no answer: the name does not resolve                                   | infra.unreachable   |
| tls                 | no answer: the TLS handshake or the certificate failed                 | infra.unreachable   |
| refused             | no answer: nothing accepts connections there                           | infra.unreachable   |
| reset               | no answer: the connection was reset                                    | infra.unreachable   |
| network             | no answer, for another network reason                                  | infra.unreachable   |
| body_timeout        | the status arrived, the body missed the deadline                       | infra.timeout       |
| body_dropped        | the status arrived, the connection dropped during the body             | infra.unreachable   |
| platform_close      | the socket dropped (1006), the platform closed it (1012-1015), or the server went away (1001) mid-exchange | infra.ws |
| config_missing      | the service's own JSON says staging lacks a setting                    | infra.config        |
| service_starting    | the service's own JSON says its startup runs or failed                 | infra.starting      |
| dependency_down     | the service's own JSON names a dependency down (database, cache)       | infra.dependency    |
| service_unavailable | the service's own 503 that names no cause (not ready, overloaded)      | infra.starting      |
| rate_limited        | 429                                                                    | infra.gateway       |
| gateway_page        | 502/503/504 whose body is not the service's JSON (GFE, Cloud Run)      | infra.gateway       |
| auth_refused        | 401/403 where an auth decision is made, close 1008, AUTH_FAILED        | product.auth        |
| service_error       | the service's own code failed (its envelope, an error frame, close 1011) | product.http (HTTP), product.golden_path (socket) |
| closed_early        | the socket closed in order before the exchange was done                | product.golden_path |
| unexpected_status   | a status the caller did not expect                                     | product.http        |
| html_on_health      | 2xx HTML on a health path: the wrong service (the frontend?)           | product.contract    |
| too_large           | the body is larger than the limit                                      | product.contract    |
| not_json            | the body is not typed as JSON                                          | product.contract    |
| bad_json            | typed as JSON, but it does not parse                                   | product.contract    |
| not_object          | the caller needs a JSON object, the body is another JSON value         | product.contract    |
| wrong_service       | the body names another service than the expected one                  | product.contract    |
| missing_keys        | the JSON object lacks keys the caller needs                            | product.contract    |

A known-issue signature (fixtures/known_issues.json) that fits the observation labels the judgement;
it never changes the category.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from contract.events import INFRA_CLOSE_CODES, CloseCode
from contract.identity import FRONTEND_SERVICE
from harness import known_issues
from harness.evidence import HttpEvidence, Observation, Target, WsEvidence, is_json_type
from harness.taxonomy import Category

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
_NESTED = ("data", "details", "error")  # where services put the fields of an error

NETWORK_HINTS: dict[str, str] = {
    "dns": "the name does not resolve: check the host name, or connect to the VPN",
    "tls": "the TLS handshake or certificate check failed: wrong host, or a proxy intercepting TLS",
    "refused": "nothing accepts connections there: wrong port, or the service/load balancer is down",
    "reset": "the connection was reset",
    "network": "no HTTP answer",
    "timeout": "no answer within the deadline",
}


@dataclass(frozen=True)
class Expect:
    """What a passing exchange looks like.

    `ok`: the statuses that pass; `auth_endpoint`: a 401/403 here is an authentication decision;
    `json` and `keys`: the body is JSON (an object holding these keys); `service` is judged only
    when the body reports one. A socket expects its upgrade (`SOCKET`).
    """

    ok: frozenset[int] = frozenset({200})
    service: str | None = None
    json: bool = True
    keys: tuple[str, ...] = ()
    auth_endpoint: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "ok", frozenset(self.ok))  # accept any iterable of statuses
        object.__setattr__(self, "keys", tuple(self.keys))


SOCKET = Expect(ok=frozenset({101}), json=False)


@dataclass(frozen=True)
class Judgement:
    """The verdict on one exchange: `category` None means it met the expectation."""

    category: Category | None
    kind: str
    reason: str
    known_issue: str | None = None
    signature: str | None = None  # the known issue's signature that fits

    @property
    def ok(self) -> bool:
        return self.category is None


Check = Callable[[Observation, Expect], bool]
Why = Callable[[Observation, Expect], str]


@dataclass(frozen=True)
class Rule:
    """One row: its name (the finding's kind), the table's `when` text, its category, its test and
    the reason it gives."""

    name: str
    summary: str
    category: Category | Callable[[Observation], Category]
    when: Check
    why: Why

    def category_for(self, obs: Observation) -> Category:
        return self.category(obs) if callable(self.category) else self.category


# -- what the service's own JSON says -------------------------------------------------------------


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


def gist(body: Mapping[str, Any]) -> str:
    """The service's own message in a few words: its error code and what it says."""
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
    body = obs.service_json
    return obs.failed and body is not None and check(body)


# -- the table -------------------------------------------------------------------------------------


def _no_answer(kind: str) -> Check:
    return lambda obs, _: obs.status is None and obs.close_code is None and obs.network == kind


def _unreachable_why(obs: Observation, _: Expect) -> str:
    kind = obs.network or "network"
    return f"{kind.upper()}: {NETWORK_HINTS[kind]} ({obs.where or obs.target}: {obs.error})"


def _is_health_path(path: str) -> bool:
    return "/health" in path or path.endswith("/ready")


def _missing_keys(obs: Observation, expect: Expect) -> list[str]:
    body = obs.body_json
    return [key for key in expect.keys if not isinstance(body, Mapping) or key not in body]


def _wrong_service(obs: Observation, expect: Expect) -> bool:
    got = obs.reported_service
    return bool(expect.service and got and got != expect.service)


def _contract(obs: Observation, expect: Expect) -> bool:
    """Body rules apply to an expected HTTP answer whose body the caller wants as JSON."""
    return obs.channel == "http" and obs.expected and expect.json


def _what_closed(obs: Observation) -> str:
    reason = f" {obs.close_reason!r}" if obs.close_reason else ""
    return f"close {obs.close_code}{reason}"


def _service_error_category(obs: Observation) -> Category:
    return Category.PRODUCT_GOLDEN_PATH if obs.channel == "ws" else Category.PRODUCT_HTTP


def _has_trace(obs: Observation) -> bool:
    body = obs.service_json or {}
    return bool(body.get("stack_trace") or body.get("traceback"))


def _service_error_why(obs: Observation, _: Expect) -> str:
    if obs.service_json is not None:
        said = gist(obs.service_json)
        trace = " (its error envelope carries a stack trace: internals exposed)" if _has_trace(obs) else ""
        where = (
            "an error frame" if obs.channel == "ws" and obs.expected else f"{obs.status} with its own JSON"
        )
        closed = f", then {_what_closed(obs)}" if obs.close_code else ""
        return f"the service's own code failed: {where} ({said}){closed}{trace}"
    return f"the service closed the socket with a server error ({_what_closed(obs)})"


def _auth_refused(obs: Observation, _: Expect) -> bool:
    if obs.close_code == CloseCode.POLICY_VIOLATION:
        return True
    if obs.service_json is not None and error_code(obs.service_json) in _AUTH_CODES:
        return True
    return not obs.expected and obs.status in (401, 403) and obs.auth_step


def _auth_why(obs: Observation, _: Expect) -> str:
    if obs.close_code == CloseCode.POLICY_VIOLATION:
        return f"the socket was refused for authentication ({_what_closed(obs)})"
    if obs.expected and obs.service_json is not None:
        return f"the server refused authentication ({gist(obs.service_json)})"
    if obs.channel == "ws" and obs.status == 403:
        return (
            "the upgrade was refused with HTTP 403 (an authentication refusal, or the readiness guard "
            "closing before accept, which refuses every socket alike)"
        )
    said = f" ({gist(obs.service_json)})" if obs.service_json else ""
    return f"refused with {obs.status or error_code(obs.service_json or {})}{said}"


def _gateway_page(obs: Observation, _: Expect) -> bool:
    return (
        not obs.expected
        and obs.status in GATEWAY_STATUSES
        and (obs.service_json is None or (obs.status != 503 and _unavailable_code(obs)))
    )


def _gateway_why(obs: Observation, _: Expect) -> str:
    if obs.service_json is not None:  # a 502/504 carrying the service's own JSON that names no failure
        return f"{obs.status} from a gateway ({gist(obs.service_json)})"
    body = f", {obs.json_error}" if obs.json_error else ", empty body" if not obs.body_snippet else ""
    return f"{obs.status} page from a gateway, not the service's JSON ({obs.content_type or 'no content-type'}{body})"


RULES: tuple[Rule, ...] = (
    Rule(
        "no_answer_timeout",
        "nothing arrived within the deadline",
        Category.INFRA_TIMEOUT,
        _no_answer("timeout"),
        lambda o, _: f"no answer within the deadline ({o.error})",
    ),
    Rule(
        "dns",
        "no answer: the name does not resolve",
        Category.INFRA_UNREACHABLE,
        _no_answer("dns"),
        _unreachable_why,
    ),
    Rule(
        "tls",
        "no answer: the TLS handshake or the certificate failed",
        Category.INFRA_UNREACHABLE,
        _no_answer("tls"),
        _unreachable_why,
    ),
    Rule(
        "refused",
        "no answer: nothing accepts connections there",
        Category.INFRA_UNREACHABLE,
        _no_answer("refused"),
        _unreachable_why,
    ),
    Rule(
        "reset",
        "no answer: the connection was reset",
        Category.INFRA_UNREACHABLE,
        _no_answer("reset"),
        _unreachable_why,
    ),
    Rule(
        "network",
        "no answer, for another network reason",
        Category.INFRA_UNREACHABLE,
        _no_answer("network"),
        _unreachable_why,
    ),
    Rule(
        "body_timeout",
        "the status arrived, the body missed the deadline",
        Category.INFRA_TIMEOUT,
        lambda o, _: o.body_cut == "timeout",
        lambda o, _: f"status {o.status} arrived but the body missed the deadline",
    ),
    Rule(
        "body_dropped",
        "the status arrived, the connection dropped during the body",
        Category.INFRA_UNREACHABLE,
        lambda o, _: o.body_cut == "dropped",
        lambda o, _: f"status {o.status} arrived, then the connection dropped during the body ({o.error})",
    ),
    Rule(
        "platform_close",
        "the socket dropped (1006), the platform closed it (1012-1015), or the server went away (1001) mid-exchange",
        Category.INFRA_WS,
        lambda o, _: o.close_code in INFRA_CLOSE_CODES,
        lambda o, _: f"the connection was dropped or closed by the platform ({_what_closed(o)})",
    ),
    Rule(
        "config_missing",
        "the service's own JSON says staging lacks a setting",
        Category.INFRA_CONFIG,
        lambda o, _: _service_says(o, says_config_missing),
        lambda o, _: (
            f"the service says staging lacks its configuration ({gist(o.service_json or {})}); "
            "not retried: it will not configure itself"
        ),
    ),
    Rule(
        "service_starting",
        "the service's own JSON says its startup runs or failed",
        Category.INFRA_STARTING,
        lambda o, _: _service_says(o, says_starting),
        lambda o, _: f"the service reports its startup ({gist(o.service_json or {})})",
    ),
    Rule(
        "dependency_down",
        "the service's own JSON names a dependency down (database, cache)",
        Category.INFRA_DEPENDENCY,
        lambda o, _: _service_says(o, lambda body: dependency_down(body, o.status) is not None),
        lambda o, _: (
            f"the service reports a dependency down ({dependency_down(o.service_json or {}, o.status)})"
        ),
    ),
    Rule(
        "service_unavailable",
        "the service's own 503 that names no cause (not ready, overloaded)",
        Category.INFRA_STARTING,
        lambda o, _: (
            not o.expected and o.status == 503 and o.service_json is not None and _unavailable_code(o)
        ),
        lambda o, _: (
            f"the service itself answers 503 without naming a cause (not ready, or overloaded: "
            f"transient by HTTP's definition) ({gist(o.service_json or {})})"
        ),
    ),
    Rule(
        "rate_limited",
        "429",
        Category.INFRA_GATEWAY,
        lambda o, _: not o.expected and o.status == 429,
        lambda o, _: "429: rate limited (Retry-After honoured when retried)",
    ),
    Rule(
        "gateway_page",
        "502/503/504 whose body is not the service's JSON (GFE, Cloud Run)",
        Category.INFRA_GATEWAY,
        _gateway_page,
        _gateway_why,
    ),
    Rule(
        "auth_refused",
        "401/403 where an auth decision is made, close 1008, AUTH_FAILED",
        Category.PRODUCT_AUTH,
        _auth_refused,
        _auth_why,
    ),
    Rule(
        "service_error",
        "the service's own code failed (its envelope, an error frame, close 1011)",
        _service_error_category,
        lambda o, _: (o.failed and o.service_json is not None) or o.close_code == CloseCode.INTERNAL_ERROR,
        _service_error_why,
    ),
    Rule(
        "closed_early",
        "the socket closed in order before the exchange was done",
        Category.PRODUCT_GOLDEN_PATH,
        lambda o, _: o.close_code is not None,
        lambda o, _: f"the server ended the socket ({_what_closed(o)}) before the exchange was done",
    ),
    Rule(
        "unexpected_status",
        "a status the caller did not expect",
        Category.PRODUCT_HTTP,
        lambda o, _: not o.expected,
        lambda o, e: f"unexpected status {o.status}, expected {'/'.join(str(s) for s in sorted(e.ok))}",
    ),
    Rule(
        "html_on_health",
        "2xx HTML on a health path: the wrong service (the frontend?)",
        Category.PRODUCT_CONTRACT,
        lambda o, _: o.channel == "http" and o.expected and o.is_html and _is_health_path(o.path),
        lambda o, _: "an HTML page answered a health path: the wrong service (the frontend?)",
    ),
    Rule(
        "too_large",
        "the body is larger than the limit",
        Category.PRODUCT_CONTRACT,
        lambda o, e: _contract(o, e) and o.body_truncated,
        lambda o, _: f"body larger than the {o.body_bytes}-byte limit",
    ),
    Rule(
        "not_json",
        "the body is not typed as JSON",
        Category.PRODUCT_CONTRACT,
        lambda o, e: _contract(o, e) and not is_json_type(o.content_type),
        lambda o, _: f"expected JSON, got {o.content_type or 'no content-type'}",
    ),
    Rule(
        "bad_json",
        "typed as JSON, but it does not parse",
        Category.PRODUCT_CONTRACT,
        lambda o, e: _contract(o, e) and bool(o.json_error),
        lambda o, _: f"JSON content type but unparsable body ({o.json_error})",
    ),
    Rule(
        "not_object",
        "the caller needs a JSON object, the body is another JSON value",
        Category.PRODUCT_CONTRACT,
        lambda o, e: _contract(o, e) and bool(e.keys or e.service) and not isinstance(o.body_json, Mapping),
        lambda o, _: f"expected a JSON object, got {type(o.body_json).__name__}",
    ),
    Rule(
        "wrong_service",
        "the body names another service than the expected one",
        Category.PRODUCT_CONTRACT,
        lambda o, e: _contract(o, e) and _wrong_service(o, e),
        lambda o, e: (
            (
                "the frontend answered"
                if o.reported_service == FRONTEND_SERVICE
                else f"service {o.reported_service!r} answered"
            )
            + f" instead of {e.service!r}"
        ),
    ),
    Rule(
        "missing_keys",
        "the JSON object lacks keys the caller needs",
        Category.PRODUCT_CONTRACT,
        lambda o, e: _contract(o, e) and bool(_missing_keys(o, e)),
        lambda o, e: f"missing keys {_missing_keys(o, e)}",
    ),
)


def judge(obs: Observation, expect: Expect) -> Judgement:
    """Apply the table; the first row that holds decides. A matching known issue labels it."""
    for rule in RULES:
        if rule.when(obs, expect):
            category = rule.category_for(obs)
            judgement = Judgement(category, rule.name, rule.why(obs, expect))
            return _labelled(judgement, obs)
    return Judgement(None, "ok", "as expected")


def finding(obs: Observation, category: Category, kind: str, reason: str) -> Judgement:
    """A judgement an operation makes beyond the table (a socket accepted that had to be refused),
    labelled by the known-issue catalogue like any other."""
    return _labelled(Judgement(category, kind, reason), obs)


def _labelled(judgement: Judgement, obs: Observation) -> Judgement:
    found = known_issues.match(obs, judgement.category, judgement.kind)
    return replace(judgement, known_issue=found.issue.id, signature=found.signature) if found else judgement


def classify_http(ev: HttpEvidence, expect: Expect, *, target: Target) -> Judgement:
    """The judgement of one HTTP exchange with `target` (backend | auth) against `expect`."""
    return judge(ev.observe(target, ok=expect.ok, auth_step=expect.auth_endpoint), expect)


def classify_ws(
    ev: WsEvidence, *, error_frame: Mapping[str, Any] | None = None, auth_step: bool = True
) -> Judgement:
    """The judgement of a chat socket so far: its upgrade, an error frame, its close."""
    return judge(ev.observe("backend", error_frame=error_frame, auth_step=auth_step), SOCKET)
