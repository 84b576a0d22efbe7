"""Case storage on the SQL layer: cases, their alert keys and alerts, audit, silences, outages, escalations.

Portable SQL (SQLite and PostgreSQL): BIGINT milliseconds, TEXT, `ON CONFLICT ... DO NOTHING`; PostgreSQL's
bulk lookups and upserts send their values as one JSON or array text, and one migration is its alone.
Ids come from a counter row, not from an engine's autoincrement. The `incident_cases` columns are the
fields of `Case` (tuples as JSON text) plus `is_open`; a new Case field needs a new migration.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from contextlib import contextmanager
from dataclasses import dataclass, fields
from functools import cache
from json.encoder import encode_basestring
from operator import attrgetter, itemgetter
from typing import Any, Final, TypeVar

import orjson

from cloud.db import Database, Dialect, Row
from cloud.incidents.model import OPEN_STATES, AuditEntry, Case, case_of
from cloud.incidents.roles import Actor, scope_sql

_T = TypeVar("_T")
_K = TypeVar("_K", str, int)  # a lookup's values: keys or ids
_FIELDS: Final = tuple(f.name for f in fields(Case))
_TUPLES: Final = frozenset(f.name for f in fields(Case) if str(f.type).startswith("tuple"))


def _sql_type(annotation: str) -> str:
    base = annotation.replace(" | None", "")
    kind = {"int": "BIGINT", "float": "DOUBLE PRECISION"}.get(base, "TEXT")
    return kind if annotation.endswith("| None") else f"{kind} NOT NULL"


_CASE_COLUMNS: Final = ",\n        ".join(f"{f.name} {_sql_type(str(f.type))}" for f in fields(Case) if f.name != "id")

_POSTGRES_ONLY: Final = "-- PostgreSQL only\n"  # how a migration script for PostgreSQL alone begins

MIGRATIONS: Final = [
    f"""
    CREATE TABLE incident_counters (name TEXT PRIMARY KEY, value BIGINT NOT NULL);
    CREATE TABLE incident_cases (
        id BIGINT PRIMARY KEY,
        {_CASE_COLUMNS},
        is_open INTEGER NOT NULL
    );
    CREATE INDEX incident_cases_state ON incident_cases (state, reported_ms);
    CREATE INDEX incident_cases_grid ON incident_cases (grid, is_open);
    CREATE INDEX incident_cases_area ON incident_cases (area, is_open);
    CREATE INDEX incident_cases_office ON incident_cases (office, is_open);
    CREATE INDEX incident_cases_department ON incident_cases (department, is_open);
    CREATE INDEX incident_cases_due ON incident_cases (is_open, due_ms);
    CREATE INDEX incident_cases_timer ON incident_cases (timer_ms);
    CREATE INDEX incident_cases_group ON incident_cases (group_key, is_open);
    CREATE INDEX incident_cases_dedup ON incident_cases (dedup_key, id);
    CREATE INDEX incident_cases_reported ON incident_cases (reported_ms, id);
    CREATE INDEX incident_cases_open_reported ON incident_cases (is_open, reported_ms, id);
    CREATE TABLE incident_keys (
        key TEXT PRIMARY KEY,
        case_id BIGINT NOT NULL,
        status TEXT NOT NULL,
        updated_ms BIGINT NOT NULL
    );
    CREATE INDEX incident_keys_case ON incident_keys (case_id);
    CREATE TABLE incident_alerts (
        fingerprint TEXT NOT NULL,
        state TEXT NOT NULL,
        ts_ms BIGINT NOT NULL,
        gateway TEXT NOT NULL,
        device TEXT NOT NULL,
        rule TEXT NOT NULL,
        severity INTEGER NOT NULL,
        quantity TEXT,
        value DOUBLE PRECISION,
        threshold DOUBLE PRECISION,
        part_id TEXT,
        grid TEXT,
        case_id BIGINT,
        disposition TEXT NOT NULL,
        PRIMARY KEY (fingerprint, state, ts_ms)
    );
    CREATE INDEX incident_alerts_case ON incident_alerts (case_id, ts_ms);
    CREATE INDEX incident_alerts_time ON incident_alerts (ts_ms);
    CREATE TABLE incident_audit (
        case_id BIGINT NOT NULL,
        seq INTEGER NOT NULL,
        at_ms BIGINT NOT NULL,
        actor TEXT NOT NULL,
        role TEXT NOT NULL,
        action TEXT NOT NULL,
        from_state TEXT NOT NULL,
        to_state TEXT NOT NULL,
        reason TEXT NOT NULL,
        evidence TEXT NOT NULL,
        detail TEXT NOT NULL,
        PRIMARY KEY (case_id, seq)
    );
    CREATE INDEX incident_audit_actor ON incident_audit (actor, at_ms);
    CREATE INDEX incident_audit_action ON incident_audit (action, at_ms);
    CREATE TABLE incident_silences (
        id BIGINT PRIMARY KEY,
        owner TEXT NOT NULL,
        reason TEXT NOT NULL,
        matchers TEXT NOT NULL,
        starts_ms BIGINT NOT NULL,
        ends_ms BIGINT NOT NULL,
        created_ms BIGINT NOT NULL,
        expired_ms BIGINT
    );
    CREATE INDEX incident_silences_end ON incident_silences (ends_ms);
    CREATE TABLE incident_emergencies (
        id BIGINT PRIMARY KEY,
        name TEXT NOT NULL,
        matchers TEXT NOT NULL,
        case_id BIGINT NOT NULL,
        starts_ms BIGINT NOT NULL,
        ends_ms BIGINT NOT NULL
    );
    CREATE TABLE incident_outages (
        gateway TEXT PRIMARY KEY,
        since_ms BIGINT NOT NULL,
        case_id BIGINT NOT NULL,
        devices TEXT NOT NULL
    );
    CREATE TABLE incident_escalations (
        case_id BIGINT NOT NULL,
        kind TEXT NOT NULL,
        at_ms BIGINT NOT NULL,
        fired_ms BIGINT NOT NULL,
        action TEXT NOT NULL,
        notify TEXT NOT NULL,
        PRIMARY KEY (case_id, kind, at_ms, action)
    );
    CREATE INDEX incident_escalations_fired ON incident_escalations (fired_ms)
    """,
    # No query filters on due_ms or on the audit's actor or action; each index cost every insert a b-tree write.
    """
    DROP INDEX incident_cases_due;
    DROP INDEX incident_audit_actor;
    DROP INDEX incident_audit_action
    """,
    # No query filters on area or office alone: the territory scope tests `? IN (grid, area, office,
    # district)`, which no index serves (district has none, so neither engine ORs index lookups; checked
    # with EXPLAIN QUERY PLAN for every role and filter), and CaseFilter has no area or office.
    """
    DROP INDEX incident_cases_area;
    DROP INDEX incident_cases_office
    """,
    # Entries of one case at one instant written together (a new case's report and automatic steps) share
    # one row: the first in the columns, the rest as JSON in `more`. Each row cost a heap and an index write.
    """
    ALTER TABLE incident_audit ADD COLUMN more TEXT NOT NULL DEFAULT ''
    """,
    # An alert joining a case writes only columns no index holds (updated_ms, alert_count, last_alert_ms…): with
    # room left in the row's page PostgreSQL updates it in place (HOT), without a new entry in each of the
    # table's indexes. Full pages (COPY fills them) made 9 of 10 such updates non-HOT: measured, a storm of
    # joins in calls of 1,000, 61-85 → 45 µs server CPU per alert and a 5x smaller table. SQLite updates in
    # place anyway.
    _POSTGRES_ONLY
    + """
    ALTER TABLE incident_cases SET (fillfactor = 70)
    """,
]


def migrations(dialect: Dialect) -> list[str]:
    """Return MIGRATIONS as `dialect` applies them: a script for PostgreSQL alone is a no-op elsewhere."""
    return [
        "SELECT 1" if dialect != "postgres" and script.startswith(_POSTGRES_ONLY) else script for script in MIGRATIONS
    ]


_INSERT_HEAD: Final = f"INSERT INTO incident_cases ({', '.join(_FIELDS)}, is_open)"
_CASE_ROW: Final = (*_FIELDS, "is_open")  # the columns of `_encode`'s rows
_AUDIT_ROW: Final = (
    "case_id",
    "seq",
    "at_ms",
    "actor",
    "role",
    "action",
    "from_state",
    "to_state",
    "reason",
    "evidence",
    "detail",
    "more",
)
_SELECT_AUDIT: Final = f"SELECT {', '.join(a for a in _AUDIT_ROW if a != 'seq')} FROM incident_audit"
_CHANGEABLE: Final = tuple(name for name in _FIELDS if name not in ("id", "updated_ms"))
_SELECT_CASE: Final = f"SELECT {', '.join(_FIELDS)} FROM incident_cases"


class StaleCase(Exception):
    """The case changed since it was read (another action won); read it again."""


@dataclass(frozen=True, slots=True)
class CaseFilter:
    """List filters (all optional, combined with AND)."""

    state: str | None = None
    open_only: bool = False
    kind: str | None = None
    category: str | None = None
    grid: str | None = None
    department: str | None = None
    reported_from_ms: int | None = None
    reported_to_ms: int | None = None
    supervised: bool | None = None


ALL: Final = CaseFilter()


@dataclass(frozen=True, slots=True)
class StoredAlert:
    """One alert as kept with its disposition: case, silenced, inhibited, absorbed, pending, uncategorized."""

    fingerprint: str
    state: str
    ts_ms: int
    gateway: str
    device: str
    rule: str
    severity: int
    quantity: str | None
    value: float | None
    threshold: float | None
    part_id: str | None
    grid: str | None
    case_id: int | None
    disposition: str


@dataclass(frozen=True, slots=True)
class Escalation:
    """One escalation event fired by the scheduler."""

    case_id: int
    kind: str
    at_ms: int
    fired_ms: int
    action: str
    notify: tuple[str, ...]


_ALERT_SET: Final = tuple(getattr(StoredAlert, f.name).__set__ for f in fields(StoredAlert))


def stored_alert(
    fingerprint: str,
    state: str,
    ts_ms: int,
    gateway: str,
    device: str,
    rule: str,
    severity: int,
    quantity: str | None,
    value: float | None,
    threshold: float | None,
    part_id: str | None,
    grid: str | None,
    case_id: int | None,
    disposition: str,
) -> StoredAlert:
    """Return `StoredAlert(...)` of every field, through its slots instead of the frozen `__init__` (~2x faster)."""
    row = object.__new__(StoredAlert)
    s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, s10, s11, s12, s13 = _ALERT_SET
    s0(row, fingerprint)
    s1(row, state)
    s2(row, ts_ms)
    s3(row, gateway)
    s4(row, device)
    s5(row, rule)
    s6(row, severity)
    s7(row, quantity)
    s8(row, value)
    s9(row, threshold)
    s10(row, part_id)
    s11(row, grid)
    s12(row, case_id)
    s13(row, disposition)
    return row


_ALERT_COLUMNS: Final = tuple(f.name for f in fields(StoredAlert))  # the columns of incident_alerts, in order
_alert_row = attrgetter(*_ALERT_COLUMNS)
_TUPLE_AT: Final = tuple(i for i, name in enumerate(_FIELDS) if name in _TUPLES)


def _column(value: Any) -> Any:
    return json.dumps(list(value)) if value else "[]"


def _json_strings(items: tuple[str, ...]) -> str:
    """Return `json.dumps(list(items), ensure_ascii=False)`, the same text, without the encoder's setup per call."""
    return "[" + ", ".join(map(encode_basestring, items)) + "]"


