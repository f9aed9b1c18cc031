"""Slack, optionally, on a change of state only (green to red, red to green, a new cause): an incoming
webhook (`E2E_SLACK_WEBHOOK_URL`, a secret: registered with the redactor, never printed). A steady red
streak is the trackers' to follow night by night; a channel hears only what changed."""

from __future__ import annotations

import httpx

from harness import redact
from harness.nightly.record import NightRecord


def message(night: NightRecord, streak: str) -> str:
    link = f" <{night.url}|run {night.run_id}>" if night.url else ""
    return f"*{night.job} on {night.environment}*: {streak}{link}\n{night.headline[:300]}"


def post(webhook_url: str, text: str, *, timeout_s: float = 10.0) -> str:
    """Post `text`; one line saying how it went (never the URL)."""
    redact.register(webhook_url)
    try:
        response = httpx.post(webhook_url, json={"text": text}, timeout=timeout_s)
    except httpx.HTTPError as exc:
        return f"slack: not told: unreachable ({type(exc).__name__})"
    if response.status_code >= 400:
        return f"slack: not told: the webhook answered {response.status_code} {response.text[:80]!r}"
    return "slack: told (the state changed)"
