"""`Database.copy_rows` and `fetchall(replan=True)` on SQLite and a real PostgreSQL: same rows, same errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloud.db import Database, DatabaseError, IntegrityError

TABLE = """
CREATE TABLE t_copy (
    id BIGINT PRIMARY KEY,
    small INTEGER NOT NULL,
    ratio DOUBLE PRECISION,
    name TEXT NOT NULL,
    note TEXT,
    doc TEXT NOT NULL
)
"""
COLUMNS = ("id", "small", "ratio", "name", "note", "doc")
UPSERT = "ON CONFLICT (id) DO UPDATE SET name = excluded.name, note = excluded.note"
Values = tuple[int, int, float | None, str, str | None, str]
ROWS: list[Values] = [
    (2**62 + 7, 1, 0.1, "燃气泄漏 报警", None, json.dumps({"grid": "41010210100101", "n": [1, 2]}, ensure_ascii=False)),
    (-(2**63) + 1, 0, None, "", "tab\there, newline\nand \\ backslash", "{}"),
    (3, 1, -1e308, "emoji 🚒 and quote '\"", "", json.dumps(["a", None, 1.5])),
    (4, 2**31 - 1, 2.0, "plain", "NULL", "[]"),
]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A database of each engine with the empty `t_copy` table."""
    url = tmp_path / "copy.db" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    database = Database.open(url)
    database.execute(TABLE)
    yield database
    database.close()


def read(db: Database) -> list[tuple[object, ...]]:
    """Return the table's rows in id order."""
    return db.fetchall(f"SELECT {', '.join(COLUMNS)} FROM t_copy ORDER BY id")


def copy_in_transaction(db: Database, *batches: list[Values], fail: bool = False) -> None:
    """Copy each batch (with the upsert) in one transaction; raise RuntimeError at its end when `fail`."""
    with db.transaction():
        for rows in batches:
            db.copy_rows("t_copy", COLUMNS, rows, UPSERT if fail else "")
        if fail:
            raise RuntimeError("abort")


def test_copy_rows_round_trips_every_value(db: Database) -> None:
    """Big ints, floats, NULL, unicode, escapes and JSON text read back as written (no booleans: none are stored)."""
    assert db.copy_rows("t_copy", COLUMNS, iter(ROWS)) == len(ROWS)
    assert read(db) == sorted(ROWS, key=lambda r: r[0])
    assert json.loads(str(db.fetchone("SELECT doc FROM t_copy WHERE id = ?", (2**62 + 7,))[0]))["n"] == [1, 2]  # type: ignore[index]


def test_copy_rows_in_column_order_given(db: Database) -> None:
    """Columns may be named in any order and omitted ones (nullable) stay NULL."""
    db.copy_rows("t_copy", ("doc", "name", "small", "id"), [("{}", "x", 5, 10)])
    assert read(db) == [(10, 5, None, "x", None, "{}")]


def test_copy_rows_of_nothing_writes_nothing(db: Database) -> None:
    """An empty batch is no statement and no error."""
    assert db.copy_rows("t_copy", COLUMNS, []) == 0
    assert read(db) == []


def test_copy_rows_duplicate_without_conflict_raises_and_rolls_back(db: Database) -> None:
    """A duplicate key is an IntegrityError; the transaction leaves nothing and the connection stays usable."""
    db.copy_rows("t_copy", COLUMNS, ROWS[:1])
    with pytest.raises(IntegrityError):
        copy_in_transaction(db, ROWS[1:2], ROWS[:1])
    assert [r[0] for r in read(db)] == [ROWS[0][0]]
    db.copy_rows("t_copy", COLUMNS, ROWS[1:2])
    assert len(read(db)) == 2


