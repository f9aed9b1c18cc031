"""HS256 JWTs as the real auth service issues them (claims of auth_core/core/jwt_handler.py).

The backend and the auth service share `ServiceConfig.jwt_secret`, so both verify with the same
function; every failure is one `TokenError` whose `reason` callers can report without the token.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

import jwt

from contract.identity import ACCESS_TOKEN_TTL_S, JWT_ALGORITHM, JWT_AUDIENCE, JWT_ISSUER, mint_token

TokenType = Literal["access", "refresh"]
TokenErrorReason = Literal["expired", "bad_signature", "malformed", "wrong_type", "invalid_claims"]

REFRESH_TOKEN_TTL_S = 7 * 24 * 3600
REQUIRED_CLAIMS = ("sub", "iat", "exp", "iss", "aud", "jti", "type")


class TokenError(Exception):
    """A token was refused; `reason` is safe to log and to put on the wire."""

    def __init__(self, reason: TokenErrorReason, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason: TokenErrorReason = reason
        self.message = message


@dataclass(frozen=True)
class Claims:
    """The identity a verified token carries."""

    sub: str
    email: str
    permissions: list[str]
    token_type: TokenType
    exp: int
    jti: str


def mint(
    secret: str,
    *,
    sub: str,
    email: str,
    permissions: list[str],
    token_type: TokenType = "access",
    ttl_s: float | None = None,
    now: float | None = None,
) -> str:
    """A signed token; `ttl_s` may be negative to mint an already expired one (negative tests)."""
    issued = int(time.time() if now is None else now)
    lifetime = ttl_s if ttl_s is not None else _default_ttl(token_type)
    return mint_token(
        secret,
        sub=sub,
        email=email,
        permissions=permissions,
        token_type=token_type,
        issued_at=issued,
        expires_at=int(issued + lifetime),
    )


def verify(secret: str, token: str, expected_type: TokenType = "access") -> Claims:
    """The token's claims, or TokenError(expired|bad_signature|malformed|wrong_type|invalid_claims)."""
    try:
        raw = jwt.decode(
            token,
            secret,
            algorithms=[JWT_ALGORITHM],
            audience=JWT_AUDIENCE,
            issuer=JWT_ISSUER,
            options={"require": list(REQUIRED_CLAIMS)},
        )
    except jwt.ExpiredSignatureError as exc:
        raise TokenError("expired", "token has expired") from exc
    except jwt.InvalidSignatureError as exc:
        raise TokenError("bad_signature", "signature verification failed") from exc
    except (jwt.DecodeError, jwt.InvalidAlgorithmError) as exc:
        raise TokenError("malformed", "token is not a decodable HS256 JWT") from exc
    except jwt.InvalidTokenError as exc:  # issuer, audience, missing claims, iat in the future
        raise TokenError("invalid_claims", type(exc).__name__) from exc
    if raw.get("type") != expected_type:
        raise TokenError("wrong_type", f"expected a {expected_type} token")
    return _claims(raw)


def _default_ttl(token_type: TokenType) -> float:
    return ACCESS_TOKEN_TTL_S if token_type == "access" else REFRESH_TOKEN_TTL_S


def _claims(raw: dict[str, Any]) -> Claims:
    permissions = raw.get("permissions")
    return Claims(
        sub=str(raw["sub"]),
        email=str(raw.get("email") or ""),
        permissions=[str(p) for p in permissions] if isinstance(permissions, list) else [],
        token_type=raw["type"],
        exp=int(raw["exp"]),
        jti=str(raw["jti"]),
    )


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None
