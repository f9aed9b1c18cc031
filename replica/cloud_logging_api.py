"""A local stand-in of the Cloud Logging API v2 `entries.list`, for the real `gcloud logging read`.

The suite reads the backend's startup record with the real Google Cloud SDK (harness/startup/sources.py).
To test that call without Google, the real `gcloud` is pointed at this server over real HTTP on
127.0.0.1 (`CLOUDSDK_API_ENDPOINT_OVERRIDES_LOGGING`), authenticated by an access-token file
(`CLOUDSDK_AUTH_ACCESS_TOKEN_FILE`), in a configuration directory of its own (`CLOUDSDK_CONFIG`):
`StandIn.gcloud_env` returns that environment.

What it serves (https://cloud.google.com/logging/docs/reference/v2/rest/v2/entries/list):

* `POST /v2/entries:list` with `{"resourceNames": ["projects/P"], "filter", "orderBy", "pageSize",
  "pageToken"}`, answered `{"entries": [...], "nextPageToken": "..."}` (no `entries` key on an empty
  page, no `nextPageToken` on the last, as Google's JSON omits empty fields). The entries are those of a
  source it is given: a `cloud-logging.json` the replica keeps rewriting (read afresh on each first page;
  absent is empty) or a list.
* Paging: a page holds at most `page_size` entries (50 by default, fewer than gcloud asks for, so gcloud
  really pages; the API documents `pageSize` as a maximum). The first page snapshots the matching
  entries; a token names that snapshot and an offset, so a file rewritten between pages neither
  repeats nor skips entries, and a retried page is the same page. A token with another request's
  filter, or unknown, is refused (400).
* The filter: only the subset of the Logging query language the suite's `gcloud_filter` uses, and 400
  INVALID_ARGUMENT for anything else, so that a change to the filter cannot pass unnoticed:
  comparisons joined by `AND`; `FIELD="value"` (equality; case-insensitive, as the language documents
  for string comparisons); `timestamp>="RFC3339"` and `timestamp<="RFC3339"` (compared as instants);
  `FIELD=~"regex"` (unanchored, case-sensitive); one level of `( A=~"x" OR B=~"y" ... )`. Not served:
  `NOT`, `-`, `:`, `!=`, `<`, `>`, `!~`, a bare word or value (global restriction), a top-level `OR`,
  juxtaposition as implicit `AND`, unquoted values, quoted field-path segments, functions (`SEARCH`),
  nested parentheses. An empty filter matches everything, as documented.
* Regular expressions: Google uses RE2, this uses Python's `re`. They agree on the suite's regex
  (alternation, `[(]`, ` *`, `[0-9]`). Where they differ: Python accepts lookaround (`(?=`, `(?!`,
  `(?<=`, `(?<!`), backreferences (`\\1`, `(?P=name)`), atomic groups (`(?>`) and possessive
  quantifiers (`*+`, `++`, `?+`), which RE2 rejects: those are refused here with 400 as Google would
  (by a textual check, which can also refuse them inside a character class). RE2's `\\pN`, `\\C`,
  `\\Q...\\E` and `\\z` are errors in `re` (400 here, accepted by Google); RE2's POSIX classes
  (`[[:alpha:]]`) compile in `re` with another meaning (a warning, not refused). Matching differs on
  Unicode case folding and on `\\b`/`\\w` for non-ASCII text (RE2's are ASCII-only by default).
* Authentication: `Authorization: Bearer <token>` must carry the token file's content (read on each
  request), else 401 UNAUTHENTICATED as Google words it, with `WWW-Authenticate`.
* `resourceNames` must be exactly `["projects/<project>"]`; another project is 403 PERMISSION_DENIED.
* Error injection (`fail`): 400, 401, 403, 429, 500, 503 with Google's JSON error (`{"error": {"code",
  "message", "status", "details"}}`, https://google.aip.dev/193), for the next N requests or all.
* Every request is recorded (`requests`: method, path, headers, body), for tests to look at.
* Whose record: `suite_record(root)` serves `root/.replica/suite-<pid>/cloud-logging.json` of the suite
  run whose process is an ancestor of the connecting gcloud (found through /proc), for a self-test that
  runs the whole suite with E2E_STARTUP_EVIDENCE=gcloud.

What the real gcloud does (Google Cloud SDK 528.0.0, measured against this stand-in with the suite's
command `gcloud logging read FILTER --project=P --format=json --limit=N`; tests/replica/
test_cloud_logging_api.py asserts each point, verbatim where it quotes):

* It sends `POST /v2/entries:list?alt=json` with `authorization: Bearer <token file's content>`,
  `content-type: application/json`, `accept: application/json`, `accept-encoding: gzip, deflate`,
  `user-agent: google-cloud-sdk gcloud/528.0.0 command/gcloud.logging.read invocation-id/<hex> ...`, and
  the body `{"filter": FILTER verbatim, "orderBy": "timestamp desc", "pageSize": min(N, 1000),
  "resourceNames": ["projects/P"]}`. A filter without the word `timestamp` gets
  `timestamp>="<now - 1 day>" AND ` put before it (`--freshness`); the suite's has one, and goes as is.
* Paging: it follows `nextPageToken` with the same body plus `pageToken`, asking each time for
  min(1000, N - entries so far), and stops at N entries or at a page without a token.
* `--limit=N` with more entries: the N newest, exit 0, nothing on stderr, no request beyond the one
  that reached N. 0 entries: stdout `[]` and a newline, exit 0, stderr empty.
* Errors (exit 1 for all; stdout is `[]` unless an earlier page came back: then a valid JSON array of
  those entries, so only the exit status tells a cut-short read). First line of stderr, then:
  400 `ERROR: (gcloud.logging.read) INVALID_ARGUMENT: <message>` (1 request, ~0.7 s);
  401 `ERROR: (gcloud.logging.read) UNAUTHENTICATED: <message> This command is authenticated with an
  access token from <token file path> specified by the [auth/access_token_file] property.`, then the
  details as YAML (2 requests: it re-reads the token file and tries once more; ~0.7 s);
  403 `ERROR: (gcloud.logging.read) PERMISSION_DENIED: Permission 'logging.logEntries.list' denied on
  resource (or it may not exist). This command is authenticated with ...` and the details (1 request);
  429 `ERROR: (gcloud.logging.read) RESOURCE_EXHAUSTED: <message>`, the Help link's description and URL
  on lines of their own, the details (1 request: not retried, ~0.7 s);
  500/503 lasting: `ERROR: (gcloud.logging.read) HttpError accessing <http://HOST/v2/entries:list?alt=json>:
  response: <{...the response headers..., 'status': 503}>, content <{...Google's JSON error...}` over
  several lines, then `This may be due to network connectivity issues. Please check your network
  settings, and the status of the service you are trying to reach.` (5 requests over 30-33 s: apitools
  waits 2, 4, 8, 16 s, +-25 % each; no gcloud property shortens it, CLOUDSDK_CORE_HTTP_TIMEOUT bounds one
  request only); a passing 500/503 costs one retry, ~2 s, and the read succeeds.
* The token never appears on stdout or stderr; 401 and 403 name the token file's path.
* A fresh, empty CLOUDSDK_CONFIG with a token file needs no account: the read works, and gcloud writes
  `active_config`, `configurations/config_default`, `default_configs.db`, `gce` and `logs/` there (and
  nothing in HOME). Without a token file: exit 1, no request, `ERROR: (gcloud.logging.read) You do not
  currently have an active account selected.` and how to log in. A token file that does not exist:
  `ERROR: (gcloud.logging.read) Unable to read file [PATH]: [Errno 2] No such file or directory: 'PATH'`.
* Left alone, gcloud checks whether it runs on GCE by resolving metadata.google.internal (a DNS query
  leaving the machine) and asking it over HTTP, bypassing proxies: `gcloud_env` points that check at a
  closed local port (`GCE_METADATA_ROOT`), and any other request outside 127.0.0.1 at a closed proxy.

Python's `http.server` (a `ThreadingHTTPServer` in a daemon thread) rather than uvicorn/starlette: one
endpoint, a handful of requests a test, synchronous state shared with the test's thread (faults, the
record) without an event loop to cross, started and bound in one call (port 0: no race for a port), and
nothing to wait for before the first request. `python -m replica.cloud_logging_api` runs it by hand.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hmac
import json
import os
import re
import secrets
import signal
import sys
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from replica.cloud_logging import FILE_NAME, PROJECT_ID

LIST_PATH = "/v2/entries:list"
PAGE_SIZE = 50
"""The most entries a page of the stand-in holds (the API's default `pageSize` is 50 too)."""
MAX_PAGE_SIZE = 1000  # the API refuses a larger pageSize
MAX_FILTER_CHARS = 20_000  # the API's documented limit
MAX_SNAPSHOTS = 64  # the oldest are forgotten past this: their tokens become unknown (400)
SERVICE = "logging.googleapis.com"
METHOD = "google.logging.v2.LoggingServiceV2.ListLogEntries"
PERMISSION = "logging.logEntries.list"


@dataclass(frozen=True)
class Peer:
    """The client of a request: its port on 127.0.0.1 and, on Linux, the process that connected."""

    port: int
    server_port: int

    def pid(self) -> int | None:
        """The process holding the client's end of the connection (from /proc; None elsewhere)."""
        inode = _client_socket_inode(self.port, self.server_port)
        return None if inode is None else _socket_owner(inode)


EntriesSource = Sequence[dict[str, Any]] | Path
Entries = EntriesSource | Callable[[Peer], EntriesSource]
"""Entries, a `cloud-logging.json`, or a function of the request's client that names one of these
(`suite_record`: the record of the replica a suite run started)."""


# --------------------------------------------------------------------------------------------------
# Google's errors (https://google.aip.dev/193, google.rpc.Status as JSON)
# --------------------------------------------------------------------------------------------------
STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}
UNAUTHENTICATED_MESSAGE = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or "
    "other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project."
)
MISSING_CREDENTIALS_MESSAGE = (
    "Request is missing required authentication credential. Expected OAuth 2 access token, login cookie "
    "or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project."
)
PERMISSION_DENIED_MESSAGE = f"Permission '{PERMISSION}' denied on resource (or it may not exist)."


