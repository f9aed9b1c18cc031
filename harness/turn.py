"""One chat turn: what a question produced on the socket, and the golden-path rules it must meet.

The golden path is the platform's own definition of a working chat: the five events (agent_started,
agent_thinking, tool_executing, tool_completed, agent_completed) in order, no error, and an answer
about the question. Events are read in every shape the real server sends (`contract.frames`);
heartbeats and other housekeeping frames may arrive at any time and are not events of the turn.
"""

from __future__ import annotations

import ast
import json
import operator
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from contract.events import ERROR_EVENTS, GOLDEN_PATH_EVENTS, ServerType
from contract.frames import answer_text, flatten, message_text
from harness.classify import Judgement, classify_ws
from harness.errors import E2EFailure
from harness.evidence import WsEvidence
from harness.redact import redact, redact_data
from harness.taxonomy import Category

EndedBy = Literal["completed", "error", "deadline", "closed"]
SEQUENCE_LIMIT = 60
_ERRORS = frozenset(str(t) for t in ERROR_EVENTS)


@dataclass
class Turn:
    """What one question produced, already redacted: enough to judge it and to attach it.

    `ended_by` says why collection stopped: `completed` (every agent_started matched by an
    agent_completed), `error` (an error event), `deadline`, or `closed` (the socket closed first).
    `thread_id`/`run_id` are what was sent, else the first seen.
    """

    deadline_s: float
    thread_id: str | None = None
    run_id: str | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    types: list[str] = field(default_factory=list)
    answer: str | None = None
    error_frame: dict[str, Any] | None = None
    close_code: int | None = None
    close_reason: str | None = None
    elapsed_s: float = 0.0
    ended_by: EndedBy = "deadline"
    garbage: list[str] = field(default_factory=list)
    resent: bool = False  # the message was sent again after a late handshake (it was lost)
    socket: WsEvidence | None = None

    @property
    def balanced(self) -> bool:
        """Every agent_started (outer run, sub-agents, duplicates) has its agent_completed."""
        done = self.types.count(ServerType.AGENT_COMPLETED)
        return done > 0 and done >= self.types.count(ServerType.AGENT_STARTED)

    def add_event(self, frame: Mapping[str, Any]) -> str:
        """Record an event frame (any shape); return its effective type. The answer always comes
        from the latest agent_completed that carries one."""
        flat = flatten(frame)
        kind = str(flat["type"])
        self.events.append(redact_data(flat))
        self.types.append(kind)
        for key in ("run_id", "thread_id"):
            value = flat.get(key)
            if isinstance(value, str) and getattr(self, key) is None:
                setattr(self, key, value)
        if kind == ServerType.AGENT_COMPLETED:
            text = answer_text(frame)
            # the latest that carries an answer wins; a blank duplicate never erases a real one
            if text is not None and (text.strip() or not self.answer):
                self.answer = redact(text)
        if kind in _ERRORS and self.error_frame is None:
            self.error_frame = redact_data(flat)
        return kind

    def sequence(self) -> str:
        """The event types in arrival order, for messages (long streams are cut)."""
        shown = self.types[:SEQUENCE_LIMIT]
        more = len(self.types) - len(shown)
        text = " > ".join(shown) or "(no events)"
        if more:
            text += f" > …(+{more})"
        if self.garbage:
            text += f" [+{len(self.garbage)} non-JSON frame(s)]"
        return text

    def to_dict(self) -> dict[str, Any]:
        return dict(redact_data(asdict(self)))

    def transcript_json(self) -> str:
        """The whole turn as indented JSON, for an Allure attachment."""
        return redact(json.dumps(self.to_dict(), indent=2, ensure_ascii=False, default=str))


# -- "the answer is about the question" -----------------------------------------------------------
# Deliberately simple, to catch canned or foreign answers, not to grade quality: the answer shares
# at least one meaningful word with the question (4+ letters, case-insensitive, not a stop word, a
# trailing plural "s" ignored), or it contains the result of a simple `a <op> b` in the question
# ("2+2" -> 4). A question without meaningful words or arithmetic cannot be checked and passes.
_WORD = re.compile(r"[a-z]{4,}")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_ARITHMETIC = re.compile(r"(-?\d+(?:\.\d+)?)\s*([-+*/x])\s*(-?\d+(?:\.\d+)?)")
_OPERATORS = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "x": operator.mul,
    "/": operator.truediv,
}
# fmt: off
STOP_WORDS = frozenset({
    "about", "above", "after", "again", "also", "answer", "been", "before", "being", "below", "between",
    "both", "could", "does", "doing", "down", "during", "each", "explain", "from", "further", "give",
    "have", "having", "hello", "help", "here", "into", "just", "know", "like", "make", "many", "more",
    "most", "much", "need", "only", "other", "over", "please", "question", "same", "should", "some",
    "such", "tell", "than", "thank", "thanks", "that", "their", "them", "then", "there", "these",
    "they", "this", "those", "through", "under", "until", "very", "want", "were", "what", "when",
    "where", "which", "while", "whom", "will", "with", "would", "your", "yours"
})
# fmt: on


def meaningful_words(text: str) -> set[str]:
    return {w[:-1] if len(w) > 4 and w.endswith("s") else w for w in _WORD.findall(text.lower())} - STOP_WORDS


def _number(text: str) -> str:
    value = float(text)
    return str(int(value)) if value.is_integer() else f"{value:g}"


def implied_numbers(question: str) -> set[str]:
    """Results of simple binary arithmetic in the question, normalised ("4", "2.5")."""
    results = set()
    for a, op, b in _ARITHMETIC.findall(question.lower()):
        if not (op == "/" and float(b) == 0):
            results.add(_number(str(_OPERATORS[op](float(a), float(b)))))
    return results


def is_about(question: str, answer: str) -> bool:
    """True if `answer` plausibly answers `question` (see the rule above)."""
    words, numbers = meaningful_words(question), implied_numbers(question)
    if not words and not numbers:
        return True
    answer_numbers = {_number(n) for n in _NUMBER.findall(answer)}
    return bool(words & meaningful_words(answer)) or bool(numbers & answer_numbers)


def stored_answer_matches(stored: str, answer: str) -> bool:
    """The stored assistant text holds the streamed answer. The real build stores `str(response)`
    (a Python repr of the response dict), so the answer may sit inside it, quoted and escaped."""
    if answer.strip() and answer.strip() in stored:
        return True
    try:
        value = ast.literal_eval(stored.strip())
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return False
    strings = _strings(value)
    return any(answer.strip() == s.strip() for s in strings)


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list | tuple):
        return [s for v in value for s in _strings(v)]
    return []


# -- the rules --------------------------------------------------------------------------------------


def _order_violation(turn: Turn) -> str | None:
    """The first ordering rule the turn breaks, or None (all five events are known present)."""
    types = turn.types

    def first(kind: str) -> int:
        return types.index(kind)

    started, thinking = first(ServerType.AGENT_STARTED), first(ServerType.AGENT_THINKING)
    executing = first(ServerType.TOOL_EXECUTING)
    final = len(types) - 1 - types[::-1].index(ServerType.AGENT_COMPLETED)
    if thinking < started:
        return f"agent_thinking (#{thinking + 1}) arrived before agent_started (#{started + 1})"
    if executing < thinking:
        return f"tool_executing (#{executing + 1}) arrived before agent_thinking (#{thinking + 1})"
    early = first(ServerType.TOOL_COMPLETED)
    if early < executing:
        return f"tool_completed (#{early + 1}) arrived before any tool_executing (#{executing + 1})"
    tool = turn.events[executing].get("tool_name")
    matched = next(
        (
            i
            for i in range(executing + 1, len(types))
            if types[i] == ServerType.TOOL_COMPLETED and turn.events[i].get("tool_name") in (None, tool)
        ),
        None,
    )
    if matched is None:
        return f"no tool_completed matches tool_executing (#{executing + 1}, tool {tool!r})"
    if final < matched:
        return f"final agent_completed (#{final + 1}) arrived before tool_completed (#{matched + 1})"
    return None


def missing_events(turn: Turn) -> list[str]:
    return [str(t) for t in GOLDEN_PATH_EVENTS if t not in turn.types]


def events_rule(turn: Turn) -> str | None:
    """The first rule about the events that the turn breaks (all five, in order), or None."""
    missing = missing_events(turn)
    if not turn.balanced and turn.ended_by == "deadline":
        gaps = f" (missing: {', '.join(missing)})" if missing else ""
        return f"no answer within {turn.deadline_s:g}s while the connection stayed up{gaps}"
    if missing:
        return f"missing event(s): {', '.join(missing)}"
    violation = _order_violation(turn)
    return f"order violated: {violation}" if violation else None


