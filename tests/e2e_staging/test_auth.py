"""Authentication: the bypass login works, the chat socket welcomes the logged-in user, and refuses
what it must refuse.

A refusal proves an auth decision only if, in the same run, the valid token's socket was accepted:
the real readiness guard refuses every socket with a 403 before accept, whatever the token. Without
that control a negative test is not passed; it says why. Accepting a bad token is a product.auth
finding whatever the control says (staging's RELAXED auth and DEMO_MODE are known for it).
"""

from __future__ import annotations

import time
import uuid

import allure
import jwt
import pytest

from contract.identity import JWT_ALGORITHM, token_claims
from harness.errors import ProductFailure
from harness.settings import Settings
from harness.staging import Login, SocketControl, Staging, socket_auth_finding, user_matches
from harness.taxonomy import Category

pytestmark = [
    pytest.mark.auth,
    allure.epic("Staging validation"),
    allure.feature("Authentication"),
    allure.severity(allure.severity_level.CRITICAL),
]


def _token(secret: str, settings: Settings, *, expires_in_s: int) -> str:
    """A token with every claim the real auth service issues, so that only the one thing a test
    breaks (signature, expiry) is wrong."""
    now = int(time.time())
    claims = token_claims(
        sub="e2e-negative-auth",
        email=settings.test_email,
        permissions=["read", "write"],
        token_type="access",
        issued_at=now - 3600,
        expires_at=now + expires_in_s,
    )
    return jwt.encode(claims, secret, algorithm=JWT_ALGORITHM)


def _judge_refusal(how: str, control: SocketControl) -> None:
    if not control.accepted:
        why = control.failure.detail if control.failure else "no control ran"
        pytest.skip(
            f"not judged: the socket was refused ({how}), but so was the logged-in user's valid token "
            f"({why}); a refusal proves no auth decision when every socket is refused"
        )
    allure.dynamic.description(f"refused: {how}")


@allure.story("Login")
@allure.title("The bypass login issues an access and a refresh token")
@pytest.mark.verifies("login")
def test_bypass_login_issues_tokens(login: Login) -> None:
    if not (login.access_token and login.refresh_token):  # no token value in the message, even redacted
        raise ProductFailure(
            Category.PRODUCT_AUTH, "login answered without both an access and a refresh token"
        )


@allure.story("WebSocket auth")
@allure.title("The chat socket welcomes the logged-in user with the valid token")
@pytest.mark.verifies("chat")
def test_chat_socket_welcomes_the_logged_in_user(socket_control: SocketControl, login: Login) -> None:
    if socket_control.failure is not None:
        raise socket_control.failure
    shown = (socket_control.welcome or {}).get("user_id")
    if not user_matches(shown if isinstance(shown, str) else None, login.user_id):
        raise socket_auth_finding(
            "ws_wrong_user",
            f"the chat socket welcomed user {shown!r}, not the logged-in {login.user_id!r} "
            "(DEMO_MODE makes every socket 'demo-user-001'; its threads are then not the user's)",
            socket_control.welcome or {},
        )


@allure.story("WebSocket auth")
@allure.title("The chat socket refuses a connection without a token")
@pytest.mark.verifies("negative_auth")
def test_chat_socket_refuses_a_connection_without_token(
    staging: Staging, socket_control: SocketControl
) -> None:
    _judge_refusal(staging.expect_refused(None), socket_control)


@allure.story("WebSocket auth")
@allure.title("The chat socket refuses a token with a bad signature")
@pytest.mark.verifies("negative_auth")
def test_chat_socket_refuses_a_token_with_a_bad_signature(
    staging: Staging, settings: Settings, socket_control: SocketControl
) -> None:
    forged = _token(uuid.uuid4().hex * 2, settings, expires_in_s=900)
    _judge_refusal(staging.expect_refused(forged, transport="subprotocol"), socket_control)


@allure.story("WebSocket auth")
@allure.title("The chat socket refuses an expired token (validly signed, every real claim present)")
@pytest.mark.verifies("negative_auth")
def test_chat_socket_refuses_an_expired_token(
    staging: Staging, settings: Settings, socket_control: SocketControl
) -> None:
    if not settings.jwt_secret:
        pytest.skip(
            "E2E_JWT_SECRET is not set: a validly signed expired token cannot be minted for this target"
        )
    _judge_refusal(
        staging.expect_refused(_token(settings.jwt_secret, settings, expires_in_s=-60)), socket_control
    )
