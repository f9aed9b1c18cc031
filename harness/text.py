"""Small text helpers shared by the verdict, its summaries and the evidence readers."""

from __future__ import annotations

import re


def first_line(text: str | None, width: int | None = None) -> str:
    """The first non-blank line, stripped ("" if none), cut to `width` with "..." when given."""
    line = next((ln.strip() for ln in (text or "").splitlines() if ln.strip()), "")
    if width is not None and len(line) > width:
        return line[: width - 3] + "..."
    return line


def known_issue_mark(issue_id: str | None) -> str:
    """ "(known issue X)": how a failure's message and the verdict's owner name a known issue (Allure's
    categories route failures by it; `reason` takes it off again)."""
    return f"(known issue {issue_id})"


_TAG = re.compile(r"^\[[a-z_]+\.[a-z_]+\] ")
_POINTERS = re.compile(
    r" \(not retried: [^)]*\)| " + re.escape(known_issue_mark("@")).replace("@", "[^)]*") + "$"
)


def reason(message: str | None) -> str:
    """A failure's first line as a person reads it beside others of its cause: without its
    `[category]` tag (routing for Allure) and the per-test pointers (the circuit, the known-issue mark)."""
    return _POINTERS.sub("", _TAG.sub("", first_line(message)))
