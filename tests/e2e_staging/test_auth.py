"""Authentication: the bypass login works, the chat socket welcomes the logged-in user, and refuses
what it must refuse.

A refusal proves an auth decision only if, in the same run, the valid token's socket was accepted:
the real readiness guard refuses every socket with a 403 before accept, whatever the token. Without
that control a negative test is not passed; it says why. Accepting a bad token is a product.auth
finding whatever the control says (staging's RELAXED auth and DEMO_MODE are known for it).
"""

from __future__ import annotations

import pytest

from harness import allure_api as allure
from harness.credentials import expired_token, forged_token
from harness.errors import ProductFailure
from harness.operations import Login, Operations, SocketControl
from harness.settings import Settings
from harness.taxonomy import Category

pytestmark = [
    pytest.mark.auth,
    allure.epic("Staging validation"),
    allure.feature("Authentication"),
    allure.severity(allure.severity_level.CRITICAL),
]


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
    socket_control.require_the_user(login)


@allure.story("WebSocket auth")
@allure.title("The chat socket refuses a connection without a token")
@pytest.mark.verifies("negative_auth")
def test_chat_socket_refuses_a_connection_without_token(
    platform: Operations, socket_control: SocketControl
) -> None:
    socket_control.judge_refusal(platform.expect_refused(None))


@allure.story("WebSocket auth")
@allure.title("The chat socket refuses a token with a bad signature")
@pytest.mark.verifies("negative_auth")
def test_chat_socket_refuses_a_token_with_a_bad_signature(
    platform: Operations, settings: Settings, socket_control: SocketControl
) -> None:
    forged = forged_token(settings.test_email)
    socket_control.judge_refusal(platform.expect_refused(forged, via="subprotocol"))


@allure.story("WebSocket auth")
@allure.title("The chat socket refuses an expired token (validly signed, every real claim present)")
@pytest.mark.verifies("negative_auth")
def test_chat_socket_refuses_an_expired_token(
    platform: Operations, settings: Settings, socket_control: SocketControl
) -> None:
    if not settings.jwt_secret:
        pytest.skip(
            "E2E_JWT_SECRET is not set: a validly signed expired token cannot be minted for this target"
        )
    expired = expired_token(settings.jwt_secret, settings.test_email)
    socket_control.judge_refusal(platform.expect_refused(expired))
