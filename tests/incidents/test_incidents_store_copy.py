"""The store's bulk paths (COPY on PostgreSQL, executemany on SQLite) give the same cases, trails, keys and alerts."""

from __future__ import annotations

import pytest

from cloud.db import Database
from cloud.incidents.engine import Incidents
from cloud.incidents.model import Urgency, evolve
from cloud.incidents.store import CaseStore, StaleCase, stored_alert
from gateway.alerts import AlertEvent, AlertState, Location
from tests.incidents.incidents_rig import CENTER, DISTRICT, T0, alert, engine, snapshot


@pytest.fixture
def db(each_engine_db: Database) -> Database:
    """An empty database of each engine."""
    return each_engine_db


def envelope(n: int) -> list[AlertEvent]:
    """Return `n` firing alerts of distinct devices (unicode names, parts, grids across the district)."""
    grids = [g.code for g in DISTRICT.grids]
    return [
        AlertEvent(
            "网关-1",
            f"燃气-{i:03d}",
            "combustible_gas" if i % 3 else "well_level_high",
            AlertState.FIRING,
            1 + i % 3,
            T0 + i,
            value=30.5 + i if i % 4 else None,
            location=Location(grid=grids[i % len(grids)], part_id=f"井盖-{i}" if i % 5 == 0 else None),
        )
        for i in range(n)
    ]


def feed(eng: Incidents) -> None:
    """Open many cases in one envelope, then join, resolve and replay some of them."""
    eng.handle("网关-1", envelope(150))
    eng.handle(
        "网关-1",
        [
            alert("combustible_gas", AlertState.FIRING, T0 + 500, device="燃气-001"),
            alert("combustible_gas", AlertState.RESOLVED, T0 + 600, device="燃气-002"),
            *envelope(3),  # replays
        ],
    )


def test_bulk_writes_match_sqlite(db: Database) -> None:
    """An envelope of new cases stored through the bulk paths reads back exactly as on SQLite's plain path."""
    eng = engine(db)
    feed(eng)
    reference = engine()
    feed(reference)
    assert eng.count(CENTER) == 150
    assert eng.intake.counts == reference.intake.counts
    assert snapshot(eng) == snapshot(reference)


def test_bind_new_keys_updates_a_key_already_bound(db: Database) -> None:
    """`bind_keys(new=True)` over a bound key still updates it (the COPY falls back to the upsert)."""
    store = CaseStore(db)
    store.bind_keys([("k1", 1, "firing", T0)])
    with store.transaction():
        store.bind_keys([("k2", 2, "firing", T0), ("k1", 3, "resolved", T0 + 1)], new=True)
        store.bind_keys([("k3", 4, "firing", T0 + 2)], new=True)
    assert store.key_cases(["k1", "k2", "k3"]) == {"k1": 3, "k2": 2, "k3": 4}
    assert store.key_statuses(3) == {"k1": "resolved"}


def test_add_alerts_keeps_a_kept_alert_as_it_is(db: Database) -> None:
    """An alert kept before is left unchanged by a later batch holding it (the COPY falls back to DO NOTHING)."""
    store = CaseStore(db)
    first = stored_alert("fp", "firing", T0, "gw", "d", "r", 1, None, 1.5, None, None, None, 7, "case")
    again = stored_alert("fp", "firing", T0, "gw", "d", "r", 1, None, 9.0, None, None, None, 8, "silenced:1")
    other = stored_alert("fp", "resolved", T0 + 1, "gw", "d", "r", 1, "q", None, 2.0, "p", "g", None, "resolved")
    store.add_alerts([first])
    with store.transaction():
        store.add_alerts([again, other])
    assert store.alerts_between(0, T0 + 10) == [first, other]


def test_new_ids_are_unique_across_stores(db: Database) -> None:
    """Two stores on one database hand out distinct, increasing ids across many reserved blocks."""
    one, two = CaseStore(db), CaseStore(db)
    ids_one = [one.new_id("case") for _ in range(700)]
    ids_two = [two.new_id("case") for _ in range(300)]
    assert ids_one == sorted(ids_one)
    assert ids_two == sorted(ids_two)
    assert len(set(ids_one) | set(ids_two)) == 1000
    assert ids_one[:64] == list(range(1, 65))


def test_update_many_writes_mixed_values_and_refuses_a_stale_read(db: Database) -> None:
    """Batched updates store ints in float columns, enums, NULLs and unicode, and a stale read writes nothing."""
    eng = engine(db)
    eng.handle("网关-1", envelope(4))
    store = eng.store
    read = sorted(store.get_many(c.id for c in eng.cases(CENTER)).values(), key=lambda c: c.id)
    changed = [
        evolve(read[0], lat=30, lon=113.5, title="井盖 倾斜", recovered_ms=T0 + 9, updated_ms=T0 + 9),
        evolve(read[1], lat=30.25, lon=None, urgency=Urgency.CRITICAL, updated_ms=T0 + 9),
        evolve(read[2], lat=None, fired=("sign_overdue", "燃气"), updated_ms=T0 + 9),
    ]
    store.update_many(list(zip(changed, read, strict=False)))
    stored = store.get_many(c.id for c in changed)
    assert [stored[c.id] for c in changed] == [evolve(changed[0], lat=30.0), changed[1], changed[2]]
    with pytest.raises(StaleCase), store.transaction():
        store.update_many([(evolve(read[3], title="new"), read[3]), (evolve(read[0], title="old read"), read[0])])
    assert store.get(read[3].id) == read[3]
