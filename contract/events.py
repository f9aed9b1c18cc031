"""WebSocket event names and close codes of the chat golden path."""

from enum import IntEnum, StrEnum


class ClientType(StrEnum):
    USER_MESSAGE = "user_message"
    PING = "ping"


class ServerType(StrEnum):
    CONNECTION_ESTABLISHED = "connection_established"
    AGENT_STARTED = "agent_started"
    AGENT_THINKING = "agent_thinking"
    TOOL_EXECUTING = "tool_executing"
    TOOL_COMPLETED = "tool_completed"
    AGENT_COMPLETED = "agent_completed"
    AGENT_ERROR = "agent_error"
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


class CloseCode(IntEnum):
    NORMAL = 1000
    GOING_AWAY = 1001
    UNSUPPORTED = 1003
    ABNORMAL = 1006
    POLICY_VIOLATION = 1008  # authentication failed
    INTERNAL_ERROR = 1011  # service not ready / init failure
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    BAD_GATEWAY = 1014


# Close codes that mean the infrastructure, not the product, dropped the connection.
INFRA_CLOSE_CODES = frozenset(
    {
        CloseCode.ABNORMAL,
        CloseCode.INTERNAL_ERROR,
        CloseCode.SERVICE_RESTART,
        CloseCode.TRY_AGAIN_LATER,
        CloseCode.BAD_GATEWAY,
    }
)
