"""Credentials a negative-auth test needs: tokens with every claim the real auth service issues, so
that only the one thing a test breaks (the signature, the expiry) is wrong. The real token check
rejects a token without `token_type` before it looks at expiry: a token missing a claim would prove
nothing about expiry."""

from __future__ import annotations

import secrets
import time

from contract.identity import mint_token
from harness.redact import register

NEGATIVE_AUTH_SUBJECT = "e2e-negative-auth"


def forged_token(email: str) -> str:
    """A well-formed, unexpired token signed with a key the target cannot know."""
    return _token(secrets.token_hex(32), email, expires_in_s=900)


def expired_token(secret: str, email: str) -> str:
    """A token validly signed with the target's own secret, expired a minute ago."""
    return _token(secret, email, expires_in_s=-60)


def _token(secret: str, email: str, *, expires_in_s: int) -> str:
    now = int(time.time())
    token = mint_token(
        secret,
        sub=NEGATIVE_AUTH_SUBJECT,
        email=email,
        permissions=["read", "write"],
        token_type="access",
        issued_at=now - 3600,
        expires_at=now + expires_in_s,
    )
    register(token)
    return token
