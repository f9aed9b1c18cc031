"""Fixtures shared by the replica's tests."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from replica.cloud_logging_api import Entries, StandIn, isolated_environ, serving
from replica.postgres import PostgresServer


@pytest.fixture(scope="module")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """A real PostgreSQL for the services a module starts by hand."""
    server = PostgresServer(tmp_path_factory.mktemp("pg"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def cloud_logging_api(
    tmp_path: Path,
) -> Iterator[Callable[..., tuple[StandIn, dict[str, str]]]]:
    """Start a stand-in of Cloud Logging's entries.list for some entries (a list, a cloud-logging.json,
    or `suite_record(root)`); returns it and the full environment the real gcloud needs to read from it
    (and from nothing else): a fresh token, a fresh CLOUDSDK_CONFIG and HOME under tmp_path, nothing of
    the machine's own gcloud setup. Every stand-in started is stopped after the test."""
    with contextlib.ExitStack() as stack:
        count = 0

        def start(entries: Entries, **kwargs: Any) -> tuple[StandIn, dict[str, str]]:
            nonlocal count
            count += 1
            directory = tmp_path / f"cloud-logging-api-{count}"
            stand_in, env = stack.enter_context(serving(entries, directory, **kwargs))
            home = directory / "home"
            home.mkdir()
            return stand_in, isolated_environ({**env, "HOME": str(home)})

        yield start