def answer_rule(turn: Turn, question: str) -> str | None:
    """The first rule about the answer that the turn breaks, or None."""
    if turn.answer is None:
        return "agent_completed without a readable answer (no final_response|response|result)"
    if not turn.answer.strip():
        return "agent_completed carried an empty answer"
    if not is_about(question, turn.answer):
        return (
            f"the answer is not about the question (no shared word or implied number): {turn.answer[:200]!r}"
        )
    return None


def socket_outcome(turn: Turn) -> Judgement | None:
    """What ended the turn early, through the one decision table: an error frame (a dependency the
    service names down is infrastructure; its own failure is the product) or a close."""
    if turn.socket is None or (turn.error_frame is None and turn.close_code is None):
        return None
    if turn.close_code is not None and turn.balanced and turn.error_frame is None:
        return None  # a close after a complete turn ends nothing
    outcome = classify_ws(turn.socket, error_frame=turn.error_frame, auth_step=False)
    return None if outcome.ok else outcome


def _failure(turn: Turn, category: Category, kind: str, message: str, question: str) -> E2EFailure:
    evidence = {"turn": turn.to_dict(), "question": redact(question)}
    return E2EFailure.of(
        category, f"{message}; sequence: {turn.sequence()}", evidence, kind=kind, service="backend"
    )


def socket_failure(turn: Turn, question: str, what: str) -> E2EFailure | None:
    """The failure of the socket that ended the turn early (see `socket_outcome`), or None."""
    outcome = socket_outcome(turn)
    if outcome is None or outcome.category is None:
        return None
    return _failure(turn, outcome.category, outcome.kind, f"{what}: {outcome.reason}", question)


def check_events(turn: Turn, question: str) -> None:
    """Raise unless the turn ended in order with all five events (the chat capability)."""
    failure = socket_failure(turn, question, "golden path")
    if failure is not None:
        raise failure
    rule = events_rule(turn)
    if rule:
        raise _failure(turn, Category.PRODUCT_GOLDEN_PATH, "events", f"golden path: {rule}", question)


def check_answer(turn: Turn, question: str) -> None:
    """Raise unless agent_completed carried a non-empty answer about the question; when there is
    none because the socket failed, that failure (one cause, one category) is the reason."""
    rule = answer_rule(turn, question)
    if rule is None:
        return
    failure = socket_failure(turn, question, "no answer") if turn.answer is None else None
    raise failure or _failure(turn, Category.PRODUCT_GOLDEN_PATH, "answer", f"golden path: {rule}", question)


def validate_turn(turn: Turn, question: str) -> None:
    """The whole golden path of one turn: events, then answer."""
    check_events(turn, question)
    check_answer(turn, question)


def thread_to_check(turn: Turn, question: str) -> str:
    """The precondition of the persistence check: the thread of a turn that got an answer. Without one,
    the socket's failure is the reason (one cause, one category), else the missing answer."""
    if turn.thread_id and turn.answer:
        return turn.thread_id
    failure = socket_failure(turn, question, "no answer") if turn.answer is None else None
    raise failure or _failure(
        turn,
        Category.PRODUCT_GOLDEN_PATH,
        "no_answer",
        f"nothing to look for in the thread (thread_id={turn.thread_id!r}, "
        f"answer={'yes' if turn.answer else 'none'})",
        question,
    )


def check_stored(turn: Turn, messages: Any, question: str) -> None:
    """Raise unless the thread's messages hold the question (as the user's) and the streamed answer
    (as the assistant's), in any of the shapes the real server stores content in."""
    stored = [
        (m.get("role"), message_text(m.get("content")))
        for m in (messages if isinstance(messages, list) else [])
        if isinstance(m, dict)
    ]
    asked = any(role == "user" and text and question in text for role, text in stored)
    answered = any(
        role == "assistant" and text and stored_answer_matches(text, turn.answer or "")
        for role, text in stored
    )
    if not (asked and answered):
        missing = [
            name for name, found in (("the question", asked), ("the streamed answer", answered)) if not found
        ]
        raise _failure(
            turn,
            Category.PRODUCT_GOLDEN_PATH,
            "not_stored",
            f"the thread does not hold {' and '.join(missing)}; stored roles: {[r for r, _ in stored]}",
            question,
        )