@dataclass(frozen=True)
class ApiError(Exception):
    """An answer in Google's error format."""

    code: int
    message: str
    details: tuple[dict[str, Any], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    status_name: str | None = None  # when not the usual one of `code` (400 FAILED_PRECONDITION)

    @property
    def status(self) -> str:
        return self.status_name or STATUS_NAMES.get(self.code, "UNKNOWN")

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message, "status": self.status}
        if self.details:
            error["details"] = list(self.details)
        return {"error": error}


def _error_info(reason: str, domain: str, **metadata: str) -> dict[str, Any]:
    return {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": reason,
        "domain": domain,
        "metadata": metadata,
    }


def invalid_argument(message: str) -> ApiError:
    return ApiError(400, message)


def unauthenticated(*, missing: bool) -> ApiError:
    reason = "CREDENTIALS_MISSING" if missing else "ACCESS_TOKEN_TYPE_UNSUPPORTED"
    return ApiError(
        401,
        MISSING_CREDENTIALS_MESSAGE if missing else UNAUTHENTICATED_MESSAGE,
        (_error_info(reason, "googleapis.com", service=SERVICE, method=METHOD),),
        (("WWW-Authenticate", 'Bearer realm="https://accounts.google.com/"'),),
    )


def permission_denied(resource: str) -> ApiError:
    return ApiError(
        403,
        PERMISSION_DENIED_MESSAGE,
        (
            _error_info(
                "IAM_PERMISSION_DENIED", "iam.googleapis.com", permission=PERMISSION, resource=resource
            ),
        ),
    )


