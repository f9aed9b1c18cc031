"""`python -m replica.backend --port N`: the backend (REPLICA_* environment, see replica/config.py)."""

from replica.backend_app import create_app
from replica.config import ServiceConfig
from replica.ports import free_port
from replica.serve import serve


def listening_port(port: int, config: ServiceConfig) -> int:
    """--port (Cloud Run's PORT); with `listen="elsewhere"` another free port, as a build whose port is
    hard-coded: the app starts and serves there, and the platform's probe on PORT never gets an answer."""
    return free_port() if config.listen == "elsewhere" else port


def main(argv: list[str] | None = None) -> None:
    serve("backend", create_app, argv, port_of=listening_port)


if __name__ == "__main__":
    main()
