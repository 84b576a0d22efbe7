"""The small SQL layer: a database URL or path in; `?`-placeholder SQL run on SQLite or PostgreSQL out.

Our SQL is the subset both engines speak (TEXT, INTEGER, BIGINT, DOUBLE PRECISION, `INSERT ... ON
CONFLICT ... DO NOTHING/UPDATE`, `RETURNING` (SQLite 3.35+)). The one dialect difference we hit, the placeholder
style (`?` for sqlite3, `%s` for psycopg), is translated in `_translate`, the only place that knows it.
Append-only bulk rows go through `copy_rows`: PostgreSQL's binary COPY (a fraction of executemany's client
and server CPU per row), a plain executemany INSERT on SQLite. Inside `background_copies()` a transaction's
copies are sent by a helper thread while the caller goes on (the database works while Python decides).

Schema migrations are per component: `migrate(component, [sql_v1, sql_v2, ...])` applies the scripts
past the version recorded in `schema_version` for that component, each in one transaction, so the
registry and the incident layer can evolve their tables independently in one database.
"""

from __future__ import annotations

import importlib
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal, Self

Row = tuple[Any, ...]
Dialect = Literal["sqlite", "postgres"]

_SCHEMA_VERSION: Final = (
    "CREATE TABLE IF NOT EXISTS schema_version (component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
)


class DatabaseError(Exception):
    """A statement failed or the database could not be opened."""


class IntegrityError(DatabaseError):
    """A statement broke a constraint (duplicate key, missing foreign key, NOT NULL)."""


def _translate(sql: str, dialect: Dialect) -> str:
    """Return `sql` in the dialect's placeholder style (our SQL has no `?` or `%` inside literals)."""
    if dialect == "postgres":
        return sql.replace("%", "%%").replace("?", "%s")
    return sql


class _Behind:
    """The copies a transaction's owner thread queued for the helper thread, in order."""

    def __init__(self) -> None:
        self.owner = threading.get_ident()
        self.pending: list[Future[None]] = []
        self.error: BaseException | None = None  # the first copy that failed; later ones are skipped