def resource_exhausted(project_number: str = "000000000000") -> ApiError:
    message = (
        "Quota exceeded for quota metric 'Read requests' and limit 'Read requests per minute' of service "
        f"'{SERVICE}' for consumer 'project_number:{project_number}'."
    )
    info = _error_info(
        "RATE_LIMIT_EXCEEDED",
        "googleapis.com",
        consumer=f"projects/{project_number}",
        quota_limit="ReadRequestsPerMinutePerProject",
        quota_limit_value="120",
        quota_location="global",
        quota_metric=f"{SERVICE}/read_requests",
        service=SERVICE,
    )
    help_link = {
        "@type": "type.googleapis.com/google.rpc.Help",
        "links": [
            {
                "description": "Request a higher quota limit.",
                "url": "https://cloud.google.com/docs/quotas/help/request_increase",
            }
        ],
    }
    return ApiError(429, message, (info, help_link))


def internal() -> ApiError:
    return ApiError(500, "Internal error encountered.")


def unavailable() -> ApiError:
    return ApiError(503, "The service is currently unavailable.")


def injected(code: int, resource: str) -> ApiError:
    """The error a fault of status `code` answers (Google's wording for each)."""
    makers: dict[int, Callable[[], ApiError]] = {
        400: lambda: invalid_argument("Request contains an invalid argument."),
        401: lambda: unauthenticated(missing=False),
        403: lambda: permission_denied(resource),
        429: resource_exhausted,
        500: internal,
        503: unavailable,
    }
    if code not in makers:
        raise ValueError(f"no injectable error for status {code}: use one of {sorted(makers)}")
    return makers[code]()


# --------------------------------------------------------------------------------------------------
# The filter: the subset of the Logging query language the suite uses
# --------------------------------------------------------------------------------------------------
class FilterError(ValueError):
    """A filter outside the subset (or not valid at all): answered 400 INVALID_ARGUMENT."""


