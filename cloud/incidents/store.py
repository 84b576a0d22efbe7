"""Case storage on the SQL layer: cases, their alert keys and alerts, audit, silences, outages, escalations.

Portable SQL only (SQLite and PostgreSQL): BIGINT milliseconds, TEXT, `ON CONFLICT ... DO NOTHING`.
Ids come from a counter row, not from an engine's autoincrement. The `incident_cases` columns are the
fields of `Case` (tuples as JSON text) plus `is_open`; a new Case field needs a new migration.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import Any, Final, TypeVar

from cloud.db import Database, Row
from cloud.incidents.model import OPEN_STATES, AuditEntry, Case
from cloud.incidents.roles import Actor, scope_sql

_T = TypeVar("_T")
_FIELDS: Final = tuple(f.name for f in fields(Case))
_TUPLES: Final = frozenset(f.name for f in fields(Case) if str(f.type).startswith("tuple"))


def _sql_type(annotation: str) -> str:
    base = annotation.replace(" | None", "")
    kind = {"int": "BIGINT", "float": "DOUBLE PRECISION"}.get(base, "TEXT")
    return kind if annotation.endswith("| None") else f"{kind} NOT NULL"


_CASE_COLUMNS: Final = ",\n        ".join(f"{f.name} {_sql_type(str(f.type))}" for f in fields(Case) if f.name != "id")

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
]

_INSERT_CASE: Final = (
    f"INSERT INTO incident_cases ({', '.join(_FIELDS)}, is_open) VALUES ({', '.join('?' * (len(_FIELDS) + 1))})"
)
_UPDATE_CASE: Final = (
    "UPDATE incident_cases SET "
    + ", ".join(f"{name} = ?" for name in _FIELDS if name != "id")
    + ", is_open = ? WHERE id = ? AND updated_ms = ? AND state = ?"
)
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


def _encode(case: Case) -> list[Any]:
    data = case.__dict__
    return [(json.dumps(list(data[n])) if data[n] else "[]") if n in _TUPLES else data[n] for n in _FIELDS]


def _decode(row: Row) -> Case:
    data = {n: (tuple(json.loads(v)) if n in _TUPLES else v) for n, v in zip(_FIELDS, row, strict=True)}
    return Case(**data)  # type: ignore[arg-type]


def _audit(row: Row) -> AuditEntry:
    case_id, at, actor, role, action, src, dst, reason, evidence, detail = row
    return AuditEntry(
        case_id, at, actor, role, action, src, dst, reason, tuple(json.loads(evidence)), json.loads(detail)
    )


CHUNK: Final = 500  # ids per IN (...) list: far below SQLite's and PostgreSQL's parameter limits


def _chunks(items: Sequence[_T]) -> Iterator[list[_T]]:
    for start in range(0, len(items), CHUNK):
        yield list(items[start : start + CHUNK])


def _marks(chunk: Sequence[Any]) -> str:
    return ", ".join("?" * len(chunk))


ID_BLOCK: Final = 64


class CaseStore:
    """The incident tables of one database."""

    def __init__(self, db: Database) -> None:
        self.db = db
        db.migrate("incidents", MIGRATIONS)
        self._blocks: dict[str, tuple[int, int]] = {}

    @contextmanager
    def transaction(self) -> Iterator[CaseStore]:
        """Run the block in one transaction; on error forget reserved id blocks (their reservation rolled back)."""
        try:
            with self.db.transaction():
                yield self
        except BaseException:
            self._blocks.clear()
            raise

    def new_id(self, name: str) -> int:
        """Return a fresh id of counter `name`, reserving ids in blocks (ids are unique, not gap-free)."""
        nxt, end = self._blocks.get(name, (0, 0))
        if nxt >= end:
            nxt = self.next_ids(name, ID_BLOCK)
            end = nxt + ID_BLOCK
        self._blocks[name] = (nxt + 1, end)
        return nxt

    def next_ids(self, name: str, count: int = 1) -> int:
        """Reserve `count` ids of counter `name`; return the first."""
        with self.db.transaction():
            self.db.execute(
                "INSERT INTO incident_counters (name, value) VALUES (?, 0) ON CONFLICT (name) DO NOTHING", (name,)
            )
            self.db.execute("UPDATE incident_counters SET value = value + ? WHERE name = ?", (count, name))
            row = self.db.fetchone("SELECT value FROM incident_counters WHERE name = ?", (name,))
        assert row is not None
        return int(row[0]) - count + 1

    def insert(self, case: Case) -> None:
        """Store a new case."""
        self.db.execute(_INSERT_CASE, [*_encode(case), int(case.open)])

    def insert_many(self, cases: Iterable[Case]) -> None:
        """Store new cases in one statement."""
        self.db.executemany(_INSERT_CASE, [[*_encode(c), int(c.open)] for c in cases])

    def update(self, case: Case, read: Case) -> None:
        """Store `case` over `read`; raise StaleCase if the row is no longer what was read."""
        values = _encode(case)[1:]
        changed = self.db.execute(_UPDATE_CASE, [*values, int(case.open), case.id, read.updated_ms, read.state])
        if changed != 1:
            raise StaleCase(f"case {case.id} changed since it was read")

    def update_many(self, pairs: Sequence[tuple[Case, Case]]) -> None:
        """Store each (case, read) in one statement; raise StaleCase if any row is no longer what was read."""
        if not pairs:
            return
        rows = [[*_encode(c)[1:], int(c.open), c.id, r.updated_ms, r.state] for c, r in pairs]
        if self.db.executemany(_UPDATE_CASE, rows) != len(rows):
            raise StaleCase(f"one of cases {sorted(c.id for c, _ in pairs)} changed since it was read")

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
        for chunk in _chunks(sorted(set(case_ids))):
            rows = self.db.fetchall(f"{_SELECT_CASE} WHERE id IN ({_marks(chunk)})", chunk)
            found.update((c.id, c) for c in map(_decode, rows))
        return found

    def open_in_groups(self, group_keys: Iterable[str], since_ms: int) -> list[Case]:
        """Return every open case of these groups whose last alert is at or after `since_ms`."""
        cases: list[Case] = []
        for chunk in _chunks(sorted(set(group_keys))):
            rows = self.db.fetchall(
                f"{_SELECT_CASE} WHERE group_key IN ({_marks(chunk)}) AND is_open = 1 AND last_alert_ms >= ?",
                [*chunk, since_ms],
            )
            cases.extend(map(_decode, rows))
        return cases

    def last_cases_of(self, dedup_keys: Iterable[str]) -> dict[str, int]:
        """Return the newest case id first opened by each of these keys (keys with none are absent)."""
        found: dict[str, int] = {}
        for chunk in _chunks(sorted(set(dedup_keys))):
            rows = self.db.fetchall(
                f"SELECT dedup_key, MAX(id) FROM incident_cases WHERE dedup_key IN ({_marks(chunk)}) "
                "GROUP BY dedup_key",
                chunk,
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

    def append_audit(self, entries: Sequence[AuditEntry], *, fresh: bool = False) -> None:
        """Append audit entries (in order) to their cases' trails; `fresh`: the cases have no trail yet."""
        next_seq: dict[int, int] = {e.case_id: 0 for e in entries} if fresh else {}
        rows = []
        for entry in entries:
            if entry.case_id not in next_seq:
                row = self.db.fetchone(
                    "SELECT COALESCE(MAX(seq), 0) FROM incident_audit WHERE case_id = ?", (entry.case_id,)
                )
                next_seq[entry.case_id] = int(row[0]) if row else 0
            next_seq[entry.case_id] += 1
            rows.append(
                (
                    entry.case_id,
                    next_seq[entry.case_id],
                    entry.at_ms,
                    entry.actor,
                    entry.role,
                    entry.action,
                    entry.from_state,
                    entry.to_state,
                    entry.reason,
                    json.dumps(list(entry.evidence), ensure_ascii=False) if entry.evidence else "[]",
                    json.dumps(entry.detail, ensure_ascii=False, sort_keys=True) if entry.detail else "{}",
                )
            )
        self.db.executemany("INSERT INTO incident_audit VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)

    def audit_trail(self, case_id: int) -> list[AuditEntry]:
        """Return a case's audit trail in order."""
        rows = self.db.fetchall(
            "SELECT case_id, at_ms, actor, role, action, from_state, to_state, reason, evidence, detail "
            "FROM incident_audit WHERE case_id = ? ORDER BY seq",
            (case_id,),
        )
        return [_audit(r) for r in rows]

    def audit_between(self, start_ms: int, end_ms: int) -> list[AuditEntry]:
        """Return every audit entry in [start, end), in time order (KPIs)."""
        rows = self.db.fetchall(
            "SELECT case_id, at_ms, actor, role, action, from_state, to_state, reason, evidence, detail "
            "FROM incident_audit WHERE at_ms >= ? AND at_ms < ? ORDER BY at_ms, case_id, seq",
            (start_ms, end_ms),
        )
        return [_audit(r) for r in rows]

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

    def bind_keys(self, rows: Sequence[tuple[str, int, str, int]]) -> None:
        """Bind many (key, case id, status, time) at once."""
        self.db.executemany(
            "INSERT INTO incident_keys (key, case_id, status, updated_ms) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (key) DO UPDATE SET case_id = excluded.case_id, status = excluded.status, "
            "updated_ms = excluded.updated_ms",
            rows,
        )

    def key_cases(self, keys: Iterable[str]) -> dict[str, int]:
        """Return the open case of each bound alert key (unbound keys are absent)."""
        found: dict[str, int] = {}
        for chunk in _chunks(sorted(set(keys))):
            rows = self.db.fetchall(f"SELECT key, case_id FROM incident_keys WHERE key IN ({_marks(chunk)})", chunk)
            found.update((str(k), int(c)) for k, c in rows)
        return found

    def key_statuses(self, case_id: int) -> dict[str, str]:
        """Return the alert keys of a case with their status."""
        rows = self.db.fetchall("SELECT key, status FROM incident_keys WHERE case_id = ?", (case_id,))
        return {str(k): str(s) for k, s in rows}

    def release_keys(self, case_id: int) -> None:
        """Unbind a finished case's keys, so the next firing opens a new case."""
        self.db.execute("DELETE FROM incident_keys WHERE case_id = ?", (case_id,))

    def add_alerts(self, rows: Iterable[StoredAlert]) -> None:
        """Keep alerts; one already kept (same fingerprint, state, time) is left as it is."""
        self.db.executemany(
            "INSERT INTO incident_alerts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (fingerprint, state, ts_ms) DO NOTHING",
            [
                (
                    a.fingerprint,
                    a.state,
                    a.ts_ms,
                    a.gateway,
                    a.device,
                    a.rule,
                    a.severity,
                    a.quantity,
                    a.value,
                    a.threshold,
                    a.part_id,
                    a.grid,
                    a.case_id,
                    a.disposition,
                )
                for a in rows
            ],
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
        for chunk in _chunks(sorted({f for f, _, _ in wanted})):
            rows = self.db.fetchall(
                f"SELECT fingerprint, state, ts_ms FROM incident_alerts WHERE fingerprint IN ({_marks(chunk)}) "
                "AND ts_ms >= ? AND ts_ms <= ?",
                [*chunk, min(times), max(times)],
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


__all__ = ["ALL", "OPEN_STATES", "CaseFilter", "CaseStore", "Escalation", "StaleCase", "StoredAlert"]
