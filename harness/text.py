"""Small text helpers shared by the verdict, its summaries and the evidence readers."""

from __future__ import annotations


def first_line(text: str | None, width: int | None = None) -> str:
    """The first non-blank line, stripped ("" if none), cut to `width` with "..." when given."""
    line = next((ln.strip() for ln in (text or "").splitlines() if ln.strip()), "")
    if width is not None and len(line) > width:
        return line[: width - 3] + "..."
    return line