_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})$"
)
# Constructs Python's `re` accepts and RE2 refuses (see the module's docstring).
_NOT_RE2 = re.compile(r"\(\?<?[=!]|\(\?>|\(\?P=|\\[1-9]|[*+?}]\+")
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>"(?:[^"\\]|\\.)*")
      | (?P<op>=~|!~|>=|<=|!=|=|<|>|:)
      | (?P<lparen>\()
      | (?P<rparen>\))
      | (?P<word>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
      | (?P<other>\S)
    )""",
    re.VERBOSE,
)
_KEYWORDS = {"AND", "OR", "NOT"}


def parse_rfc3339_ns(text: str) -> int | None:
    """Nanoseconds since the epoch of an RFC 3339 time (`Z` or an offset, up to 9 fraction digits)."""
    match = _RFC3339.match(text)
    if not match:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        offset = "+00:00" if zone in ("Z", "z") else zone
        moment = datetime.fromisoformat(f"{year}-{month}-{day}T{hour}:{minute}:{second}{offset}")
    except ValueError:
        return None
    nanos = int((fraction or "").ljust(9, "0"))
    return int(moment.astimezone(UTC).timestamp()) * 1_000_000_000 + nanos


@dataclass(frozen=True)
class _Token:
    kind: str  # string | op | lparen | rparen | word | keyword | other
    text: str
    column: int  # 1-based


def _tokens(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if match is None or match.lastgroup is None:  # an unterminated string
            raise FilterError(f"unterminated string at column {position + 1}")
        kind, value = match.lastgroup, match.group(match.lastgroup)
        column = match.start(kind) + 1
        if kind == "word" and value in _KEYWORDS:
            kind = "keyword"
        tokens.append(_Token(kind, value, column))
        position = match.end()
    return tokens


def _unquote(token: _Token) -> str:
    """The value of a quoted string: `\\"` and `\\\\` are escapes; any other backslash is kept as
    written (so a regex's `\\d` reaches the regex)."""
    body = token.text[1:-1]
    return re.sub(r'\\(["\\])', r"\1", body)


@dataclass(frozen=True)
class Comparison:
    field: str
    op: str  # = | =~ | >= | <=
    value: str
    regex: re.Pattern[str] | None = None
    instant_ns: int | None = None

    def matches(self, entry: dict[str, Any]) -> bool:
        actual = field_value(entry, self.field)
        if actual is None:
            return False
        if self.op == "=~":
            assert self.regex is not None
            return self.regex.search(actual) is not None
        if self.op == "=":
            return actual.casefold() == self.value.casefold()
        assert self.instant_ns is not None
        at = parse_rfc3339_ns(actual)
        if at is None:
            return False
        return at >= self.instant_ns if self.op == ">=" else at <= self.instant_ns


@dataclass(frozen=True)
class Filter:
    """Clauses, all of which must hold; a clause holds when any of its comparisons does."""

    clauses: tuple[tuple[Comparison, ...], ...] = ()
    text: str = ""

    def matches(self, entry: dict[str, Any]) -> bool:
        return all(any(c.matches(entry) for c in clause) for clause in self.clauses)


def field_value(entry: dict[str, Any], path: str) -> str | None:
    """The value at a dotted path of a LogEntry, as text; None when absent or not a scalar."""
    value: Any = entry
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    return None


def _comparison(tokens: list[_Token], at: int) -> tuple[Comparison, int]:
    if at >= len(tokens):
        raise FilterError("the filter ends where a comparison was expected")
    name = tokens[at]
    if name.kind != "word":
        what = {"keyword": f"operator {name.text}", "string": "a bare value (a global restriction)"}.get(
            name.kind, repr(name.text)
        )
        raise FilterError(f"{what} where a field name was expected (column {name.column})")
    if at + 1 >= len(tokens):
        raise FilterError(f"a bare word {name.text!r} (a global restriction) at column {name.column}")
    op = tokens[at + 1]
    if op.kind != "op":
        raise FilterError(
            f"{op.text!r} after {name.text} at column {op.column}: comparisons must be joined by AND"
            if op.kind in ("word", "string", "keyword", "lparen")
            else f"{op.text!r} where an operator was expected (column {op.column})"
        )
    if op.text not in ("=", "=~", ">=", "<="):
        raise FilterError(f"operator {op.text} at column {op.column} (served: =, =~, >=, <=)")
    if at + 2 >= len(tokens) or tokens[at + 2].kind != "string":
        where = tokens[at + 2].column if at + 2 < len(tokens) else "the end"
        raise FilterError(f"{name.text}{op.text} needs a double-quoted value (at column {where})")
    value = _unquote(tokens[at + 2])
    if op.text in (">=", "<="):
        if name.text != "timestamp":
            raise FilterError(f"{op.text} on {name.text} at column {op.column} (served on timestamp only)")
        instant = parse_rfc3339_ns(value)
        if instant is None:
            raise FilterError(
                f"timestamp value {value!r} is not an RFC 3339 time (column {tokens[at + 2].column})"
            )
        return Comparison(name.text, op.text, value, instant_ns=instant), at + 3
    if op.text == "=~":
        if _NOT_RE2.search(value):
            raise FilterError(
                f"invalid RE2 regular expression {value!r}: lookaround, backreferences, "
                "atomic groups and possessive quantifiers are not RE2"
            )
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                regex = re.compile(value)
        except re.error as exc:
            raise FilterError(f"invalid regular expression {value!r}: {exc}") from None
        return Comparison(name.text, op.text, value, regex=regex), at + 3
    return Comparison(name.text, op.text, value), at + 3


def parse_filter(text: str) -> Filter:
    """The filter, if it is within the served subset; FilterError saying where it is not."""
    if len(text) > MAX_FILTER_CHARS:
        raise FilterError(f"the filter is {len(text)} characters long (the limit is {MAX_FILTER_CHARS})")
    tokens = _tokens(text)
    clauses: list[tuple[Comparison, ...]] = []
    at = 0
    while at < len(tokens):
        if clauses:
            joiner = tokens[at]
            if joiner.kind != "keyword" or joiner.text != "AND":
                what = "a top-level OR" if joiner.text == "OR" else repr(joiner.text)
                raise FilterError(f"{what} at column {joiner.column} (clauses are joined by AND)")
            at += 1
            if at >= len(tokens):
                raise FilterError("the filter ends after AND")
        token = tokens[at]
        if token.kind == "lparen":
            group, at = _or_group(tokens, at + 1, token)
            clauses.append(group)
        elif token.text in ("NOT", "-") and token.kind in ("keyword", "other"):
            raise FilterError(f"negation ({token.text}) at column {token.column}")
        else:
            comparison, at = _comparison(tokens, at)
            clauses.append((comparison,))
    return Filter(tuple(clauses), text)


def _or_group(tokens: list[_Token], at: int, opening: _Token) -> tuple[tuple[Comparison, ...], int]:
    members: list[Comparison] = []
    while True:
        if at < len(tokens) and tokens[at].kind == "lparen":
            raise FilterError(f"nested parentheses at column {tokens[at].column}")
        comparison, at = _comparison(tokens, at)
        if comparison.op != "=~":
            raise FilterError(
                f"{comparison.field}{comparison.op} inside parentheses (served: an OR of =~ comparisons)"
            )
        members.append(comparison)
        if at >= len(tokens):
            raise FilterError(f"unclosed parenthesis opened at column {opening.column}")
        token = tokens[at]
        if token.kind == "rparen":
            break
        if token.kind != "keyword" or token.text != "OR":
            raise FilterError(f"{token.text!r} at column {token.column} inside parentheses (served: OR)")
        at += 1
    if len(members) < 2:
        raise FilterError(f"parentheses around one comparison at column {opening.column}")
    return tuple(members), at + 1


# --------------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    status: int = 0


@dataclass(frozen=True)
class _Snapshot:
    """The entries a first page matched, kept for the pages after it."""

    key: tuple[Any, ...]
    entries: list[dict[str, Any]]


@dataclass
class _Fault:
    code: int
    remaining: int | None  # None: every request until cleared
    skip: int = 0  # requests answered normally before this fault begins


def _make_token(snapshot_id: str, offset: int) -> str:
    return base64.urlsafe_b64encode(f"{snapshot_id}:{offset}".encode()).decode().rstrip("=")


def _read_token(token: Any) -> tuple[str, int]:
    try:
        text = base64.urlsafe_b64decode(str(token) + "=" * (-len(str(token)) % 4)).decode()
        snapshot_id, offset = text.split(":")
        return snapshot_id, max(0, int(offset))
    except (ValueError, UnicodeDecodeError):
        raise invalid_argument("Invalid page token.") from None


def _timestamp_ns(entry: dict[str, Any]) -> int:
    value = entry.get("timestamp")
    return (parse_rfc3339_ns(value) if isinstance(value, str) else None) or 0


@dataclass
class StandIn:
    """Cloud Logging's `entries.list` on 127.0.0.1, serving `entries` to a bearer of `token_file`'s token."""

    entries: Entries
    token_file: Path
    project: str = PROJECT_ID
    page_size: int = PAGE_SIZE
    requests: list[RecordedRequest] = field(default_factory=list)
    _faults: list[_Fault] = field(default_factory=list)
    _snapshots: OrderedDict[str, _Snapshot] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> StandIn:
        stand_in = self

        class Handler(_Handler):
            api = stand_in

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="cloud-logging-api", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)
        self._server = self._thread = None

    def __enter__(self) -> StandIn:
        return self.start() if self._server is None else self

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "the stand-in is not started"
        return int(self._server.server_address[1])

    @property
    def endpoint(self) -> str:
        """The root URL gcloud is pointed at (`CLOUDSDK_API_ENDPOINT_OVERRIDES_LOGGING`)."""
        return f"http://127.0.0.1:{self.port}/"

    def gcloud_env(self, config_dir: Path) -> dict[str, str]:
        """What the real gcloud needs to read from this stand-in and nothing else (see `gcloud_env`)."""
        return gcloud_env(self.endpoint, self.token_file, config_dir, self.project)

    # --- test controls -----------------------------------------------------------------------------
    def fail(self, code: int, times: int | None = None, *, after: int = 0) -> None:
        """Answer `times` requests (all, if None) with Google's error of status `code`, beginning
        after `after` more requests were answered normally (e.g. `after=1`: the second page fails)."""
        injected(code, f"projects/{self.project}")  # refuses an unknown status now, not mid-request
        with self._lock:
            self._faults.append(_Fault(code, times, after))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def list_requests(self) -> list[RecordedRequest]:
        """The `entries:list` requests received so far, in order."""
        with self._lock:
            return [r for r in self.requests if r.path.split("?")[0] == LIST_PATH]

    # --- the API -----------------------------------------------------------------------------------
    def _load(self, peer: Peer | None) -> list[dict[str, Any]]:
        source = self.entries
        if callable(source):
            if peer is None:
                raise _unattributed("a request without a client address")
            source = source(peer)
        if not isinstance(source, Path):
            return [dict(e) for e in source]
        try:
            data = json.loads(source.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            raise internal() from exc
        if not isinstance(data, list):
            raise internal()
        return [e for e in data if isinstance(e, dict)]

    def _authorize(self, headers: dict[str, str]) -> None:
        given = next((v for k, v in headers.items() if k.lower() == "authorization"), None)
        if not given:
            raise unauthenticated(missing=True)
        try:
            token = self.token_file.read_text(encoding="utf-8").strip()
        except OSError:
            token = ""
        if not token or not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            raise unauthenticated(missing=False)

    def _take_fault(self) -> int | None:
        with self._lock:
            while self._faults:
                fault = self._faults[0]
                if fault.skip > 0:
                    fault.skip -= 1
                    return None
                if fault.remaining is None:
                    return fault.code
                if fault.remaining > 0:
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._faults.pop(0)
                    return fault.code
                self._faults.pop(0)
        return None

    def list_entries(self, headers: dict[str, str], body: Any, peer: Peer | None = None) -> dict[str, Any]:
        """One `entries.list` call from `peer`: the page, or ApiError."""
        resource = f"projects/{self.project}"
        fault = self._take_fault()
        if fault is not None:
            raise injected(fault, resource)
        self._authorize(headers)
        if not isinstance(body, dict):
            raise invalid_argument("Invalid JSON payload received. Expected an object.")
        known = {"resourceNames", "projectIds", "filter", "orderBy", "pageSize", "pageToken"}
        unknown = sorted(set(body) - known)
        if unknown:
            raise invalid_argument(
                f'Invalid JSON payload received. Unknown name "{unknown[0]}": Cannot find field.'
            )
        names = body.get("resourceNames") or []
        if body.get("projectIds"):
            raise invalid_argument(
                "projectIds is deprecated and not served by the stand-in: use resourceNames"
            )
        if not isinstance(names, list) or not names:
            raise invalid_argument("resourceNames: at least one resource name is required")
        for name in names:
            if name != resource:
                raise permission_denied(str(name))
        text = body.get("filter") or ""
        order = body.get("orderBy") or "timestamp asc"
        if order not in ("timestamp asc", "timestamp desc"):
            raise invalid_argument(f'orderBy: "{order}" is not "timestamp asc" or "timestamp desc"')
        size = body.get("pageSize", PAGE_SIZE)
        if not isinstance(size, int) or isinstance(size, bool) or size < 0 or size > MAX_PAGE_SIZE:
            raise invalid_argument(f"pageSize: {size!r} is negative or exceeds {MAX_PAGE_SIZE}")
        size = min(size or PAGE_SIZE, self.page_size)
        key = (tuple(names), text, order)
        token = body.get("pageToken") or ""
        if token:
            snapshot_id, offset = _read_token(token)
            with self._lock:
                snapshot = self._snapshots.get(snapshot_id)
            if snapshot is None or snapshot.key != key:
                raise invalid_argument("Invalid page token: it is unknown, expired, or from another request.")
        else:
            try:
                parsed = parse_filter(text)
            except FilterError as exc:
                raise invalid_argument(f"Unparseable filter: {exc}.") from None
            matching = [e for e in self._load(peer) if parsed.matches(e)]
            # A stable sort: entries of the same timestamp keep the file's order.
            matching.sort(key=_timestamp_ns, reverse=order == "timestamp desc")
            snapshot_id, offset, snapshot = secrets.token_hex(8), 0, _Snapshot(key, matching)
            with self._lock:
                self._snapshots[snapshot_id] = snapshot
                while len(self._snapshots) > MAX_SNAPSHOTS:
                    self._snapshots.popitem(last=False)
        page = snapshot.entries[offset : offset + size]
        answer: dict[str, Any] = {}
        if page:
            answer["entries"] = page
        if offset + len(page) < len(snapshot.entries):
            # A token names a snapshot and an offset: asking again with it (a retry) gives the same page.
            answer["nextPageToken"] = _make_token(snapshot_id, offset + len(page))
        return answer

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)


