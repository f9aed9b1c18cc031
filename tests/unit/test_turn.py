"""Pure rules of one chat turn (`harness.turn`): is an answer about its question, and does the stored
assistant text hold the streamed answer (the real build stores `str(response)`, a Python repr)."""

from __future__ import annotations

import pytest

from harness.turn import is_about, stored_answer_matches

pytestmark = pytest.mark.unit

QUOTED = "It's \"us-central1\": the staging database's region.\nSecond line, tab\there."


@pytest.mark.parametrize(
    ("question", "answer", "about"),
    [
        ("What is 2+2?", "4", True),
        ("What is 6 x 7?", "It is 42.", True),
        ("What is 2+2?", "5", False),
        ("Summarise the staging incidents", "Two incidents hit staging.", True),
        ("Summarise the staging incidents", "Hello there!", False),
        ("Hi?", "Anything at all", True),  # nothing to check against
    ],
)
def test_relevance_rule(question: str, answer: str, about: bool) -> None:
    assert is_about(question, answer) is about


@pytest.mark.parametrize(
    ("stored", "answer"),
    [
        ("The staging database runs in us-central1.", "The staging database runs in us-central1."),
        (
            str({"response": "The staging database runs in us-central1.", "status": "completed"}),
            "The staging database runs in us-central1.",
        ),
        (str({"response": QUOTED, "status": "completed", "execution_time_ms": 42}), QUOTED),
        (str({"response": "Line one\nLine two\n", "status": "completed"}), "Line one\nLine two\n"),
    ],
    ids=["plain", "repr", "repr-quotes-newlines-tab", "repr-trailing-newline"],
)
def test_stored_answer_matches(stored: str, answer: str) -> None:
    assert stored_answer_matches(stored, answer)


@pytest.mark.parametrize(
    "stored",
    [
        "The staging database runs in europe-west1.",
        str({"response": "The staging database runs in europe-west1.", "status": "completed"}),
        str({"response": QUOTED.replace("us-central1", "europe-west1"), "status": "completed"}),
        "",
    ],
    ids=["plain", "repr", "repr-quotes-newlines", "empty"],
)
def test_stored_answer_does_not_match_a_different_answer(stored: str) -> None:
    answer = QUOTED if "Second line" in stored else "The staging database runs in us-central1."
    assert not stored_answer_matches(stored, answer)