class Database:
    """One connection with `execute`, `fetchone`, `fetchall` and `transaction()`; safe across threads."""

    def __init__(self, connection: Any, dialect: Dialect) -> None:
        self._conn = connection
        self.dialect: Dialect = dialect
        # One connection shared by the API's worker threads: the lock serializes statements, and a
        # transaction holds it from BEGIN to COMMIT so no other thread's statement lands inside it.
        self._lock = threading.RLock()
        self._depth = 0
        self._behind: _Behind | None = None
        self._copier: ThreadPoolExecutor | None = None
        self._types: dict[tuple[str, tuple[str, ...]], list[str]] = {}
        self._errors: tuple[type[Exception], type[Exception]] = (
            (sqlite3.Error, sqlite3.IntegrityError)
            if dialect == "sqlite"
            else (importlib.import_module("psycopg").Error, importlib.import_module("psycopg").IntegrityError)
        )

    @classmethod
    def open(cls, url: str | Path) -> Database:
        """Open `sqlite:///path`, a plain path (SQLite, WAL) or `postgresql://...` (needs psycopg 3)."""
        text = str(url)
        if text.startswith(("postgresql://", "postgres://")):
            try:
                psycopg = importlib.import_module("psycopg")
                conn = psycopg.connect(text, autocommit=True)
            except Exception as exc:  # ImportError or the driver's OperationalError
                raise DatabaseError(f"cannot open PostgreSQL database: {exc}") from exc
            return cls(conn, "postgres")
        path = text.removeprefix("sqlite:///") if text.startswith("sqlite:///") else text
        try:
            if path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: autocommit outside our explicit BEGIN ... COMMIT.
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            # Checkpoint every ~16 MB of WAL, not 4 MB: the incident intake's commits waited on checkpoint I/O
            # (about 10 us CPU and more wall time per alert). Committed data is as durable either way.
            conn.execute("PRAGMA wal_autocheckpoint=4000")
            conn.execute("PRAGMA foreign_keys=ON")
        except sqlite3.Error as exc:
            raise DatabaseError(f"cannot open SQLite database {path}: {exc}") from exc
        return cls(conn, "sqlite")

    def _run(
        self,
        sql: str,
        params: Sequence[Any] | None,
        many: Iterable[Sequence[Any]] | None = None,
        *,
        replan: bool = False,
    ) -> Any:
        base, integrity = self._errors
        try:
            cursor = self._conn.cursor()
            if many is not None:
                cursor.executemany(_translate(sql, self.dialect), list(many))
            elif replan and self.dialect == "postgres":
                cursor.execute(_translate(sql, self.dialect), tuple(params or ()), prepare=False)
            else:
                cursor.execute(_translate(sql, self.dialect), tuple(params or ()))
            return cursor
        except integrity as exc:
            raise IntegrityError(str(exc)) from exc
        except base as exc:
            raise DatabaseError(f"{exc} in: {sql.strip()[:200]}") from exc

    def execute(self, sql: str, params: Sequence[Any] = (), *, replan: bool = False) -> int:
        """Run one statement; return the number of rows it changed (`replan`: as for `fetchall`)."""
        with self._lock:
            self._catch_up()
            return int(self._run(sql, params, replan=replan).rowcount)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        """Run one statement for every parameter row; return the rows changed."""
        with self._lock:
            self._catch_up()
            return int(self._run(sql, None, rows).rowcount)

    def copy_rows(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]], conflict: str = "") -> int:
        """Append rows (values in `columns` order) to `table`; return the rows sent.

        PostgreSQL: one binary `COPY ... FROM STDIN`, typed by the columns' catalog types (looked up once), so
        a value must suit its column's type (an int for BIGINT, a str for TEXT). SQLite: an executemany INSERT.
        `conflict` (e.g. `ON CONFLICT (key) DO NOTHING`), for rows that are new but for rare exceptions: COPY
        has no ON CONFLICT, so when it breaks a unique key the rows are sent again as `INSERT ... conflict`
        (inside a savepoint in a transaction): the result is always that of the INSERT.
        """
        rows = list(rows)
        if not rows:
            return 0
        with self._lock:
            types = self._column_types(table, tuple(columns)) if self.dialect == "postgres" else []
            behind = self._behind
            if behind is not None and behind.owner == threading.get_ident():
                assert self._copier is not None
                behind.pending.append(self._copier.submit(self._copy_behind, behind, table, columns, rows, conflict))
                return len(rows)
            self._catch_up()
            self._copy_rows(table, columns, rows, conflict, types)
        return len(rows)

    def _copy_rows(
        self, table: str, columns: Sequence[str], rows: list[Sequence[Any]], conflict: str, types: list[str]
    ) -> None:
        """The work of `copy_rows`; the lock is held (by the caller, or by the owner `_copy_behind` serves)."""
        names = ", ".join(columns)
        insert = f"INSERT INTO {table} ({names}) VALUES ({', '.join('?' * len(columns))}) {conflict}"
        if self.dialect == "sqlite":
            self._run(insert, None, rows)
            return
        if not conflict:
            self._copy(table, columns, rows, types)
            return
        savepoint = self._depth > 0  # outside a transaction the COPY is one, and fails whole
        if savepoint:
            self._run("SAVEPOINT copy_rows", ())
        try:
            self._copy(table, columns, rows, types)
        except IntegrityError:
            if savepoint:
                self._run("ROLLBACK TO SAVEPOINT copy_rows", ())
            self._run(insert, None, rows)
        if savepoint:
            self._run("RELEASE SAVEPOINT copy_rows", ())

    def _copy_behind(
        self, behind: _Behind, table: str, columns: Sequence[str], rows: list[Sequence[Any]], conflict: str
    ) -> None:
        """In the helper thread: one queued copy, for the owner that holds the lock and waits before any
        other statement (so the connection is this thread's alone meanwhile); skipped after a failure."""
        if behind.error is not None:
            return
        try:
            self._copy_rows(table, columns, rows, conflict, self._column_types_cached(table, tuple(columns)))
        except BaseException as exc:
            behind.error = exc

    @contextmanager
    def background_copies(self) -> Iterator[None]:
        """Inside a transaction: this thread's `copy_rows` only queue their rows, and a helper thread sends them
        in order while this thread goes on; any other statement of this thread first waits for them.

        Leaving the block waits for every copy and raises the first failure (the transaction then rolls
        back). Other threads' statements wait for the transaction, as always. Outside a transaction, nested,
        or on SQLite the block changes nothing: SQLite works in this process, and its thread binding each
        row's values fought this one for the GIL (measured: the incident intake 10-25 % slower).
        """
        with self._lock:
            if not self._depth or self._behind is not None or self.dialect == "sqlite":
                yield
                return
            if self._copier is None:
                self._copier = ThreadPoolExecutor(1, thread_name_prefix="db-copies")
            self._behind = _Behind()
            try:
                yield
                self._catch_up()
            finally:
                behind, self._behind = self._behind, None
                for future in behind.pending:  # on an error too: the connection must be idle for ROLLBACK
                    future.result()

    def let_copies_run(self) -> None:
        """Give `background_copies`' helper thread the GIL now if it has a copy to send.

        Python hands the GIL to another thread only every switch interval (5 ms): a caller that decides in
        small steps calls this between them, so the copies reach the database sooner and it works meanwhile.
        """
        behind = self._behind
        if behind is not None and behind.pending and not behind.pending[-1].done():
            time.sleep(0)

    def _catch_up(self) -> None:
        """Wait for this thread's queued copies (the lock is held); raise the first failure."""
        behind = self._behind
        if behind is None or behind.owner != threading.get_ident():
            return
        pending, behind.pending = behind.pending, []
        for future in pending:
            future.result()
        if behind.error is not None:
            error, behind.error = behind.error, None
            raise error

    def _copy(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], types: list[str]) -> None:
        """Send `rows` in one binary COPY of column `types` (PostgreSQL; the caller holds the lock)."""
        base, integrity = self._errors
        try:
            cursor = self._conn.cursor()
            with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(types)
                for row in rows:
                    copy.write_row(row)
        except integrity as exc:
            raise IntegrityError(str(exc)) from exc
        except (base, TypeError, ValueError, OverflowError) as exc:  # the last three: a value its type refuses
            raise DatabaseError(f"{exc} in: COPY {table}") from exc

    def _column_types_cached(self, table: str, columns: tuple[str, ...]) -> list[str]:
        """Return `_column_types` as cached by the owner before it queued a copy ([] for SQLite)."""
        return self._types.get((table, columns), [])

    def _column_types(self, table: str, columns: tuple[str, ...]) -> list[str]:
        """Return the PostgreSQL type names of `columns` of `table` (cached: our tables change only by migration)."""
        key = (table, columns)
        found = self._types.get(key)
        if found is None:
            rows = self.fetchall(
                "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                "WHERE attrelid = ?::regclass AND attnum > 0 AND NOT attisdropped",
                (table,),
            )
            kinds = {str(name): str(kind) for name, kind in rows}
            missing = [c for c in columns if c not in kinds]
            if missing:
                raise DatabaseError(f"table {table} has no column(s) {', '.join(missing)}")
            found = self._types[key] = [kinds[c] for c in columns]
        return found

    def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        """Return the first row of a query, or None."""
        with self._lock:
            self._catch_up()
            row = self._run(sql, params).fetchone()
        return None if row is None else tuple(row)

    def fetchall(self, sql: str, params: Sequence[Any] = (), *, replan: bool = False) -> list[Row]:
        """Return every row of a query; `replan`: plan it for these parameters on every run.

        PostgreSQL prepares a query run often and may settle on one generic plan, made for the table's size
        then: a lookup of many keys (`= ANY(?)`) planned at a thousand rows scans the table when it has a million.
        `replan` sends it unprepared (parsed and planned each run, a few µs of server CPU).
        """
        with self._lock:
            self._catch_up()
            return [tuple(r) for r in self._run(sql, params, replan=replan).fetchall()]

    @contextmanager
    def transaction(self) -> Iterator[Database]:
        """Run the block in one transaction (nested blocks join the outer one); roll back on error."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self
                finally:
                    self._depth -= 1
                return
            # IMMEDIATE takes SQLite's write lock up front, so two writers never deadlock on upgrade.
            self._run("BEGIN IMMEDIATE" if self.dialect == "sqlite" else "BEGIN", ())
            self._depth = 1
            try:
                yield self
            except BaseException:
                self._depth = 0
                self._run("ROLLBACK", ())
                raise
            self._depth = 0
            self._run("COMMIT", ())

    def version(self, component: str) -> int:
        """Return the schema version applied for `component` (0 when none)."""
        self.execute(_SCHEMA_VERSION)
        row = self.fetchone("SELECT version FROM schema_version WHERE component = ?", (component,))
        return 0 if row is None else int(row[0])

    def migrate(self, component: str, migrations: Sequence[str]) -> int:
        """Apply the migrations of `component` not applied yet, each atomically; return the new version."""
        with self._lock:
            current = self.version(component)
            if current > len(migrations):
                raise DatabaseError(f"{component} schema v{current} is newer than this code (v{len(migrations)})")
            self._types.clear()  # a migration may change the columns `copy_rows` typed
            for number, script in enumerate(migrations[current:], start=current + 1):
                with self.transaction():
                    # Our migration scripts have no `;` inside literals, so a split is a safe statement list.
                    for statement in filter(str.strip, script.split(";")):
                        self.execute(statement)
                    self.execute(
                        "INSERT INTO schema_version (component, version) VALUES (?, ?) "
                        "ON CONFLICT (component) DO UPDATE SET version = excluded.version",
                        (component, number),
                    )
            return len(migrations)

    def close(self) -> None:
        """Close the connection (and the copies' helper thread)."""
        with self._lock:
            if self._copier is not None:
                self._copier.shutdown()
            self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