class _Handler(BaseHTTPRequestHandler):
    api: StandIn
    protocol_version = "HTTP/1.1"
    server_version = "ESF"

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read `requests`
        pass

    def _send(self, status: int, body: dict[str, Any], headers: Sequence[tuple[str, str]] = ()) -> None:
        data = json.dumps(body, indent=2).encode() + b"\n"
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Vary", "X-Origin, Referer, Origin,Accept-Encoding")
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _answer(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        headers = {k: v for k, v in self.headers.items()}
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        status: int = 200
        answer: dict[str, Any] = {}
        extra: tuple[tuple[str, str], ...] = ()
        try:
            if self.path.split("?")[0] != LIST_PATH:
                raise ApiError(
                    404, f"The requested URL {self.path.split('?')[0]} was not found on this server."
                )
            if method != "POST":
                raise ApiError(404, f"Method {method} is not served for {LIST_PATH}.")
            if isinstance(body, str):
                raise invalid_argument("Invalid JSON payload received.")
            peer = Peer(int(self.client_address[1]), self.api.port)
            answer = self.api.list_entries(headers, body if body is not None else {}, peer)
        except ApiError as error:
            status, answer, extra = error.code, error.body(), error.headers
        self.api._record(RecordedRequest(method, self.path, headers, body, status))
        self._send(status, answer, extra)

    def do_POST(self) -> None:
        self._answer("POST")

    def do_GET(self) -> None:
        self._answer("GET")


# --------------------------------------------------------------------------------------------------
# Whose record: the suite run that called gcloud
# --------------------------------------------------------------------------------------------------
def _unattributed(why: str) -> ApiError:
    return ApiError(
        400, f"The stand-in cannot tell which suite run asked: {why}.", status_name="FAILED_PRECONDITION"
    )


def _client_socket_inode(client_port: int, server_port: int) -> int | None:
    """The inode of the socket whose local end is 127.0.0.1:`client_port` and remote end the server."""
    local, remote = f"0100007F:{client_port:04X}", f"0100007F:{server_port:04X}"
    try:
        lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) > 9 and fields[1] == local and fields[2] == remote:
            return int(fields[9])
    return None


