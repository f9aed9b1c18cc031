"""The backend's deterministic startup (SMD): seven ordered phases, exit code 3 on failure."""

from enum import StrEnum


class StartupPhase(StrEnum):
    INIT = "init"
    DEPENDENCIES = "dependencies"
    DATABASE = "database"
    CACHE = "cache"
    SERVICES = "services"
    WEBSOCKET = "websocket"
    FINALIZE = "finalize"


PHASES: tuple[StartupPhase, ...] = tuple(StartupPhase)
STARTUP_FAILURE_EXIT_CODE = 3
