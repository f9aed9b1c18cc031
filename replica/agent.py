"""One agent run per user message: the five golden-path events around a real PostgreSQL tool call.

No LLM: the answer is computed from the question and the thread's stored history, so a test can
check that it is about the question (its key words, simple arithmetic, the earlier message count).
`agent_mode == "broken"` stops after `tool_completed`, the product defect the suite must catch;
`ws_mode == "error_mid_turn"` crashes after `agent_thinking` (the session turns that into an error
frame and close 1011). Events leave in the bridge shape; the session reshapes them per profile.
"""

from __future__ import annotations

import asyncio
import operator
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from contract.events import ServerType
from contract.frames import AgentEvent
from contract.rest import Message
from replica import db, protocol
from replica.config import ServiceConfig

AGENT_NAME = "supervisor"
TOOL_NAME = "thread_history"
ASSISTANT_ROLE = "assistant"
USER_ROLE = "user"

Send = Callable[[dict[str, Any]], Awaitable[None]]

_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'-]*")
_ARITHMETIC = re.compile(r"(\d+(?:\.\d+)?)\s*([-+*/\u00d7])\s*(\d+(?:\.\d+)?)")
_STOPWORD_TEXT = (
    "a an and are as at be but by can could did do does for from had has have how i if in is it its "
    "me my of on or our please should so tell than that the their them then there these they this "
    "to us was we were what when where which who why will with would you your"
)
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())
MAX_KEYWORDS = 6
_OPERATORS: dict[str, Callable[[float, float], float]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "\u00d7": operator.mul,  # the multiplication sign
    "/": operator.truediv,
}


class AgentCrash(RuntimeError):
    """The agent's execution failed mid-turn: not reported as `agent_error`, the socket ends 1011."""


class PlatformRestart(Exception):
    """The platform stops the instance mid-turn (a new revision rolling out), raised by the session's
    emitter: not the agent's failure, so never reported as `agent_error`; the socket ends 1012."""


@dataclass(frozen=True)
class AgentRun:
    """Who asked what, and where the events and messages belong."""

    user_id: str
    thread_id: str
    run_id: str
    question: str


@dataclass(frozen=True)
class History:
    """The tool's result: what the thread held before this question."""

    earlier_count: int
    previous_questions: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "earlier_message_count": self.earlier_count,
            "previous_user_messages": self.previous_questions,
        }


def keywords(question: str) -> list[str]:
    """The question's content words, in order, without repeats."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(question):
        lowered = word.lower()
        if lowered not in _STOPWORDS and len(lowered) > 2 and not lowered.isdigit():
            seen.setdefault(lowered, None)
    return list(seen)[:MAX_KEYWORDS]


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:g}"


def arithmetic(question: str) -> list[str]:
    """Each `a op b` in the question, worked out ("2 + 3 = 5")."""
    results = []
    for left_raw, op, right_raw in _ARITHMETIC.findall(question):
        try:
            value = _OPERATORS[op](float(left_raw), float(right_raw))
        except ZeroDivisionError:
            results.append(f"{left_raw} / {right_raw} is undefined (division by zero)")
            continue
        results.append(f"{left_raw} {op} {right_raw} = {_number(value)}")
    return results


def compose_answer(question: str, history: History) -> str:
    """A non-empty answer about the question, grounded in the thread's history."""
    words = keywords(question)
    parts = [f"You asked about {', '.join(words)}." if words else f'You asked: "{question.strip()}".']
    parts += [f"{line}." for line in arithmetic(question)]
    noun = "message" if history.earlier_count == 1 else "messages"
    summary = f"This thread has {history.earlier_count} earlier {noun}"
    if history.previous_questions:
        summary += f'; your previous question was "{history.previous_questions[-1]}"'
    parts.append(summary + ".")
    return " ".join(parts)


async def read_history(pool: asyncpg.Pool, thread_id: str, current: Message) -> History:
    """The thread_history tool: everything stored in the thread before the current question."""
    earlier = await db.messages_before(pool, thread_id, current.id)
    return History(
        len(earlier), [m.content for m in earlier if m.role == USER_ROLE and isinstance(m.content, str)]
    )