def _socket_owner(inode: int) -> int | None:
    target = f"socket:[{inode}]"
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        try:
            for fd in fd_dir.iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) == target:
                        return int(fd_dir.parent.name)
        except OSError:  # gone, or another user's
            continue
    return None


def parent_pid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": state, ppid, ...
    return int(fields[1]) if len(fields) > 1 else None


def suite_record(root: Path) -> Callable[[Peer], Path]:
    """The record of the replica that the calling suite run started, for a self-test that runs the
    suite with E2E_STARTUP_EVIDENCE=gcloud: the suite's pytest process (or, under xdist, the
    controller above its worker) starts the replica in `root/.replica/suite-<its pid>`
    (replica/pytest_plugin.py) and is an ancestor of the gcloud that connects here."""

    def record(peer: Peer) -> Path:
        pid = peer.pid()
        if pid is None:
            raise _unattributed(f"no process of this user holds the client end of port {peer.port}")
        ancestor: int | None = pid
        for _ in range(8):
            ancestor = parent_pid(ancestor) if ancestor else None
            if not ancestor:
                break
            run_dir = root / ".replica" / f"suite-{ancestor}"
            if run_dir.is_dir():
                return run_dir / FILE_NAME
        raise _unattributed(f"no ancestor of gcloud (pid {pid}) has a replica run dir in {root / '.replica'}")

    return record


