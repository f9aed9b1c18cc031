"""Fixtures shared by the replica's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

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
