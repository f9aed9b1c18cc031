"""The shared entry point of the replica's two services: parse `--port`, read the env, run uvicorn.

Both services listen on 127.0.0.1 only and log to stderr through the root logger (uvicorn's access
log included, one line per request); nothing they log carries a token or the bypass key. The
backend's startup evidence is the exception: its orchestrator, lifespan and web-server lines go to
stdout as JSON, as the real build writes them on Cloud Run (replica/cloud_logging.py).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

import uvicorn
from fastapi import FastAPI

from replica.cloud_logging import log_json_to_stdout
from replica.config import ServiceConfig

HOST = "127.0.0.1"
GRACEFUL_SHUTDOWN_S = 3
# Per service, the loggers whose lines are Cloud Logging evidence (JSON on stdout).
JSON_STDOUT_LOGGERS: dict[str, tuple[str, ...]] = {"backend": ("netra_backend", "uvicorn.error")}


def serve(
    name: str,
    app_factory: Callable[[ServiceConfig], FastAPI],
    argv: list[str] | None = None,
    port_of: Callable[[int, ServiceConfig], int] | None = None,
) -> None:
    """Run `app_factory(ServiceConfig.from_env())` on 127.0.0.1:--port until SIGTERM/SIGINT (or on
    the port `port_of(--port, config)` chooses: a service that listens where it should not)."""
    parser = argparse.ArgumentParser(
        prog=f"python -m replica.{name}", description=f"the replica's {name} service"
    )
    parser.add_argument("--port", type=int, required=True, help="TCP port on 127.0.0.1")
    args = parser.parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format=f"%(asctime)s {name} %(levelname)s %(name)s: %(message)s",
    )
    log_json_to_stdout(JSON_STDOUT_LOGGERS.get(name, ()))
    config = ServiceConfig.from_env()
    app = app_factory(config)
    uvicorn.run(
        app,
        host=HOST,
        port=port_of(args.port, config) if port_of else args.port,
        log_config=None,
        ws="websockets-sansio",
        lifespan="on",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )
