"""What one HTTP exchange left behind: enough to judge it later without the raw response."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from harness.redact import redact_data

SNIPPET_BYTES = 4096


@dataclass
class HttpEvidence:
    """Status, headers, timings and the first bytes of the body of one exchange (redacted).

    `status` is None when no response arrived; then `error` says why (exception type and text).
    """

    method: str
    url: str
    status: int | None = None
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body_snippet: str = ""
    body_bytes: int = 0
    body_truncated: bool = False
    json: Any = None  # the parsed body, only when it is JSON and parsed cleanly
    json_error: str | None = None  # why a JSON-typed body did not parse
    elapsed_s: float = 0.0
    error: str | None = None
    error_type: str | None = None
    timed_out: bool = False
    attempt: int = 1

    def to_dict(self) -> dict[str, Any]:
        """Redacted: evidence is for reports; callers needing raw tokens read `.json` directly."""
        return redact_data(asdict(self))

    def summary(self) -> str:
        """One line a person reads: what was asked, what came back, how long it took."""
        where = f"{self.method} {self.url}"
        if self.status is None:
            return f"{where} -> no response ({self.error_type}: {self.error}) after {self.elapsed_s:.2f}s"
        body = self.body_snippet[:120].replace("\n", " ").strip()
        return (
            f"{where} -> {self.status} {self.content_type or 'no content-type'} "
            f"in {self.elapsed_s:.2f}s, body: {body!r}"
        )


def is_json_type(content_type: str | None) -> bool:
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")
