"""pytest fixtures: one real PostgreSQL per test session, a fresh database per test, a database of each engine."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloud.db import Database
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


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def each_engine_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """An empty database of each engine: an SQLite file, then a fresh PostgreSQL database."""
    url = tmp_path / "cases.db" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    database = Database.open(url)
    yield database
    database.close()