# --------------------------------------------------------------------------------------------------
# The environment the real gcloud needs
# --------------------------------------------------------------------------------------------------
UNROUTABLE_HOST = "127.0.0.1:9"
UNROUTABLE_PROXY = f"http://{UNROUTABLE_HOST}"
"""A proxy that refuses every connection: gcloud's requests to anything but 127.0.0.1 fail at once
instead of reaching the network (127.0.0.1 and localhost bypass it through NO_PROXY)."""


def gcloud_env(
    endpoint: str, token_file: Path, config_dir: Path, project: str = PROJECT_ID
) -> dict[str, str]:
    """The variables that make the real gcloud read Cloud Logging from `endpoint`, authenticated by
    `token_file`, in the fresh configuration `config_dir` (never the machine's own), without prompts,
    update checks, usage reports or surveys, and with no way out but 127.0.0.1. Add them to a copy of
    os.environ; `HOME` is left alone (gcloud reads nothing from it once CLOUDSDK_CONFIG is set)."""
    config_dir.mkdir(parents=True, exist_ok=True)
    return {
        "CLOUDSDK_CONFIG": str(config_dir),
        "CLOUDSDK_API_ENDPOINT_OVERRIDES_LOGGING": endpoint,
        "CLOUDSDK_AUTH_ACCESS_TOKEN_FILE": str(token_file),
        "CLOUDSDK_CORE_PROJECT": project,
        "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
        "CLOUDSDK_CORE_DISABLE_USAGE_REPORTING": "1",
        "CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK": "1",
        "CLOUDSDK_SURVEY_DISABLE_PROMPTS": "1",
        # gcloud asks the metadata server whether it runs on GCE (a DNS lookup of metadata.google.internal,
        # then HTTP, bypassing any proxy): this points that check at a closed local port instead.
        "GCE_METADATA_ROOT": UNROUTABLE_HOST,
        "HTTPS_PROXY": UNROUTABLE_PROXY,
        "HTTP_PROXY": UNROUTABLE_PROXY,
        "https_proxy": UNROUTABLE_PROXY,
        "http_proxy": UNROUTABLE_PROXY,
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }


