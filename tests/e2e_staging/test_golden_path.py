"""The golden path: login -> token accepted -> WebSocket chat -> five events -> AI answer -> stored.

The steps share one login and one chat turn (module fixtures) and stay on one xdist worker, in
order; each test then asserts one outcome of that journey.
"""

from __future__ import annotations

import pytest

from contract.identity import AUTH_SERVICE
from harness import allure_api as allure
from harness.classify import Expect
from harness.errors import ProductFailure
from harness.operations import Login, Operations
from harness.taxonomy import Category
from harness.turn import Turn, check_answer, check_events, check_stored, thread_to_check

QUESTION = "What is 17 + 25, and which database stores this golden path conversation?"

pytestmark = [
    pytest.mark.golden_path,
    pytest.mark.xdist_group("golden_path"),
    allure.epic("Staging validation"),
    allure.feature("Golden path"),
    allure.severity(allure.severity_level.BLOCKER),
]


@pytest.fixture(scope="module")
def turn(platform: Operations, login: Login) -> Turn:
    """Precondition for the chat checks: one question asked over the WebSocket."""
    with allure.step("chat: ask one question and collect the turn"):
        result = platform.chat(login.access_token, QUESTION)
    allure.attach(
        result.transcript_json(), name="chat transcript", attachment_type=allure.attachment_type.JSON
    )
    return result


@allure.story("Login")
@allure.title("The auth service accepts its own fresh token")
@pytest.mark.verifies("token_checks")
def test_login_token_is_accepted_by_the_auth_service(platform: Operations, login: Login) -> None:
    body = platform.check(
        "auth",
        "/auth/validate",
        Expect(keys=("valid",), auth_endpoint=True),
        what="validate the login token (POST /auth/validate)",
        method="POST",
        json={"token": login.access_token},
    )
    if body["valid"] is not True:
        raise ProductFailure(Category.PRODUCT_AUTH, f"the auth service rejects its own fresh token: {body}")


@allure.story("Login")
@allure.title("The profile behind the token is the logged-in user")
@pytest.mark.verifies("token_checks")
def test_profile_matches_the_logged_in_user(platform: Operations, login: Login) -> None:
    body = platform.check(
        "auth",
        "/auth/me",
        Expect(keys=("email",), auth_endpoint=True, service=AUTH_SERVICE),
        what="profile (GET /auth/me)",
        headers=login.bearer,
    )
    if body["email"] != platform.settings.test_email:
        raise ProductFailure(
            Category.PRODUCT_AUTH, f"/auth/me is {body['email']!r}: the token belongs to another user"
        )


@allure.story("Chat")
@allure.title("A chat turn delivers the five agent events in order")
@pytest.mark.verifies("chat")
def test_chat_turn_delivers_the_five_events_in_order(turn: Turn) -> None:
    check_events(turn, QUESTION)


@allure.story("Chat")
@allure.title("The AI answer is about the question")
@pytest.mark.verifies("ai_answer")
def test_ai_answer_is_about_the_question(turn: Turn) -> None:
    check_answer(turn, QUESTION)


@allure.story("Persistence")
@allure.title("The question and the streamed answer are stored in the thread")
@pytest.mark.verifies("persistence")
def test_question_and_answer_are_stored_in_the_thread(platform: Operations, login: Login, turn: Turn) -> None:
    thread = thread_to_check(turn, QUESTION)
    body = platform.check(
        "backend",
        f"/api/threads/{thread}/messages",
        Expect(keys=("messages",)),
        what="thread messages (GET /api/threads/{id}/messages)",
        headers=login.bearer,
    )
    check_stored(turn, body["messages"], QUESTION)
