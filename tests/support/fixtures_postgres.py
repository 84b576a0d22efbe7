"""pytest fixtures: one real PostgreSQL per test session, a fresh database per test."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.postgres import Postgres, running_postgres


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Postgres]:
    """A PostgreSQL server started once for the session (initdb takes seconds)."""
    with tempfile.TemporaryDirectory(prefix="gridwatch-pg-") as tmp, running_postgres(Path(tmp) / "pg") as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: Postgres) -> str:
    """The URL of a fresh, empty database on the session's server."""
    return postgres_server.database()
