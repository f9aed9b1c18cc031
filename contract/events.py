"""WebSocket frame types and close codes of the chat golden path (both protocol eras)."""

from enum import IntEnum, StrEnum


class ClientType(StrEnum):
    USER_MESSAGE = "user_message"
    PING = "ping"
    HANDSHAKE_ACKNOWLEDGED = "handshake_acknowledged"  # HEAD: the client's answer to handshake_response


# Client message types the server's router maps to `user_message` (websocket_core/types.py).
USER_MESSAGE_ALIASES = frozenset({"user_message", "chat_message", "message", "user", "user_input"})


class ServerType(StrEnum):
    CONNECTION_ESTABLISHED = "connection_established"
    HANDSHAKE_RESPONSE = "handshake_response"  # HEAD: carries the thread_id the client must acknowledge
    HANDSHAKE_COMPLETE = "handshake_complete"
    AGENT_STARTED = "agent_started"
    AGENT_THINKING = "agent_thinking"
    TOOL_EXECUTING = "tool_executing"
    TOOL_COMPLETED = "tool_completed"
    AGENT_COMPLETED = "agent_completed"
    AGENT_ERROR = "agent_error"
    SYSTEM_MESSAGE = "system_message"  # HEAD: wraps an agent event as {"event": <type>, "payload": {...}}
    PONG = "pong"
    HEARTBEAT = "heartbeat"
    ACK = "ack"
    ERROR = "error"
    ERROR_MESSAGE = "error_message"


# The five events a chat turn must produce, in canonical order
# (started -> thinking -> (executing -> completed)* -> completed).
GOLDEN_PATH_EVENTS: tuple[ServerType, ...] = (
    ServerType.AGENT_STARTED,
    ServerType.AGENT_THINKING,
    ServerType.TOOL_EXECUTING,
    ServerType.TOOL_COMPLETED,
    ServerType.AGENT_COMPLETED,
)
ERROR_EVENTS = frozenset({ServerType.AGENT_ERROR, ServerType.ERROR, ServerType.ERROR_MESSAGE})
# Frames that may arrive at any moment and say nothing about the turn.
HOUSEKEEPING_EVENTS = frozenset({ServerType.HEARTBEAT, ServerType.PONG, ServerType.ACK})


class CloseCode(IntEnum):
    NORMAL = 1000
    GOING_AWAY = 1001
    UNSUPPORTED = 1003
    ABNORMAL = 1006  # no close frame: the connection dropped
    POLICY_VIOLATION = 1008  # authentication failed
    INTERNAL_ERROR = 1011  # a server-side failure (SERVICE_INIT_FAILED, an unhandled exception)
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    BAD_GATEWAY = 1014
    TLS_HANDSHAKE = 1015


# Close codes that mean the infrastructure, not the product, ended the connection: dropped (1006), the
# platform restarting or shedding load (1012-1014), TLS (1015), and a server going away (1001) before
# the turn was done (a revision rolling out stops the old instance). 1011 is not one: the real server
# sends it after its own failure (HEAD's closure-code module counts it a server error).
INFRA_CLOSE_CODES = frozenset(
    {
        CloseCode.GOING_AWAY,
        CloseCode.ABNORMAL,
        CloseCode.SERVICE_RESTART,
        CloseCode.TRY_AGAIN_LATER,
        CloseCode.BAD_GATEWAY,
        CloseCode.TLS_HANDSHAKE,
    }
)
