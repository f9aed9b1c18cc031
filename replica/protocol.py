"""What each protocol era ("profile", see replica/config.py) puts on the wire.

Pure shapes, no I/O: health bodies, the backend's error envelope, the agent events in the bridge,
payload, flat and `system_message` shapes, WebSocket housekeeping frames and stored message content.
The agent and the session produce one logical event (the bridge shape); `agent_frames` turns it into
what the chosen era really sent, so the replica can serve every shape the suite must read.
"""

from __future__ import annotations

import secrets
import time
import traceback
import uuid
from typing import Any

from contract.events import ServerType
from contract.frames import ErrorMessage, HandshakeResponse, Heartbeat, iso_now, text_parts
from contract.rest import ErrorEnvelope

LEGACY = "legacy"
HEAD = "head"

# --- health ---------------------------------------------------------------------------------------

OK_BODY = {"status": "ok"}
READY_BODY = {"status": "ready"}
STAGING_ENVIRONMENT = "staging"
# The real readiness middleware refuses every plain GET under /ws (no Sec-WebSocket-Key) in staging.
WS_NOT_READY_MESSAGE = "WebSocket service is not ready. Enhanced uvicorn compatibility check failed."
WS_NOT_READY_RETRY_AFTER_S = 5


def is_legacy(profile: str) -> bool:
    return profile == LEGACY


def ws_not_ready_body() -> dict[str, Any]:
    """The 503 a plain HTTP GET under /ws gets at aebb16f, healthy service or not."""
    details = {
        "state": "uvicorn_compatibility_failed",
        "failed_services": [],
        "environment": STAGING_ENVIRONMENT,
        "retry_after_seconds": WS_NOT_READY_RETRY_AFTER_S,
    }
    return {"error": "service_not_ready", "message": WS_NOT_READY_MESSAGE, "details": details}


# --- the backend's error envelope (core/unified_error_handler.py) -------------------------------

SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
INTERNAL_ERROR = "INTERNAL_ERROR"
RECORD_NOT_FOUND = "DB_RECORD_NOT_FOUND"
DATABASE_UNAVAILABLE = "Database unavailable"
# The real handler recomputes the status from the code: any other status comes back as 500.
ERROR_CODES = {
    403: "AUTHORIZATION_FAILED",
    404: RECORD_NOT_FOUND,
    409: "RECORD_ALREADY_EXISTS",
    422: "VALIDATION_ERROR",
    503: SERVICE_UNAVAILABLE,
}
USER_MESSAGES = {
    SERVICE_UNAVAILABLE: "The service is temporarily unavailable. Please try again in a few moments.",
    RECORD_NOT_FOUND: "The requested item could not be found.",
    INTERNAL_ERROR: "An unexpected error occurred. Please try again later.",
}


def envelope_status(status_code: int) -> tuple[int, str]:
    """(the status the real handler answers, its error_code) for an HTTP error status."""
    code = ERROR_CODES.get(status_code)
    return (status_code, code) if code else (500, INTERNAL_ERROR)


def error_envelope(
    status_code: int, error_code: str, message: str, exc: BaseException | None, request_id: str | None
) -> dict[str, Any]:
    """The envelope with the debug fields staging adds outside production (a stack trace)."""
    frames = traceback.extract_tb(exc.__traceback__) if exc is not None else traceback.extract_stack()[:-1]
    last = frames[-1] if frames else None
    lines = traceback.format_exception(exc) if exc is not None else traceback.format_list(frames)
    body = ErrorEnvelope(
        error_code=error_code,
        message=message,
        user_message=USER_MESSAGES.get(error_code, message),
        details={"status_code": status_code},
        trace_id=uuid.uuid4().hex,
        request_id=request_id or f"req_{uuid.uuid4().hex[:16]}",
        timestamp=iso_now(),
    ).model_dump()
    stack = [line.rstrip() for chunk in lines for line in chunk.splitlines() if line.strip()]
    return body | {
        "line_number": last.lineno if last else None,
        "source_file": last.filename if last else None,
        "stack_trace": stack,
    }


# --- WebSocket frames ---------------------------------------------------------------------------

MAIN_MODE_ERROR_REASON = "main mode error"
ROUTER_DEFECT_REASON = "main cleanup"
RESTART_REASON = "service restart"
MID_TURN_REASON = "Internal error"
READINESS_GUARD_REASON = "Service not ready: readiness guard failed"
DEMO_USER_ID = "demo-user-001"
DEMO_EMAIL = "demo@netrasystems.ai"


