"""The one redactor, applied at the source: every string that leaves the harness passes through `redact`.

Secrets are registered by value (the bypass key from the environment, every token the suite
receives) and also recognised by shape, so a secret we never registered is still masked: JWTs,
`Bearer …`, `jwt.<token>` subprotocols, Google OAuth access and refresh tokens (`ya29.…`, `1//…`, which
gcloud may print), a password in a URL (`postgres://user:pw@host`), and `token=…`/`password: …`
pairs in foreign text (a log line, a tool's error). A pair whose value another redactor already masked
(the backend's own `password=REDACTED failed for user "x"`) is left in its words: nothing is left to hide,
and a reader matches on them.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections.abc import Mapping
from typing import Any

MASK = "***REDACTED***"
_MIN_SECRET_LEN = 6

_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")
_BEARER = re.compile(r"(?i)\b(bearer)(\s+|\.)[A-Za-z0-9._~+/=-]{8,}")
_SUBPROTOCOL = re.compile(r"\b(jwt|jwt-auth)\.[A-Za-z0-9._~+/=-]{8,}")
_GOOGLE_TOKEN = re.compile(r"\bya29\.[A-Za-z0-9._~+/=-]+|\b1//[A-Za-z0-9._~+/=-]{10,}")
_URL_PASSWORD = re.compile(r"(://[^:/@\s]+:)[^@\s]+@")
_SECRET_PAIR = re.compile(
    r"(?i)\b(access_token|refresh_token|id_token|token|password|passwd|secret|api_key)"
    r"(\"?\s*[=:]\s*\"?)(?!\*\*\*REDACTED|REDACTED\b)[^\s\"',;]+"
)
SENSITIVE_HEADERS = frozenset(
    {
        "authorization",
        "x-e2e-bypass-key",
        "cookie",
        "set-cookie",
        "sec-websocket-protocol",
        "x-service-secret",
    }
)

# A field whose name says it holds a credential is masked whole, whatever its value looks like
# (a handshake's `session_token`, an `api_key`, a `password`).
_SECRET_FIELD = re.compile(r"(?i)token|secret|key|password|passwd|authorization|cookie")
# ...except these, which name a credential's kind, not the credential.
_NOT_SECRET_FIELDS = frozenset({"token_type", "token_via"})

_lock = threading.Lock()
_secrets: set[str] = set()


def register(*values: str | None) -> None:
    """Remember secret values so that they are masked wherever they appear later."""
    with _lock:
        for value in values:
            if value and len(value) >= _MIN_SECRET_LEN:
                _secrets.add(value)


def redact(text: Any) -> str:
    """`text` as a string with every known or secret-shaped value masked."""
    out = text if isinstance(text, str) else str(text)
    with _lock:
        known = sorted(_secrets, key=len, reverse=True)
    for secret in known:
        if secret in out:
            out = out.replace(secret, MASK)
    out = _JWT.sub(MASK, out)
    out = _GOOGLE_TOKEN.sub(MASK, out)
    out = _URL_PASSWORD.sub(lambda m: f"{m.group(1)}{MASK}@", out)
    out = _SECRET_PAIR.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", out)
    out = _BEARER.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", out)
    return _SUBPROTOCOL.sub(lambda m: f"{m.group(1)}.{MASK}", out)


def redact_line(text: Any, limit: int = 200) -> str:
    """Foreign text (a log line, a tool's error) made safe to show on one line: redacted, its
    whitespace folded, cut to `limit` characters."""
    out = " ".join(redact(text).split())
    return out if len(out) <= limit else out[: limit - 1] + "…"


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Headers with credential-bearing values masked whole, and the rest scanned."""
    return {k: (MASK if k.lower() in SENSITIVE_HEADERS else redact(v)) for k, v in headers.items()}


def is_secret_field(name: Any) -> bool:
    return (
        isinstance(name, str) and name.lower() not in _NOT_SECRET_FIELDS and bool(_SECRET_FIELD.search(name))
    )


def redact_data(value: Any) -> Any:
    """A JSON-like structure with every string redacted and every credential-named field masked
    (keys kept; numbers and booleans under such names are kept too: they are not credentials)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {k: _masked(v) if is_secret_field(k) else redact_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_data(v) for v in value]
    return value


def _masked(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float) or value == "":
        return value
    return MASK


class RedactingFilter(logging.Filter):
    """A logging filter that redacts the rendered message of every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        return True


_factory_installed = False


def install_log_redaction() -> None:
    """Redact every log record as it is created, whatever logger it comes from and whatever handler
    takes it (pytest's capture, JUnit, Allure, log_cli, a log file). Libraries log secrets too:
    `websockets` logs the handshake headers (Authorization, the `jwt.` subprotocol) at DEBUG.
    A filter on a logger would miss records propagated from its children; the factory misses none."""
    global _factory_installed
    with _lock:
        if _factory_installed:
            return
        _factory_installed = True
    previous = logging.getLogRecordFactory()
    redacting = RedactingFilter()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        with contextlib.suppress(Exception):  # a malformed format: the handler reports it, as logging does
            redacting.filter(record)
        return record

    logging.setLogRecordFactory(factory)