_INHERITED = ("CLOUDSDK_", "GOOGLE_", "GCE_", "BOTO_")
_PROXIES = ("http_proxy", "https_proxy", "no_proxy", "all_proxy")


def isolated_environ(additions: Mapping[str, str], base: Mapping[str, str] | None = None) -> dict[str, str]:
    """`base` (os.environ) without what would let the machine's own gcloud setup in (CLOUDSDK_*,
    GOOGLE_*, GCE_*, proxies), plus `additions` (`gcloud_env`'s)."""
    kept = {
        k: v
        for k, v in (os.environ if base is None else base).items()
        if not k.upper().startswith(_INHERITED) and k.lower() not in _PROXIES
    }
    return {**kept, **additions}


def new_token_file(directory: Path) -> Path:
    """A fresh random access token in `directory`/access-token (owner-only), for one stand-in."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "access-token"
    path.write_text("ya29.standin-" + secrets.token_urlsafe(32) + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path


@contextlib.contextmanager
def serving(
    entries: Entries, directory: Path, *, project: str = PROJECT_ID, page_size: int = PAGE_SIZE
) -> Iterator[tuple[StandIn, dict[str, str]]]:
    """A started stand-in for `entries` and the environment the real gcloud needs to read it (a fresh
    token and configuration under `directory`); stopped on exit."""
    stand_in = StandIn(entries, new_token_file(directory), project=project, page_size=page_size).start()
    try:
        yield stand_in, stand_in.gcloud_env(directory / "gcloud-config")
    finally:
        stand_in.stop()


# --------------------------------------------------------------------------------------------------
# python -m replica.cloud_logging_api
# --------------------------------------------------------------------------------------------------
def _shown(request: RecordedRequest) -> dict[str, Any]:
    """A request as `--log` prints it: the bearer token masked."""
    headers = {k: ("Bearer ***" if k.lower() == "authorization" else v) for k, v in request.headers.items()}
    return {
        "status": request.status,
        "method": request.method,
        "path": request.path,
        "headers": headers,
        "body": request.body,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m replica.cloud_logging_api",
        description="Serve Cloud Logging's entries.list on 127.0.0.1 for the real gcloud; print the env it needs.",
    )
    parser.add_argument("entries", type=Path, help="a cloud-logging.json (read on every first page)")
    parser.add_argument("--dir", type=Path, required=True, help="where the token file and gcloud's config go")
    parser.add_argument("--project", default=PROJECT_ID)
    parser.add_argument("--page-size", type=int, default=PAGE_SIZE)
    parser.add_argument("--fail", type=int, metavar="STATUS", help="answer every request with this error")
    parser.add_argument("--log", action="store_true", help="print each request (token masked) on stderr")
    args = parser.parse_args(argv)
    with serving(
        args.entries.resolve(), args.dir.resolve(), project=args.project, page_size=args.page_size
    ) as (
        stand_in,
        env,
    ):
        if args.fail:
            stand_in.fail(args.fail)
        for name, value in env.items():
            print(f"export {name}={value}", flush=True)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        seen = 0
        while True:
            stopped = stop.wait(0.2)
            requests = stand_in.list_requests() if args.log else []
            for request in requests[seen:]:
                print(json.dumps(_shown(request)), file=sys.stderr, flush=True)
            seen = len(requests)
            if stopped:
                break
    return 0


if __name__ == "__main__":
    sys.exit(main())
