"""Names that identify services and carry credentials on the wire, and the claims of a real token."""

from __future__ import annotations

import uuid
from typing import Any

import jwt

BACKEND_SERVICE = "netra-ai-platform"
AUTH_SERVICE = "auth-service"
FRONTEND_SERVICE = "frontend"

BYPASS_KEY_HEADER = "X-E2E-Bypass-Key"
DEFAULT_TEST_EMAIL = "e2e-test@staging.netrasystems.ai"

JWT_ISSUER = "netra-auth-service"
JWT_AUDIENCE = "netra-platform"
JWT_ALGORITHM = "HS256"
ACCESS_TOKEN_TTL_S = 900

# Sec-WebSocket-Protocol entries that carry a token, in the order the backend looks for them.
TOKEN_SUBPROTOCOL_PREFIXES = ("jwt.", "jwt-auth.", "bearer.")
BARE_SUBPROTOCOLS = ("jwt-auth", "jwt", "bearer", "e2e-testing", "staging-auth", "agent_chat")


def token_claims(
    *, sub: str, email: str, permissions: list[str], token_type: str, issued_at: int, expires_at: int
) -> dict[str, Any]:
    """Every claim the real auth service puts in a token (auth_core/core/jwt_handler.py).

    The real check rejects a token without `token_type` before it looks at expiry, so a token minted
    to test one failure (expiry, signature) must carry all of them, or the test isolates nothing.
    """
    return {
        "sub": sub,
        "email": email,
        "permissions": list(permissions),
        "iat": issued_at,
        "exp": expires_at,
        "iss": JWT_ISSUER,
        "aud": JWT_AUDIENCE,
        "jti": uuid.uuid4().hex,
        "type": token_type,
        "token_type": token_type,
    }


def mint_token(
    secret: str,
    *,
    sub: str,
    email: str,
    permissions: list[str],
    token_type: str,
    issued_at: int,
    expires_at: int,
) -> str:
    """A token signed with `secret` carrying every real claim (`token_claims`)."""
    claims = token_claims(
        sub=sub,
        email=email,
        permissions=permissions,
        token_type=token_type,
        issued_at=issued_at,
        expires_at=expires_at,
    )
    return jwt.encode(claims, secret, algorithm=JWT_ALGORITHM)
