"""`Database.background_copies`: queued copies land in order, before any later statement, or not at all."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloud.db import Database, IntegrityError

COLUMNS = ("id", "name")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A database of each engine with an empty table `t_bg (id BIGINT PRIMARY KEY, name TEXT)`."""
    url = tmp_path / "bg.db" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    database = Database.open(url)
    database.execute("CREATE TABLE t_bg (id BIGINT PRIMARY KEY, name TEXT NOT NULL)")
    yield database
    database.close()


def rows(start: int, n: int, name: str = "r") -> list[tuple[int, str]]:
    """Return `n` rows with ids from `start`."""
    return [(i, f"{name}-{i}") for i in range(start, start + n)]


def test_copies_then_other_statements_run_in_the_order_written(db: Database) -> None:
    """A read, an update and more copies after queued copies see exactly what was written before them."""
    with db.transaction(), db.background_copies():
        assert db.copy_rows("t_bg", COLUMNS, rows(0, 3000)) == 3000
        assert db.fetchone("SELECT COUNT(*) FROM t_bg") == (3000,)  # the read waited for the copy
        db.copy_rows("t_bg", COLUMNS, rows(3000, 10))
        assert db.execute("UPDATE t_bg SET name = 'updated' WHERE id >= 2990") == 20
        db.copy_rows("t_bg", COLUMNS, rows(5000, 5, "late"))
    assert db.fetchall("SELECT COUNT(*), SUM(CASE WHEN name = 'updated' THEN 1 ELSE 0 END) FROM t_bg") == [(3015, 20)]
    assert db.fetchone("SELECT name FROM t_bg WHERE id = 5004") == ("late-5004",)


def test_a_failed_copy_raises_and_rolls_the_whole_transaction_back(db: Database) -> None:
    """A duplicate key in a queued copy raises when the block ends; nothing of the transaction stays."""
    db.copy_rows("t_bg", COLUMNS, rows(0, 1))

    def transaction() -> None:
        with db.transaction(), db.background_copies():
            db.copy_rows("t_bg", COLUMNS, rows(100, 50))
            db.copy_rows("t_bg", COLUMNS, rows(0, 1))  # the id exists: this copy fails
            db.copy_rows("t_bg", COLUMNS, rows(200, 50))  # queued after the failure: never written

    with pytest.raises(IntegrityError):
        transaction()
    assert db.fetchall("SELECT id FROM t_bg") == [(0,)]
    with db.transaction(), db.background_copies():  # the connection is usable again
        db.copy_rows("t_bg", COLUMNS, rows(1, 2))
    assert db.fetchone("SELECT COUNT(*) FROM t_bg") == (3,)


def test_a_failed_copy_raises_at_the_next_statement(db: Database) -> None:
    """The owner's next statement after a failed copy raises that failure instead of running."""
    db.copy_rows("t_bg", COLUMNS, rows(7, 1))
    reached: list[str] = []

    def transaction() -> None:
        with db.transaction(), db.background_copies():
            db.copy_rows("t_bg", COLUMNS, rows(7, 1))
            reached.append("copy queued")
            db.execute("UPDATE t_bg SET name = 'never'")
            reached.append("update ran")

    with pytest.raises(IntegrityError):
        transaction()
    # SQLite has no background copies: its copy fails at once, before anything else.
    assert reached == ([] if db.dialect == "sqlite" else ["copy queued"])
    assert db.fetchall("SELECT name FROM t_bg") == [("r-7",)]


def test_another_threads_statement_waits_for_the_transaction(db: Database) -> None:
    """A reader in another thread sees none of an open transaction's copies, then all of them."""
    seen: list[object] = []
    started = threading.Event()

    def reader() -> None:
        started.set()
        seen.append(db.fetchone("SELECT COUNT(*) FROM t_bg"))

    thread = threading.Thread(target=reader)
    with db.transaction(), db.background_copies():
        db.copy_rows("t_bg", COLUMNS, rows(0, 500))
        thread.start()
        assert started.wait(10)
        db.copy_rows("t_bg", COLUMNS, rows(500, 500))
    thread.join(10)
    assert seen == [(1000,)]


def test_outside_a_transaction_copies_run_at_once(db: Database) -> None:
    """Without a transaction the block changes nothing: each copy is done when the call returns."""
    with db.background_copies():
        db.copy_rows("t_bg", COLUMNS, rows(0, 10))
        with pytest.raises(IntegrityError):
            db.copy_rows("t_bg", COLUMNS, rows(9, 1))
    assert db.fetchone("SELECT COUNT(*) FROM t_bg") == (10,)
