"""Audit entries of one case at one instant share a row, and every reader gets them back one by one, in order."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from cloud.db import Database
from cloud.incidents.model import AuditEntry
from cloud.incidents.store import MIGRATIONS, CaseStore
from gateway.alerts import AlertState
from tests.incidents.incidents_rig import CENTER, T0, alert, engine


@pytest.fixture
def db(each_engine_db: Database) -> Database:
    """An empty database of each engine."""
    return each_engine_db


def entry(case_id: int, at: int, action: str, **extra: object) -> AuditEntry:
    """Return an entry with awkward text, evidence and detail."""
    return AuditEntry(
        case_id,
        at,
        'system:燃气 "规则"',
        "system",
        action,
        "reported",
        "accepted",
        "原因\n;'",
        ("证据-1", "[x]"),
        {"z": 1, "a": [1.5, None, "文"], "big": 2**70, **extra},
    )


def test_a_new_cases_trail_is_one_row_and_reads_back_entry_by_entry(db: Database) -> None:
    """A new auto-dispatched case writes its report and three automatic steps as one row; the trail has all four."""
    eng = engine(db)
    eng.handle("gw-1", [alert("combustible_gas", AlertState.FIRING, T0)])
    (case,) = eng.cases(CENTER)
    trail = eng.store.audit_trail(case.id)
    assert [e.action for e in trail] == ["report", "accept", "register", "dispatch"]
    assert db.fetchall("SELECT COUNT(*) FROM incident_audit") == [(1,)]
    assert eng.store.audit_between(T0, T0 + 1) == trail


def test_runs_of_a_case_and_instant_pack_and_everything_else_stays_apart(db: Database) -> None:
    """Entries pack only with the same case and instant next to them; trails and time order come back exact."""
    store = CaseStore(db)
    written = [
        entry(1, T0, "report"),
        entry(1, T0, "accept", n=1),
        entry(1, T0, "register", bad={1: "int key"}),  # orjson refuses an int key: the json fallback writes it
        entry(2, T0, "report"),
        entry(1, T0 + 5, "sign"),
        entry(1, T0, "late"),  # same instant as the first run but not next to it: its own row
    ]
    store.append_audit(written, fresh=True)
    store.append_audit([entry(2, T0 + 1, "accept"), entry(2, T0 + 1, "register")])
    assert db.fetchall("SELECT case_id, seq FROM incident_audit ORDER BY case_id, seq") == [
        (1, 1),
        (1, 2),
        (1, 3),
        (2, 1),
        (2, 2),
    ]
    trail_1 = store.audit_trail(1)
    assert trail_1[:2] == written[:2]
    assert trail_1[3:] == written[4:]
    # JSON has string keys only, as the unpacked column always had.
    assert trail_1[2] == replace(written[2], detail={**written[2].detail, "bad": {"1": "int key"}})
    assert [e.action for e in store.audit_trail(2)] == ["report", "accept", "register"]
    between = store.audit_between(T0, T0 + 10)
    assert [(e.case_id, e.at_ms - T0, e.action) for e in between] == [
        (1, 0, "report"),
        (1, 0, "accept"),
        (1, 0, "register"),
        (1, 0, "late"),
        (2, 0, "report"),
        (2, 1, "accept"),
        (2, 1, "register"),
        (1, 5, "sign"),
    ]


def test_a_trail_written_before_packing_reads_back_after_the_migration(tmp_path: Path) -> None:
    """A database at the schema before `more` migrates, and its old rows read as they did."""
    db = Database.open(tmp_path / "old.db")
    db.migrate("incidents", MIGRATIONS[:4])  # before `more`
    db.execute(
        "INSERT INTO incident_audit (case_id, seq, at_ms, actor, role, action, from_state, to_state, reason, "
        "evidence, detail) VALUES (7, 1, ?, 'li', 'acceptor', 'accept', 'reported', 'accepted', '', '[\"e\"]', "
        "'{\"k\": 1}')",
        (T0,),
    )
    store = CaseStore(db)
    assert store.audit_trail(7) == [
        AuditEntry(7, T0, "li", "acceptor", "accept", "reported", "accepted", "", ("e",), {"k": 1})
    ]
    db.close()
