"""The golden path: login -> token accepted -> WebSocket chat -> five events -> AI answer -> stored.

The steps share one login and one chat turn (module fixtures) and stay on one xdist worker, in
order; each test then asserts one outcome of that journey.
"""

from __future__ import annotations

import allure
import pytest

from contract.frames import message_text
from contract.identity import AUTH_SERVICE
from harness.classify import Expect
from harness.errors import ProductFailure
from harness.staging import Login, Staging
from harness.taxonomy import Category
from harness.turn import Turn, check_answer, check_events, socket_failure, stored_answer_matches

QUESTION = "What is 17 + 25, and which database stores this golden path conversation?"

pytestmark = [
    pytest.mark.golden_path,
    pytest.mark.xdist_group("golden_path"),
    allure.epic("Staging validation"),
    allure.feature("Golden path"),
    allure.severity(allure.severity_level.BLOCKER),
]


@pytest.fixture(scope="module")
def turn(staging: Staging, login: Login) -> Turn:
    """Precondition for the chat checks: one question asked over the WebSocket."""
    with allure.step("chat: ask one question and collect the turn"):
        result = staging.chat(login.access_token, QUESTION)
    allure.attach(
        result.transcript_json(), name="chat transcript", attachment_type=allure.attachment_type.JSON
    )
    return result


@allure.story("Login")
@allure.title("The auth service accepts its own fresh token")
@pytest.mark.verifies("token_checks")
def test_login_token_is_accepted_by_the_auth_service(staging: Staging, login: Login) -> None:
    body = staging.check(
        "auth",
        "/auth/validate",
        Expect(target="auth", keys=("valid",), auth_endpoint=True),
        what="validate the login token (POST /auth/validate)",
        method="POST",
        json={"token": login.access_token},
    )
    if body["valid"] is not True:
        raise ProductFailure(Category.PRODUCT_AUTH, f"the auth service rejects its own fresh token: {body}")


@allure.story("Login")
@allure.title("The profile behind the token is the logged-in user")
@pytest.mark.verifies("token_checks")
def test_profile_matches_the_logged_in_user(staging: Staging, login: Login) -> None:
    body = staging.check(
        "auth",
        "/auth/me",
        Expect(target="auth", keys=("email",), auth_endpoint=True, service=AUTH_SERVICE),
        what="profile (GET /auth/me)",
        headers=login.bearer,
    )
    if body["email"] != staging.settings.test_email:
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
def test_question_and_answer_are_stored_in_the_thread(staging: Staging, login: Login, turn: Turn) -> None:
    if not turn.thread_id or not turn.answer:
        # no answer because the socket failed: that failure is the reason (one cause, one category)
        failure = socket_failure(turn, QUESTION, "no answer") if turn.answer is None else None
        raise failure or ProductFailure(
            Category.PRODUCT_GOLDEN_PATH,
            f"nothing to look for in the thread (thread_id={turn.thread_id!r}, answer={'yes' if turn.answer else 'none'}); "
            f"events: {turn.sequence()}",
            kind="no_answer",
        )
    body = staging.check(
        "backend",
        f"/api/threads/{turn.thread_id}/messages",
        Expect(target="backend", keys=("messages",)),
        what="thread messages (GET /api/threads/{id}/messages)",
        headers=login.bearer,
    )
    stored = [
        (m.get("role"), message_text(m.get("content"))) for m in body["messages"] if isinstance(m, dict)
    ]
    question = any(role == "user" and text and QUESTION in text for role, text in stored)
    answer = any(
        role == "assistant" and text and stored_answer_matches(text, turn.answer) for role, text in stored
    )
    if not (question and answer):
        missing = [
            name for name, found in (("the question", question), ("the streamed answer", answer)) if not found
        ]
        raise ProductFailure(
            Category.PRODUCT_GOLDEN_PATH,
            f"the thread does not hold {' and '.join(missing)}; stored roles: {[r for r, _ in stored]}",
            kind="not_stored",
        )