def _json_detail(detail: Any) -> str:
    """Return an audit detail (or entries holding details) as sorted-key JSON text (orjson: a tenth of
    json.dumps's CPU per entry)."""
    try:
        return orjson.dumps(detail, option=orjson.OPT_SORT_KEYS).decode()
    except orjson.JSONEncodeError:  # what orjson refuses (an int key, a huge int), json writes as it always did
        return json.dumps(detail, ensure_ascii=False, sort_keys=True)


_fields_of = itemgetter(*_FIELDS)


def _encode(case: Case) -> list[Any]:
    """Return a case's row of `incident_cases`: its fields (tuples as JSON) and `is_open`."""
    values = list(_fields_of(case.__dict__))
    for i in _TUPLE_AT:
        values[i] = _column(values[i])
    values.append(int(case.open))
    return values


def _decode(row: Row) -> Case:
    values = list(row)
    for i in _TUPLE_AT:
        values[i] = tuple(json.loads(values[i])) if values[i] != "[]" else ()
    return case_of(dict(zip(_FIELDS, values, strict=True)))


@cache
def _update_sql(columns: tuple[str, ...]) -> str:
    """Return the optimistic UPDATE of these columns (only the indexes over them are rewritten)."""
    sets = ", ".join(f"{name} = ?" for name in columns)
    return f"UPDATE incident_cases SET {sets} WHERE id = ? AND updated_ms = ? AND state = ?"


