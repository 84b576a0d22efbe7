"""The incident schema's PostgreSQL-only migration (room for in-place updates of cases) on both engines."""

from __future__ import annotations

import pytest

from cloud.db import Database
from cloud.incidents.model import evolve
from cloud.incidents.store import MIGRATIONS, CaseStore, migrations
from tests.incidents.incidents_rig import CENTER, T0, engine
from tests.incidents.test_incidents_store_copy import envelope
from tests.support.postgres import Postgres


@pytest.fixture
def db(each_engine_db: Database) -> Database:
    """An empty database of each engine."""
    return each_engine_db


def test_both_engines_count_the_same_migrations() -> None:
    """SQLite gets a no-op where PostgreSQL gets its own script, so both reach one schema version number."""
    sqlite, postgres = migrations("sqlite"), migrations("postgres")
    assert postgres == MIGRATIONS
    assert len(sqlite) == len(MIGRATIONS)
    assert [a for a, b in zip(sqlite, postgres, strict=True) if a != b] == ["SELECT 1"]


def test_an_older_database_migrates_and_keeps_its_cases(db: Database) -> None:
    """A database one migration behind reaches the current version with its rows; PostgreSQL's cases get room."""
    db.migrate("incidents", migrations(db.dialect)[:-1])
    db.execute("INSERT INTO incident_keys (key, case_id, status, updated_ms) VALUES ('k', 7, 'firing', ?)", (T0,))
    store = CaseStore(db)
    assert db.version("incidents") == len(MIGRATIONS)
    assert store.key_cases(["k"]) == {"k": 7}
    if db.dialect == "postgres":
        row = db.fetchone("SELECT reloptions FROM pg_class WHERE relname = 'incident_cases'")
        assert row is not None
        assert "fillfactor=70" in list(row[0])


def hot_updates(url: str, fillfactor: int) -> tuple[int, int]:
    """Open 40 cases by COPY in a table of `fillfactor`, join every 4th; return (HOT updates, updates)."""
    db = Database.open(url)
    try:
        eng = engine(db)
        db.execute(f"ALTER TABLE incident_cases SET (fillfactor = {fillfactor})")
        eng.handle("网关-1", envelope(40))
        store = eng.store
        read = sorted(store.get_many(c.id for c in eng.cases(CENTER, limit=100)).values(), key=lambda c: c.id)[::4]
        joined = [
            evolve(c, alert_count=c.alert_count + 1, last_alert_ms=T0 + 999, updated_ms=c.updated_ms + 1) for c in read
        ]
        with store.transaction():
            store.update_many(list(zip(joined, read, strict=True)))
            row = db.fetchone("SELECT pg_stat_get_xact_tuples_hot_updated('incident_cases'::regclass)")
        assert store.get_many(c.id for c in read) == {c.id: c for c in joined}
        assert row is not None
        return int(row[0]), len(read)
    finally:
        db.close()


@pytest.mark.integration
def test_an_alert_joining_a_case_updates_it_in_place_on_postgres(postgres_server: Postgres) -> None:
    """Writing only columns no index holds (as a join does) is a HOT update in the migrated table, not in a full one."""
    hot, updated = hot_updates(postgres_server.database(), 70)
    assert hot == updated == 10
    hot_before, _ = hot_updates(postgres_server.database(), 100)
    assert hot_before < updated // 2