def heartbeat(connection_id: str, stats: dict[str, int]) -> dict[str, Any]:
    data = {"connection_id": connection_id, "timestamp": iso_now(), "stats": dict(stats)}
    return Heartbeat(data=data).model_dump(mode="json")


def main_mode_error() -> dict[str, Any]:
    """What the shipped aebb16f sent on every socket: an import that calls itself."""
    data = {
        "error_code": "CONNECTION_ERROR",
        "error_message": "WebSocket main mode failed: maximum recursion depth exceeded",
        "details": {"error_type": "RecursionError"},
    }
    return ErrorMessage(data=data).model_dump(mode="json", include={"type", "data", "timestamp"})


def flat_error(error_code: str, message: str, error_type: str) -> dict[str, Any]:
    """An `error_message` frame with its fields at top level (the handler's own failures)."""
    frame = ErrorMessage(error_code=error_code, error_message=message, details={"error_type": error_type})
    return frame.model_dump(mode="json", exclude_none=True)


def mid_turn_error() -> dict[str, Any]:
    return flat_error(INTERNAL_ERROR, "Agent execution failed", "RuntimeError")


def auth_failed() -> dict[str, Any]:
    return flat_error("AUTH_FAILED", "Authentication failed", "AuthenticationError")


def handshake_response(thread_id: str) -> dict[str, Any]:
    """HEAD's handshake offer; `session_token` is a credential: it is never logged."""
    frame = HandshakeResponse(
        thread_id=thread_id,
        run_id=f"run_{uuid.uuid4().hex}",
        request_id=f"req_{uuid.uuid4().hex[:16]}",
        session_token="sess_" + secrets.token_urlsafe(24),
    )
    return frame.model_dump(mode="json")


def handshake_complete(thread_id: str) -> dict[str, Any]:
    return {
        "type": ServerType.HANDSHAKE_COMPLETE,
        "thread_id": thread_id,
        "message": "Handshake complete: ready for messages",
        "timestamp": time.time(),
    }


# --- agent events -------------------------------------------------------------------------------

# Fields the bridge puts beside `data` that a `payload` carries too.
_BRIDGE_TOP = ("run_id", "thread_id", "user_id", "agent_name", "tool_name", "results")


def agent_response(answer: str, execution_time_ms: int) -> dict[str, Any]:
    """The response dict the real message processing returns (and stores as `str(response)`)."""
    return {"response": answer, "status": "completed", "execution_time_ms": execution_time_ms}


def stored_answer(profile: str, answer: str, response: dict[str, Any]) -> str:
    """The assistant text as stored: the answer (legacy) or the real build's `str(response)`."""
    return answer if is_legacy(profile) else str(response)


def message_content(profile: str, text: str) -> str | list[dict[str, Any]]:
    """A stored text as the era's thread service returns it: plain, or a list of text parts."""
    return text if is_legacy(profile) else text_parts(text)


def agent_frames(profile: str, event: dict[str, Any]) -> list[dict[str, Any]]:
    """The frames the era sends for one bridge-shaped agent event (duplicates included)."""
    if is_legacy(profile) or event["type"] == ServerType.AGENT_ERROR:
        return [event]
    if profile == HEAD:
        return [_system_message(event)]
    if event["type"] == ServerType.AGENT_STARTED:
        return [event, _payload_frame(event, {"thread_id": event["thread_id"], "run_id": event["run_id"]})]
    if event["type"] == ServerType.AGENT_COMPLETED:
        response = event["data"]["result"]
        return [_flat_completed(event), _payload_frame(event, response)]
    return [event]


def _payload_frame(event: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
    """The message-processing duplicate: `{"type": ..., "payload": {...}}`."""
    return {"type": event["type"], "payload": payload}


def _flat_completed(event: dict[str, Any]) -> dict[str, Any]:
    """The real `agent_completed`: flat, `final_response` the text, `result` kept as a dict."""
    response = event["data"]["result"]
    top = {k: event[k] for k in ("type", "run_id", "thread_id", "user_id", "agent_name", "timestamp")}
    return top | {"status": "completed", "final_response": response["response"], "result": response}


def _system_message(event: dict[str, Any]) -> dict[str, Any]:
    """HEAD's wrapper: the event's fields under `payload`, its type under `event`."""
    if event["type"] == ServerType.AGENT_COMPLETED:
        payload = {k: v for k, v in _flat_completed(event).items() if k not in ("type", "timestamp")}
    else:
        payload = {k: event[k] for k in _BRIDGE_TOP if k in event} | event.get("data", {})
    return {
        "type": ServerType.SYSTEM_MESSAGE,
        "event": event["type"],
        "payload": payload,
        "timestamp": time.time(),
    }