_PG_TYPES: Final = {
    **{f.name: _sql_type(str(f.type)).removesuffix(" NOT NULL") for f in fields(Case)},
    "is_open": "INTEGER",
}
_READ: Final = ("id", "updated_ms", "state")  # the columns an optimistic update checks
_AS_PYTHON: Final = {"BIGINT": int, "INTEGER": int, "DOUBLE PRECISION": float, "TEXT": str}


@cache
def _update_from_sql(columns: tuple[str, ...]) -> str:
    """Return the optimistic UPDATE of these columns for many cases at once, from arrays (PostgreSQL)."""
    sets = ", ".join(f"{name} = v.{name}" for name in columns)
    arrays = ", ".join(f"?::{_PG_TYPES[name]}[]" for name in (*columns, *_READ))
    names = ", ".join((*columns, "read_id", "read_updated_ms", "read_state"))
    return (
        f"UPDATE incident_cases AS c SET {sets} FROM unnest({arrays}) AS v({names}) "
        "WHERE c.id = v.read_id AND c.updated_ms = v.read_updated_ms AND c.state = v.read_state"
    )


def _arrays(columns: tuple[str, ...], rows: Sequence[Sequence[Any]]) -> list[list[Any]]:
    """Return the rows' values as one list per column, each of one Python type (psycopg refuses mixed lists)."""
    arrays = []
    for name, values in zip(columns, zip(*rows, strict=True), strict=True):
        kind = _AS_PYTHON[_PG_TYPES[name]]
        arrays.append([v if v is None or type(v) is kind else kind(v) for v in values])
    return arrays


def _audits(rows: Iterable[Row]) -> list[AuditEntry]:
    """Return the entries of audit rows in order: each row's own, then those packed in its `more`."""
    entries = []
    for case_id, at, actor, role, action, src, dst, reason, evidence, detail, more in rows:
        entries.append(
            AuditEntry(
                case_id, at, actor, role, action, src, dst, reason, tuple(json.loads(evidence)), json.loads(detail)
            )
        )
        if more:
            entries.extend(
                AuditEntry(case_id, at, p[0], p[1], p[2], p[3], p[4], p[5], tuple(p[6]), p[7]) for p in json.loads(more)
            )
    return entries


_PackKey = tuple[tuple[str, str, str, str, str, str, tuple[str, ...], int], ...]