def _event(run: AgentRun, event_type: ServerType, data: dict[str, Any], **top: Any) -> dict[str, Any]:
    return event(run.run_id, run.thread_id, run.user_id, event_type, data, **top)


def event(
    run_id: str, thread_id: str | None, user_id: str, event_type: ServerType, data: dict[str, Any], **top: Any
) -> dict[str, Any]:
    """One agent event in the bridge shape (details under `data`)."""
    frame = AgentEvent(
        type=event_type,
        run_id=run_id,
        thread_id=thread_id,
        user_id=user_id,
        agent_name=AGENT_NAME,
        data=data,
        **top,
    )
    return frame.model_dump(mode="json")


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def failure(exc: BaseException) -> dict[str, Any]:
    """`agent_error`'s data: a database that is down is named as such (SERVICE_UNAVAILABLE)."""
    if db.is_unavailable(exc):
        code, message = protocol.SERVICE_UNAVAILABLE, protocol.DATABASE_UNAVAILABLE
    else:
        code, message = protocol.INTERNAL_ERROR, str(exc)
    return {
        "status": "error",
        "error_code": code,
        "error_message": message,
        "error_context": type(exc).__name__,
        "message": "Agent failed",
    }


async def run_agent(pool: asyncpg.Pool, config: ServiceConfig, run: AgentRun, send: Send) -> None:
    """Persist the question, stream the five events, persist the answer; `agent_error` on failure."""
    try:
        await _run(pool, config, run, send)
    except (AgentCrash, PlatformRestart):
        raise
    except Exception as exc:  # the run failed: the client is told instead of left waiting
        await send(_event(run, ServerType.AGENT_ERROR, failure(exc)))


async def _run(pool: asyncpg.Pool, config: ServiceConfig, run: AgentRun, send: Send) -> None:
    started = time.monotonic()
    step = config.agent_step_delay_s
    question = await db.add_message(pool, run.thread_id, USER_ROLE, run.question, {"run_id": run.run_id})
    context = {"thread_id": run.thread_id, "run_id": run.run_id}
    await send(
        _event(
            run,
            ServerType.AGENT_STARTED,
            {"status": "started", "context": context, "message": "Agent started"},
        )
    )
    await asyncio.sleep(step)
    reasoning = f"Reading the thread's history to answer: {run.question[:120]}"
    thinking = {"reasoning": reasoning, "step_number": 1, "progress_percentage": 25, "status": "thinking"}
    await send(_event(run, ServerType.AGENT_THINKING, thinking))
    if config.ws_mode == "error_mid_turn":
        raise AgentCrash("Agent execution failed")
    await asyncio.sleep(step)
    params = {"thread_id": run.thread_id}
    executing = {"parameters": params, "status": "executing", "message": f"Running {TOOL_NAME}"}
    await send(_event(run, ServerType.TOOL_EXECUTING, executing, tool_name=TOOL_NAME))
    tool_started = time.monotonic()
    history = await read_history(pool, run.thread_id, question)
    result = history.as_dict()
    completed = {
        "result": result,
        "execution_time_ms": _ms_since(tool_started),
        "status": "completed",
        "message": "done",
    }
    await send(_event(run, ServerType.TOOL_COMPLETED, completed, tool_name=TOOL_NAME, results=result))
    if config.agent_mode == "broken":
        return  # the defect: the run stalls silently, the socket stays open
    await asyncio.sleep(step)
    answer = compose_answer(run.question, history)
    elapsed_ms = _ms_since(started)
    response = protocol.agent_response(answer, elapsed_ms)
    stored = protocol.stored_answer(config.profile, answer, response)
    await db.add_message(pool, run.thread_id, ASSISTANT_ROLE, stored, {"run_id": run.run_id})
    result = {"response": answer} if protocol.is_legacy(config.profile) else response
    final = {"status": "completed", "result": result, "execution_time_ms": elapsed_ms}
    await send(_event(run, ServerType.AGENT_COMPLETED, final | {"message": "Agent completed"}))
