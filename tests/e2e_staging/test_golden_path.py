"""The golden path: login -> token accepted -> WebSocket chat -> five events -> AI answer -> stored.

The steps share one login and one chat turn (module fixtures) and stay on one xdist worker, in
order; each test then asserts one outcome of that journey.
"""

from __future__ import annotations

import allure
import pytest

from contract.identity import AUTH_SERVICE
from harness.classify import Expect
from harness.errors import ProductFailure
from harness.staging import Login, Staging
from harness.taxonomy import Category
from harness.ws import Turn, validate_turn

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
def test_login_token_is_accepted_by_the_auth_service(staging: Staging, login: Login) -> None:
    body = staging.check(
        "auth",
        "/auth/validate",
        Expect(keys=("valid",), target="auth", auth_endpoint=True),
        what="validate the login token (POST /auth/validate)",
        method="POST",
        json={"token": login.access_token},
    )
    if body["valid"] is not True:
        raise ProductFailure(Category.PRODUCT_AUTH, f"the auth service rejects its own fresh token: {body}")


@allure.story("Login")
def test_profile_matches_the_logged_in_user(staging: Staging, login: Login) -> None:
    body = staging.check(
        "auth",
        "/auth/me",
        Expect(keys=("email",), target="auth", auth_endpoint=True, service=AUTH_SERVICE),
        what="profile (GET /auth/me)",
        headers=login.bearer,
    )
    assert body["email"] == staging.settings.test_email, (
        f"/auth/me is {body['email']!r}, logged in as another user"
    )


@allure.story("Chat")
def test_chat_turn_delivers_the_five_events_and_an_answer_about_the_question(turn: Turn) -> None:
    validate_turn(turn, QUESTION)


@allure.story("Persistence")
def test_assistant_answer_is_stored_in_the_thread(staging: Staging, login: Login, turn: Turn) -> None:
    if not turn.thread_id or not turn.answer:
        raise ProductFailure(
            Category.PRODUCT_GOLDEN_PATH,
            f"no answer to look for in the thread (thread_id={turn.thread_id!r}, events: {turn.sequence()})",
        )
    body = staging.check(
        "backend",
        f"/api/threads/{turn.thread_id}/messages",
        Expect(keys=("messages",), target="backend"),
        what="thread messages (GET /api/threads/{id}/messages)",
        headers=login.bearer,
    )
    stored = [(m.get("role"), m.get("content")) for m in body["messages"]]
    if ("assistant", turn.answer) not in stored or ("user", QUESTION) not in stored:
        raise ProductFailure(
            Category.PRODUCT_GOLDEN_PATH,
            f"the thread does not hold the question and the streamed answer; stored roles: {[r for r, _ in stored]}",
        )