def _packed(entries: Sequence[AuditEntry], texts: dict[_PackKey, str]) -> str:
    """Return the JSON of entries that follow a row's own at its instant ('' for none).

    `texts` memoizes within one call (by the detail dicts' ids, alive for the call): a new case's automatic
    steps repeat the same entries, sharing their detail dicts, case after case; their text is built once.
    """
    if not entries:
        return ""
    key = tuple(
        (e.actor, e.role, e.action, e.from_state, e.to_state, e.reason, e.evidence, id(e.detail)) for e in entries
    )
    text = texts.get(key)
    if text is None:
        packed = [
            [e.actor, e.role, e.action, e.from_state, e.to_state, e.reason, list(e.evidence), e.detail] for e in entries
        ]
        text = texts[key] = _json_detail(packed)
    return text


CHUNK: Final = 500  # values per IN (?, ...) list (SQLite): far below its parameter limit
PG_CHUNK: Final = 10_000  # values per lookup on PostgreSQL (one JSON parameter, no limit but memory)


def _chunks(items: Sequence[_T], size: int) -> Iterator[list[_T]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def _text_array(items: Iterable[str]) -> str:
    """Return PostgreSQL's text form of a `text[]` of `items`: each quoted, with `\\` and `"` escaped (any other
    character, a comma, brace or space among them, is literal inside the quotes)."""
    return "{" + ",".join(['"' + item.replace("\\", "\\\\").replace('"', '\\"') + '"' for item in items]) + "}"


def _int_array(items: Iterable[int]) -> str:
    """Return PostgreSQL's text form of a `bigint[]` of `items`."""
    return "{" + ",".join([str(int(item)) for item in items]) + "}"


def _marks(chunk: Sequence[Any]) -> str:
    return ", ".join("?" * len(chunk))


ID_BLOCK: Final = 64
ID_BLOCK_MAX: Final = 4096
ANALYZE_FROM: Final = 1000  # new cases before the statistics refresh (PostgreSQL)


class CaseStore:
    """The incident tables of one database."""

    def __init__(self, db: Database) -> None:
        self.db = db
        db.migrate("incidents", migrations(db.dialect))
        self._blocks: dict[str, tuple[int, int]] = {}
        self._block_sizes: dict[str, int] = {}
        self._analyzed = False  # whether this store has refreshed the statistics (PostgreSQL)
        self._since_analyze = 0

    @contextmanager
    def transaction(self) -> Iterator[CaseStore]:
        """Run the block in one transaction; on error forget reserved id blocks (their reservation rolled back)."""
        try:
            with self.db.transaction():
                yield self
        except BaseException:
            self._blocks.clear()
            raise

    def _insert(self, head: str, rows: Sequence[Sequence[Any]], tail: str = "") -> None:
        """Run `head VALUES (?, ...) tail` for every row, as one prepared statement (pipelined on PostgreSQL).

        Measured: multi-row VALUES statements cost psycopg far more client CPU than executemany's pipeline.
        """
        if rows:
            self.db.executemany(f"{head} VALUES ({_marks(rows[0])}) {tail}", rows)

    def _in(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """Return `column IN (?, ...)` and its parameters; on PostgreSQL a probe of the values as one JSON array.

        PostgreSQL: `column = ANY(ARRAY(SELECT jsonb_array_elements_text(?::jsonb)))`, the values (all str or
        all int) as one JSON text. Measured per value against `= ANY(?)` with a Python list: psycopg's list
        dumping cost ~6 µs of client CPU (orjson: ~0.1), and the planner, seeing a constant array of 100-1,000
        values, priced the index probes above a scan of the whole table until it held ~10-100k rows (a seq
        scan with a hashed ANY: 3x the server CPU of the probes); an array from a sub-select is priced as a
        few values, so the lookup stays on the index. Any character of a key travels as JSON escapes.
        """
        if self.db.dialect != "postgres":
            return f"{column} IN ({_marks(values)})", list(values)
        items = list(values)
        if items and isinstance(items[0], int):
            return f"{column} = ANY(ARRAY(SELECT CAST(jsonb_array_elements_text(?::jsonb) AS BIGINT)))", [
                orjson.dumps(items).decode()
            ]
        return f"{column} = ANY(ARRAY(SELECT jsonb_array_elements_text(?::jsonb)))", [orjson.dumps(items).decode()]

    def _chunks(self, items: Iterable[_K]) -> Iterator[list[_K]]:
        """Return the distinct values of `items`, sorted, in lists of at most one lookup's size."""
        return _chunks(sorted(set(items)), PG_CHUNK if self.db.dialect == "postgres" else CHUNK)

    def new_id(self, name: str) -> int:
        """Return a fresh id of counter `name`, reserving ids in blocks (ids are unique, not gap-free).

        A block is ID_BLOCK ids at first and twice the last one at each next reservation, up to
        ID_BLOCK_MAX: a quiet process leaves small gaps at a restart, a busy one (thousands of new cases
        in one call) reserves rarely.
        """
        nxt, end = self._blocks.get(name, (0, 0))
        if nxt >= end:
            size = self._block_sizes[name] = min(2 * self._block_sizes.get(name, ID_BLOCK // 2), ID_BLOCK_MAX)
            nxt = self.next_ids(name, size)
            end = nxt + size
        self._blocks[name] = (nxt + 1, end)
        return nxt

    def next_ids(self, name: str, count: int = 1) -> int:
        """Reserve `count` ids of counter `name`; return the first."""
        with self.db.transaction():
            row = self.db.fetchone(
                "INSERT INTO incident_counters (name, value) VALUES (?, ?) ON CONFLICT (name) "
                "DO UPDATE SET value = incident_counters.value + excluded.value RETURNING value",
                (name, count),
            )
        assert row is not None
        return int(row[0]) - count + 1

    def insert(self, case: Case) -> None:
        """Store a new case."""
        self._insert(_INSERT_HEAD, [_encode(case)])

    def insert_many(self, cases: Iterable[Case]) -> None:
        """Store new cases in one statement (a COPY on PostgreSQL)."""
        rows = list(map(_encode, cases))
        self.db.copy_rows("incident_cases", _CASE_ROW, rows)
        self._grown(len(rows))

    def _grown(self, cases: int) -> None:
        """On PostgreSQL, give the planner statistics once, when the case tables have grown from empty.

        With none, it takes each `= ANY(?)` lookup for a large part of the table and scans it (measured at 20k
        cases: 79 ms an envelope of 100, against 37 ms). Once it has them, the distinct-value fractions scale
        with the table (the intake's lookups are planned at each run: `replan`) and autovacuum refreshes them;
        an ANALYZE at every doubling was no faster and stalled the envelope behind it (0.9 s at 16k cases).
        """
        self._since_analyze += cases
        if self.db.dialect == "postgres" and not self._analyzed and self._since_analyze >= ANALYZE_FROM:
            self.db.execute("ANALYZE incident_cases, incident_keys, incident_alerts, incident_audit")
            self._analyzed = True

    def update(self, case: Case, read: Case) -> None:
        """Store `case` over `read`, the row as read (what differs is written); raise StaleCase if it changed."""
        if self._update([(case, read)]) != 1:
            raise StaleCase(f"case {case.id} changed since it was read")

    def update_many(self, pairs: Sequence[tuple[Case, Case]]) -> None:
        """Store each (case, read); raise StaleCase if any row is no longer what was read."""
        if pairs and self._update(pairs) != len(pairs):
            raise StaleCase(f"one of cases {sorted(c.id for c, _ in pairs)} changed since it was read")

    def _update(self, pairs: Sequence[tuple[Case, Case]]) -> int:
        """Write the columns each case changed since its read, one statement per set of columns; return rows hit."""
        groups: dict[tuple[str, ...], list[list[Any]]] = {}
        for case, read in pairs:
            new, old = case.__dict__, read.__dict__
            # updated_ms is always set (no index holds it), so a statement never has an empty SET.
            columns = ("updated_ms", *(n for n in _CHANGEABLE if new[n] != old[n]))
            values = [_column(new[n]) if n in _TUPLES else new[n] for n in columns]
            if case.open != read.open:
                columns = (*columns, "is_open")
                values.append(int(case.open))
            groups.setdefault(columns, []).append([*values, case.id, read.updated_ms, read.state])
        if self.db.dialect == "postgres":
            # One statement per set of columns, its values as arrays: executemany costs PostgreSQL (and
            # psycopg) a statement's overhead per row. Planned at each run: the join must stay on the id index.
            return sum(
                self.db.execute(_update_from_sql(columns), _arrays((*columns, *_READ), rows), replan=True)
                for columns, rows in groups.items()
            )
        return sum(self.db.executemany(_update_sql(columns), rows) for columns, rows in groups.items())

    def get(self, case_id: int) -> Case | None:
        """Return a case by id (no scope check: callers check `visible`)."""
        row = self.db.fetchone(f"{_SELECT_CASE} WHERE id = ?", (case_id,))
        return None if row is None else _decode(row)

    def cases(self, actor: Actor, flt: CaseFilter = ALL, *, limit: int = 100, offset: int = 0) -> list[Case]:
        """Return the cases `actor` may see that match `flt`, newest first."""
        where, params = self._where(actor, flt)
        rows = self.db.fetchall(
            f"{_SELECT_CASE} WHERE {where} ORDER BY reported_ms DESC, id DESC LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )
        return [_decode(r) for r in rows]

    def count(self, actor: Actor, flt: CaseFilter = ALL) -> int:
        """Return how many cases `actor` may see match `flt`."""
        where, params = self._where(actor, flt)
        row = self.db.fetchone(f"SELECT COUNT(*) FROM incident_cases WHERE {where}", params)
        return 0 if row is None else int(row[0])

    @staticmethod
    def _where(actor: Actor, flt: CaseFilter) -> tuple[str, list[Any]]:
        scope, scope_params = scope_sql(actor)
        clauses: list[str] = [scope]
        params: list[Any] = list(scope_params)
        for column, value in (
            ("state", flt.state),
            ("kind", flt.kind),
            ("category", flt.category),
            ("grid", flt.grid),
            ("department", flt.department),
        ):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if flt.open_only:
            clauses.append("is_open = 1")
        if flt.reported_from_ms is not None:
            clauses.append("reported_ms >= ?")
            params.append(flt.reported_from_ms)
        if flt.reported_to_ms is not None:
            clauses.append("reported_ms < ?")
            params.append(flt.reported_to_ms)
        if flt.supervised is not None:
            clauses.append("supervised > 0" if flt.supervised else "supervised = 0")
        return " AND ".join(clauses), params

    def cases_between(self, start_ms: int, end_ms: int) -> list[Case]:
        """Return every case reported in [start, end) (KPIs; no scope)."""
        rows = self.db.fetchall(
            f"{_SELECT_CASE} WHERE reported_ms >= ? AND reported_ms < ? ORDER BY id", (start_ms, end_ms)
        )
        return [_decode(r) for r in rows]

    def due_timers(self, now: int, limit: int = 1000) -> list[Case]:
        """Return open cases whose next timer is at or before `now`, earliest first."""
        rows = self.db.fetchall(
            f"{_SELECT_CASE} WHERE timer_ms IS NOT NULL AND timer_ms <= ? ORDER BY timer_ms, id LIMIT ?",
            (now, limit),
        )
        return [_decode(r) for r in rows]

    def open_in_group(self, group_key: str, since_ms: int) -> Case | None:
        """Return the newest open case of a group whose last alert is at or after `since_ms`."""
        row = self.db.fetchone(
            f"{_SELECT_CASE} WHERE group_key = ? AND is_open = 1 AND last_alert_ms >= ? ORDER BY id DESC LIMIT 1",
            (group_key, since_ms),
        )
        return None if row is None else _decode(row)

    def get_many(self, case_ids: Iterable[int]) -> dict[int, Case]:
        """Return cases by id (no scope check), in one query per chunk of ids."""
        found: dict[int, Case] = {}
        for chunk in self._chunks(case_ids):
            where, params = self._in("id", chunk)
            rows = self.db.fetchall(f"{_SELECT_CASE} WHERE {where}", params, replan=True)
            found.update((c.id, c) for c in map(_decode, rows))
        return found

    def open_in_groups(self, group_keys: Iterable[str], since_ms: int) -> list[Case]:
        """Return every open case of these groups whose last alert is at or after `since_ms`."""
        cases: list[Case] = []
        for chunk in self._chunks(group_keys):
            where, params = self._in("group_key", chunk)
            rows = self.db.fetchall(
                f"{_SELECT_CASE} WHERE {where} AND is_open = 1 AND last_alert_ms >= ?", [*params, since_ms], replan=True
            )
            cases.extend(map(_decode, rows))
        return cases

    def last_cases_of(self, dedup_keys: Iterable[str]) -> dict[str, int]:
        """Return the newest case id first opened by each of these keys (keys with none are absent)."""
        found: dict[str, int] = {}
        for chunk in self._chunks(dedup_keys):
            where, params = self._in("dedup_key", chunk)
            rows = self.db.fetchall(
                f"SELECT dedup_key, MAX(id) FROM incident_cases WHERE {where} GROUP BY dedup_key", params, replan=True
            )
            found.update((str(k), int(i)) for k, i in rows)
        return found

    def last_case_of(self, dedup_key: str) -> int | None:
        """Return the newest case first opened by `dedup_key` (for recurrence links)."""
        row = self.db.fetchone(
            "SELECT id FROM incident_cases WHERE dedup_key = ? ORDER BY id DESC LIMIT 1", (dedup_key,)
        )
        return None if row is None else int(row[0])

    # Audit.

    def append_audit(self, entries: Sequence[AuditEntry], *, fresh: bool | AbstractSet[int] = False) -> None:
        """Append audit entries (in order) to their cases' trails.

        `fresh`: True when none of the cases has a trail yet, or the ids of those that have none.
        """
        ids = {e.case_id for e in entries}
        new = ids if fresh is True else ids & fresh if fresh else set()
        next_seq = dict.fromkeys(new, 0)
        for chunk in self._chunks(ids - new):
            next_seq.update(dict.fromkeys(chunk, 0))
            where, params = self._in("case_id", chunk)
            rows = self.db.fetchall(
                f"SELECT case_id, MAX(seq) FROM incident_audit WHERE {where} GROUP BY case_id", params, replan=True
            )
            next_seq.update((int(c), int(n)) for c, n in rows)
        rows = []
        details: dict[int, str] = {}  # by id: entries of one chain share their detail dicts
        packed: dict[_PackKey, str] = {}
        at = 0
        while at < len(entries):
            entry = entries[at]
            case_id, at_ms = entry.case_id, entry.at_ms
            end = at + 1  # the run of this case's entries at this instant, stored as one row
            while end < len(entries) and entries[end].case_id == case_id and entries[end].at_ms == at_ms:
                end += 1
            seq = next_seq[case_id] = next_seq[case_id] + 1
            detail = entry.detail
            text = details.get(id(detail))
            if text is None:
                text = details[id(detail)] = _json_detail(detail) if detail else "{}"
            evidence = entry.evidence
            rows.append(
                (
                    case_id,
                    seq,
                    at_ms,
                    entry.actor,
                    entry.role,
                    entry.action,
                    entry.from_state,
                    entry.to_state,
                    entry.reason,
                    _json_strings(evidence) if evidence else "[]",
                    text,
                    _packed(entries[at + 1 : end], packed),
                )
            )
            at = end
        self.db.copy_rows("incident_audit", _AUDIT_ROW, rows)

    def audit_trail(self, case_id: int) -> list[AuditEntry]:
        """Return a case's audit trail in order."""
        return _audits(self.db.fetchall(f"{_SELECT_AUDIT} WHERE case_id = ? ORDER BY seq", (case_id,)))

    def audit_between(self, start_ms: int, end_ms: int) -> list[AuditEntry]:
        """Return every audit entry in [start, end), in time order (KPIs)."""
        return _audits(
            self.db.fetchall(
                f"{_SELECT_AUDIT} WHERE at_ms >= ? AND at_ms < ? ORDER BY at_ms, case_id, seq", (start_ms, end_ms)
            )
        )

    # Alert keys (dedup) and alerts.

    def key_case(self, key: str) -> int | None:
        """Return the open case an alert key belongs to."""
        row = self.db.fetchone("SELECT case_id FROM incident_keys WHERE key = ?", (key,))
        return None if row is None else int(row[0])

    def bind_key(self, key: str, case_id: int, status: str, now: int) -> None:
        """Bind an alert key to an open case with its status (firing, resolved, stale)."""
        self.db.execute(
            "INSERT INTO incident_keys (key, case_id, status, updated_ms) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (key) DO UPDATE SET case_id = excluded.case_id, status = excluded.status, "
            "updated_ms = excluded.updated_ms",
            (key, case_id, status, now),
        )

    def bind_keys(self, rows: Sequence[tuple[str, int, str, int]], *, new: bool = False) -> None:
        """Bind many (key, case id, status, time) at once (of one key's rows, the last wins).

        `new`: the keys are believed unbound (a new case's keys), so they are sent by COPY; a bound one among
        them is still updated, by the fallback INSERT.
        """
        # One statement may not update a row twice (PostgreSQL): keep each key's last row, as a replay would.
        last = list({row[0]: row for row in rows}.values())
        upsert = (
            "ON CONFLICT (key) DO UPDATE SET case_id = excluded.case_id, status = excluded.status, "
            "updated_ms = excluded.updated_ms"
        )
        if new:
            self.db.copy_rows("incident_keys", ("key", "case_id", "status", "updated_ms"), last, upsert)
        elif self.db.dialect == "postgres" and last:
            # One statement over arrays: executemany cost PostgreSQL a statement (and psycopg a row's binding)
            # per key (measured, storm of joins in calls of 1,000: ~15 µs client and ~17 µs server per key).
            keys, case_ids, statuses, times = zip(*last, strict=True)
            self.db.execute(
                "INSERT INTO incident_keys (key, case_id, status, updated_ms) "
                f"SELECT * FROM unnest(?::text[], ?::bigint[], ?::text[], ?::bigint[]) {upsert}",
                (_text_array(keys), _int_array(case_ids), _text_array(statuses), _int_array(times)),
                replan=True,
            )
        else:
            self._insert("INSERT INTO incident_keys (key, case_id, status, updated_ms)", last, upsert)

    def key_cases(self, keys: Iterable[str]) -> dict[str, int]:
        """Return the open case of each bound alert key (unbound keys are absent)."""
        found: dict[str, int] = {}
        for chunk in self._chunks(keys):
            where, params = self._in("key", chunk)
            rows = self.db.fetchall(f"SELECT key, case_id FROM incident_keys WHERE {where}", params, replan=True)
            found.update((str(k), int(c)) for k, c in rows)
        return found

    def key_statuses(self, case_id: int) -> dict[str, str]:
        """Return the alert keys of a case with their status."""
        rows = self.db.fetchall("SELECT key, status FROM incident_keys WHERE case_id = ?", (case_id,))
        return {str(k): str(s) for k, s in rows}

    def key_statuses_of(self, case_ids: Iterable[int]) -> dict[int, dict[str, str]]:
        """Return the alert keys with their status of each of these cases (cases with none are absent)."""
        found: dict[int, dict[str, str]] = {}
        for chunk in self._chunks(case_ids):
            where, params = self._in("case_id", chunk)
            rows = self.db.fetchall(
                f"SELECT case_id, key, status FROM incident_keys WHERE {where}", params, replan=True
            )
            for case_id, key, status in rows:
                found.setdefault(int(case_id), {})[str(key)] = str(status)
        return found

    def release_keys(self, case_id: int) -> None:
        """Unbind a finished case's keys, so the next firing opens a new case."""
        self.db.execute("DELETE FROM incident_keys WHERE case_id = ?", (case_id,))

    def add_alerts(self, rows: Iterable[StoredAlert]) -> None:
        """Keep alerts; one already kept (same fingerprint, state, time) is left as it is."""
        # Replays were filtered out before (`seen_alerts`): a conflict is rare, so COPY first.
        self.db.copy_rows(
            "incident_alerts",
            _ALERT_COLUMNS,
            list(map(_alert_row, rows)),
            "ON CONFLICT (fingerprint, state, ts_ms) DO NOTHING",
        )

    def seen_alert(self, fingerprint: str, state: str, ts_ms: int) -> bool:
        """Whether this alert (fingerprint, state, time) was handled before (ingest replays)."""
        row = self.db.fetchone(
            "SELECT 1 FROM incident_alerts WHERE fingerprint = ? AND state = ? AND ts_ms = ?",
            (fingerprint, state, ts_ms),
        )
        return row is not None

    def seen_alerts(self, idents: Iterable[tuple[str, str, int]]) -> set[tuple[str, str, int]]:
        """Return which of these alerts (fingerprint, state, time) were handled before, in one query per chunk."""
        wanted = set(idents)
        if not wanted:
            return set()
        times = [t for _, _, t in wanted]
        seen: set[tuple[str, str, int]] = set()
        for chunk in self._chunks(f for f, _, _ in wanted):
            # PostgreSQL: the time range's index with the fingerprints as a constant array, which the filter
            # hashes (from a sub-select, as `_in` sends them, it compared each row with every fingerprint).
            where, params = (
                ("fingerprint = ANY(?::text[])", [_text_array(chunk)])
                if self.db.dialect == "postgres"
                else self._in("fingerprint", chunk)
            )
            rows = self.db.fetchall(
                f"SELECT fingerprint, state, ts_ms FROM incident_alerts WHERE {where} AND ts_ms >= ? AND ts_ms <= ?",
                [*params, min(times), max(times)],
                replan=True,
            )
            seen.update(i for i in ((str(f), str(s), int(t)) for f, s, t in rows) if i in wanted)
        return seen

    def alerts_of(self, case_id: int) -> list[StoredAlert]:
        """Return a case's alerts in time order."""
        return self._alerts("WHERE case_id = ? ORDER BY ts_ms, fingerprint", (case_id,))

    def alerts_between(self, start_ms: int, end_ms: int, disposition: str | None = None) -> list[StoredAlert]:
        """Return the alerts in [start, end), optionally of one disposition prefix (silenced, inhibited…)."""
        if disposition is None:
            return self._alerts("WHERE ts_ms >= ? AND ts_ms < ? ORDER BY ts_ms", (start_ms, end_ms))
        return self._alerts(
            "WHERE ts_ms >= ? AND ts_ms < ? AND disposition LIKE ? ORDER BY ts_ms",
            (start_ms, end_ms, disposition + "%"),
        )

    def _alerts(self, where: str, params: Sequence[Any]) -> list[StoredAlert]:
        rows = self.db.fetchall(f"SELECT * FROM incident_alerts {where}", params)
        return [StoredAlert(*r) for r in rows]

    # Outages (a gateway offline inhibits its devices' health alerts).

    def outage(self, gateway: str) -> tuple[int, tuple[str, ...]] | None:
        """Return (case id, devices) of a gateway's current outage."""
        row = self.db.fetchone("SELECT case_id, devices FROM incident_outages WHERE gateway = ?", (gateway,))
        return None if row is None else (int(row[0]), tuple(json.loads(row[1])))

    def outage_of_device(self, device: str) -> int | None:
        """Return the outage case that makes `device` unreachable, if any."""
        needle = json.dumps(device)
        for case_id, devices in self.db.fetchall("SELECT case_id, devices FROM incident_outages"):
            if needle in devices and device in json.loads(devices):
                return int(case_id)
        return None

    def start_outage(self, gateway: str, since_ms: int, case_id: int, devices: Sequence[str]) -> None:
        """Record a gateway outage."""
        self.db.execute(
            "INSERT INTO incident_outages (gateway, since_ms, case_id, devices) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (gateway) DO UPDATE SET case_id = excluded.case_id, devices = excluded.devices",
            (gateway, since_ms, case_id, json.dumps(list(devices))),
        )

    def end_outage(self, gateway: str) -> None:
        """Forget a gateway's outage."""
        self.db.execute("DELETE FROM incident_outages WHERE gateway = ?", (gateway,))

    # Escalations.

    def record_escalation(self, esc: Escalation) -> bool:
        """Persist an escalation; return False if it was recorded before (ticks are idempotent)."""
        return (
            self.db.execute(
                "INSERT INTO incident_escalations (case_id, kind, at_ms, fired_ms, action, notify) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (case_id, kind, at_ms, action) DO NOTHING",
                (esc.case_id, esc.kind, esc.at_ms, esc.fired_ms, esc.action, json.dumps(list(esc.notify))),
            )
            == 1
        )

    def escalations(self, case_id: int | None = None) -> list[Escalation]:
        """Return escalations (of one case, or all) in firing order."""
        sql = "SELECT case_id, kind, at_ms, fired_ms, action, notify FROM incident_escalations"
        rows = (
            self.db.fetchall(sql + " WHERE case_id = ? ORDER BY fired_ms, at_ms, kind", (case_id,))
            if case_id is not None
            else self.db.fetchall(sql + " ORDER BY fired_ms, case_id, at_ms, kind")
        )
        return [Escalation(r[0], r[1], r[2], r[3], r[4], tuple(json.loads(r[5]))) for r in rows]


__all__ = ["ALL", "OPEN_STATES", "CaseFilter", "CaseStore", "Escalation", "StaleCase", "StoredAlert", "stored_alert"]