@pytest.mark.parametrize("in_transaction", [True, False])
def test_copy_rows_with_conflict_acts_as_the_insert(db: Database, in_transaction: bool) -> None:
    """With `conflict`, rows that hit a key give what `INSERT ... ON CONFLICT` gives, in or out of a transaction."""
    db.copy_rows("t_copy", COLUMNS, ROWS[:2])
    changed = [(ROWS[0][0], 9, 9.0, "renamed", "n", "{}"), ROWS[2]]
    if in_transaction:
        with db.transaction():
            db.copy_rows("t_copy", COLUMNS, ROWS[3:], "ON CONFLICT (id) DO NOTHING")  # no conflict: plain COPY
            db.copy_rows("t_copy", COLUMNS, changed, UPSERT)
            db.execute("UPDATE t_copy SET small = 7 WHERE id = 4")  # the transaction is still usable
    else:
        db.copy_rows("t_copy", COLUMNS, ROWS[3:], "ON CONFLICT (id) DO NOTHING")
        db.copy_rows("t_copy", COLUMNS, changed, UPSERT)
        db.execute("UPDATE t_copy SET small = 7 WHERE id = 4")
    rows = {r[0]: r for r in read(db)}
    assert rows[ROWS[0][0]] == (ROWS[0][0], 1, 0.1, "renamed", "n", ROWS[0][5])  # updated by the upsert
    assert rows[3] == ROWS[2]
    assert rows[4][1] == 7
    assert len(rows) == 4
    db.copy_rows("t_copy", COLUMNS, ROWS[:1], "ON CONFLICT (id) DO NOTHING")
    assert {r[0]: r for r in read(db)}[ROWS[0][0]][3] == "renamed"


def test_copy_rows_rolls_back_with_its_transaction(db: Database) -> None:
    """Copied rows are part of the caller's transaction: an error after them removes them."""
    with pytest.raises(RuntimeError, match="abort"):
        copy_in_transaction(db, ROWS, fail=True)
    assert read(db) == []


def test_copy_rows_unknown_column_is_a_database_error(db: Database) -> None:
    """A column the table lacks is a DatabaseError on both engines."""
    with pytest.raises(DatabaseError):
        db.copy_rows("t_copy", ("id", "nope"), [(1, 2)])


def test_fetchall_replan_returns_the_same_rows(db: Database) -> None:
    """`replan` changes how PostgreSQL plans, never what a query returns (run past psycopg's prepare threshold)."""
    db.copy_rows("t_copy", COLUMNS, ROWS)
    sql = "SELECT id, name FROM t_copy WHERE small >= ? ORDER BY id"
    expected = sorted((r[0], r[3]) for r in ROWS if r[1] >= 1)
    for _ in range(8):
        assert db.fetchall(sql, (1,), replan=True) == db.fetchall(sql, (1,)) == expected


@pytest.mark.integration
def test_copy_rows_refuses_a_value_of_the_wrong_type_on_postgres(postgres_url: str) -> None:
    """Binary COPY is typed: a str for a BIGINT is a DatabaseError and the connection stays usable."""
    db = Database.open(postgres_url)
    try:
        db.execute(TABLE)
        with pytest.raises(DatabaseError), db.transaction():
            db.copy_rows("t_copy", COLUMNS, [("1", 1, None, "x", None, "{}")])
        db.copy_rows("t_copy", COLUMNS, ROWS[:1])
        assert len(read(db)) == 1
    finally:
        db.close()


@pytest.mark.integration
def test_copy_rows_sees_a_migrated_column_on_postgres(postgres_url: str) -> None:
    """The cached column types are dropped by `migrate`, so a column added by a migration can be copied."""
    db = Database.open(postgres_url)
    try:
        db.migrate("t", [TABLE])
        db.copy_rows("t_copy", COLUMNS, ROWS[:1])
        db.migrate("t", [TABLE, "ALTER TABLE t_copy ADD COLUMN extra BIGINT"])
        db.copy_rows("t_copy", (*COLUMNS, "extra"), [(*ROWS[1], 5)])
        assert db.fetchall("SELECT extra FROM t_copy ORDER BY id") == [(5,), (None,)]
    finally:
        db.close()
