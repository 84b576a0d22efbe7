"""The SQL layer: placeholders, transactions, integrity errors and per-component migrations on SQLite."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from cloud.db import Database, DatabaseError, IntegrityError, _translate

SCHEMA = ["CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER NOT NULL)", "ALTER TABLE t ADD COLUMN note TEXT"]


def test_placeholders_are_translated_only_for_postgres() -> None:
    """`?` stays for sqlite3 and becomes `%s` for psycopg, with literal `%` escaped."""
    sql = "SELECT * FROM t WHERE k = ? AND v LIKE '5%' AND v = ?"
    assert _translate(sql, "sqlite") == sql
    assert _translate(sql, "postgres") == "SELECT * FROM t WHERE k = %s AND v LIKE '5%%' AND v = %s"


def test_migrations_apply_once_in_order_and_survive_reopen(tmp_path: Path) -> None:
    """A component's scripts run past its recorded version only; reopening applies nothing twice."""
    with Database.open(tmp_path / "a.db") as db:
        assert db.migrate("demo", SCHEMA[:1]) == 1
        assert db.migrate("demo", SCHEMA) == 2
        assert db.migrate("other", []) == 0
        db.execute("INSERT INTO t (k, v, note) VALUES (?, ?, ?)", ("a", 1, "x"))
    with Database.open(f"sqlite:///{tmp_path / 'a.db'}") as db:
        assert db.migrate("demo", SCHEMA) == 2
        assert db.fetchall("SELECT k, v, note FROM t") == [("a", 1, "x")]
        with pytest.raises(DatabaseError, match="newer than this code"):
            db.migrate("demo", SCHEMA[:1])


def _insert_then_fail(db: Database) -> None:
    with db.transaction():
        db.execute("INSERT INTO t (k, v) VALUES (?, ?)", ("a", 1))
        with db.transaction():
            db.execute("INSERT INTO t (k, v) VALUES (?, ?)", ("b", 2))
        raise RuntimeError("boom")


def test_transaction_rolls_back_on_error_and_nested_blocks_join(tmp_path: Path) -> None:
    """An exception undoes the whole outer transaction, inner blocks included."""
    with Database.open(tmp_path / "b.db") as db:
        db.migrate("demo", SCHEMA)
        with pytest.raises(RuntimeError):
            _insert_then_fail(db)
        assert db.fetchone("SELECT COUNT(*) FROM t") == (0,)
        with db.transaction():
            assert db.executemany("INSERT INTO t (k, v) VALUES (?, ?)", [("a", 1), ("b", 2)]) == 2
        assert db.fetchall("SELECT k FROM t ORDER BY k") == [("a",), ("b",)]


def test_constraint_violations_raise_integrity_error_and_bad_sql_database_error(tmp_path: Path) -> None:
    """Driver errors are translated: duplicates to IntegrityError, syntax to DatabaseError."""
    with Database.open(tmp_path / "c.db") as db:
        db.migrate("demo", SCHEMA)
        db.execute("INSERT INTO t (k, v) VALUES (?, ?)", ("a", 1))
        with pytest.raises(IntegrityError):
            db.execute("INSERT INTO t (k, v) VALUES (?, ?)", ("a", 2))
        with pytest.raises(DatabaseError, match="SELEC"):
            db.execute("SELEC 1")


def test_threads_share_one_connection_without_interleaving_transactions(tmp_path: Path) -> None:
    """Four threads incrementing a counter in transactions lose no update."""
    with Database.open(tmp_path / "d.db") as db:
        db.migrate("demo", SCHEMA)
        db.execute("INSERT INTO t (k, v) VALUES ('n', 0)")

        def bump() -> None:
            for _ in range(50):
                with db.transaction():
                    (value,) = db.fetchone("SELECT v FROM t WHERE k = 'n'") or (0,)
                    db.execute("UPDATE t SET v = ? WHERE k = 'n'", (value + 1,))

        threads = [threading.Thread(target=bump) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert db.fetchone("SELECT v FROM t WHERE k = 'n'") == (200,)
