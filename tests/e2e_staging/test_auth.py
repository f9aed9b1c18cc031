"""Authentication: the bypass login works, and the chat socket refuses what it must refuse.

The real staging's "relaxed" WebSocket auth accepts any connection; against such a target the
negative tests fail as product.auth findings, each on its own.
"""

from __future__ import annotations

import time
import uuid

import allure
import jwt
import pytest

from contract.identity import JWT_ALGORITHM, JWT_AUDIENCE, JWT_ISSUER
from harness.errors import ProductFailure
from harness.settings import Settings
from harness.staging import Login, Staging
from harness.taxonomy import Category

pytestmark = [
    pytest.mark.auth,
    allure.epic("Staging validation"),
    allure.feature("Authentication"),
    allure.severity(allure.severity_level.CRITICAL),
]


def _token(secret: str, settings: Settings, *, expires_in_s: int) -> str:
    now = int(time.time())
    claims = {
        "sub": "e2e-negative-auth", "email": settings.test_email, "iat": now - 3600, "exp": now + expires_in_s,
        "iss": JWT_ISSUER, "aud": JWT_AUDIENCE, "jti": str(uuid.uuid4()), "type": "access",
    }  # fmt: skip
    return jwt.encode(claims, secret, algorithm=JWT_ALGORITHM)


@allure.story("Login")
def test_bypass_login_issues_tokens(login: Login) -> None:
    if not (login.access_token and login.refresh_token):  # no token value in the message, even redacted
        raise ProductFailure(
            Category.PRODUCT_AUTH, "login answered without both an access and a refresh token"
        )


@allure.story("WebSocket auth")
def test_chat_socket_refuses_a_connection_without_token(staging: Staging) -> None:
    staging.expect_refused(None)


@allure.story("WebSocket auth")
def test_chat_socket_refuses_a_token_with_a_bad_signature(staging: Staging, settings: Settings) -> None:
    forged = _token(uuid.uuid4().hex * 2, settings, expires_in_s=900)
    staging.expect_refused(forged, transport="subprotocol")


@allure.story("WebSocket auth")
def test_chat_socket_refuses_an_expired_token(staging: Staging, settings: Settings) -> None:
    if not settings.jwt_secret:
        pytest.skip(
            "E2E_JWT_SECRET is not set: a validly signed expired token cannot be minted for this target"
        )
    staging.expect_refused(_token(settings.jwt_secret, settings, expires_in_s=-60))
