"""The store's batched lookups (`key_cases`, `last_cases_of`, `open_in_groups`, `seen_alerts`, `get_many`,
`key_statuses_of`, audit trails) find the same rows on SQLite and PostgreSQL whatever characters the keys hold."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloud.db import Database
from cloud.incidents.store import CHUNK, CaseStore, stored_alert
from gateway.alerts import AlertState
from tests.incidents.incidents_rig import CENTER, T0, alert, engine

# Any text PostgreSQL can hold: valid UTF-8 (no lone surrogates), no NUL.
KEYS = st.text(st.characters(codec="utf-8", exclude_characters="\x00"))

# Separators, quotes, escapes, array and JSON syntax, SQL look-alikes, control characters, unicode, a long key
# (no NUL: PostgreSQL's text cannot hold one, whatever the lookup).
AWKWARD = [
    "",
    " ",
    "a,b",
    "{x}",
    "{a,b}",
    '"q"',
    "it's",
    "back\\slash",
    '\\"',
    "NULL",
    "null",
    "[1, 2]",
    '{"k": 1}',
    "\x1f",
    "\x01\t\n\r",
    "%s ? $1",
    "燃气-井盖/12 号",
    "🚒\u2028\ufeff",
    "x" * 3000,
]


@pytest.fixture
def db(each_engine_db: Database) -> Database:
    """An empty database of each engine."""
    return each_engine_db


def test_key_cases_finds_awkward_keys_and_only_bound_ones(db: Database) -> None:
    """Every bound key is found with its case, however awkward its characters; unbound look-alikes are not."""
    store = CaseStore(db)
    store.bind_keys([(key, i + 1, "firing", T0) for i, key in enumerate(AWKWARD)], new=True)
    absent = [k + "~" for k in AWKWARD] + ["a", "b", "{x", "q", "nul"]
    assert store.key_cases([*AWKWARD, *absent]) == {key: i + 1 for i, key in enumerate(AWKWARD)}
    assert store.key_cases([]) == {}
    assert store.key_statuses_of(range(1, len(AWKWARD) + 1)) == {
        i + 1: {key: "firing"} for i, key in enumerate(AWKWARD)
    }


def test_bind_keys_rebinds_awkward_keys_and_the_last_row_of_a_key_wins(db: Database) -> None:
    """Binding bound and unbound awkward keys at once updates the bound, adds the rest, and keeps a key's last row."""
    store = CaseStore(db)
    store.bind_keys([(key, 1, "firing", T0) for key in AWKWARD[::2]], new=True)
    rows = [(key, 2**40 + i, "resolved", T0 + i) for i, key in enumerate(AWKWARD)]
    store.bind_keys([*rows, (AWKWARD[0], 9, "stale", T0 + 99)])
    expected = {key: 2**40 + i for i, key in enumerate(AWKWARD)} | {AWKWARD[0]: 9}
    assert store.key_cases(AWKWARD) == expected
    assert store.key_statuses(9) == {AWKWARD[0]: "stale"}
    assert store.key_statuses(2**40 + 1) == {AWKWARD[1]: "resolved"}
    store.bind_keys([])
    assert store.key_cases(AWKWARD) == expected


def test_lookups_of_more_values_than_one_chunk(db: Database) -> None:
    """Lookups longer than SQLite's chunk (and with repeats) return every match once, on both engines."""
    store = CaseStore(db)
    keys = [f'k-{i:05d},"{i}"' for i in range(CHUNK * 2 + 37)]
    store.bind_keys([(k, 2**40 + i, "firing", T0) for i, k in enumerate(keys)], new=True)
    assert store.key_cases(keys + keys[:10]) == {k: 2**40 + i for i, k in enumerate(keys)}
    ids = [2**40 + i for i in range(len(keys))]
    assert store.key_statuses_of(ids + ids[:3]) == {2**40 + i: {k: "firing"} for i, k in enumerate(keys)}


def test_seen_alerts_matches_awkward_fingerprints_exactly(db: Database) -> None:
    """A kept alert is seen by its exact (fingerprint, state, time), never by a neighbour of another."""
    store = CaseStore(db)
    kept = [
        stored_alert(fp, "firing", T0 + i, "gw", "d", "r", 1, None, None, None, None, None, None, "pending")
        for i, fp in enumerate(AWKWARD)
    ]
    store.add_alerts(kept)
    asked = {(a.fingerprint, a.state, a.ts_ms) for a in kept}
    near = {(fp, "resolved", T0) for fp in AWKWARD} | {(fp + " ", "firing", T0 + i) for i, fp in enumerate(AWKWARD)}
    assert store.seen_alerts(asked | near) == asked
    assert store.seen_alerts(set()) == set()


def test_case_lookups_by_dedup_and_group_key_with_awkward_devices(db: Database) -> None:
    """Cases opened by devices with awkward names are found by dedup key, group key and id as on SQLite."""
    eng = engine(db)
    reference = engine()
    alerts = [
        alert("combustible_gas", AlertState.FIRING, T0 + i, device=f"dev{name}") for i, name in enumerate(AWKWARD)
    ]
    for one in (eng, reference):
        one.handle("网关,{1}", alerts)
    cases = sorted(eng.cases(CENTER, limit=1000), key=lambda c: c.id)
    assert len(cases) == len(AWKWARD)
    assert cases == sorted(reference.cases(CENTER, limit=1000), key=lambda c: c.id)
    store = eng.store
    assert store.last_cases_of([str(c.dedup_key) for c in cases] + ["nope"]) == {str(c.dedup_key): c.id for c in cases}
    groups = store.open_in_groups([str(c.group_key) for c in cases] + ["nope"], 0)
    assert sorted(groups, key=lambda c: c.id) == cases
    assert store.get_many([c.id for c in cases] + [10**12]) == {c.id: c for c in cases}
    assert [len(store.audit_trail(c.id)) for c in cases] == [len(reference.store.audit_trail(c.id)) for c in cases]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    bound=st.lists(KEYS, max_size=8),
    other=st.lists(KEYS, max_size=8),
)
def test_key_cases_agrees_with_a_dict(db: Database, bound: list[str], other: list[str]) -> None:
    """For any keys (any character PostgreSQL's text holds), `key_cases` returns what a dict of the bindings does."""
    store = CaseStore(db)
    db.execute("DELETE FROM incident_keys")
    rows = [(key, i, "firing", T0) for i, key in enumerate(bound)]
    store.bind_keys(rows)
    expected = {key: case_id for key, case_id, _, _ in rows}
    assert store.key_cases([*bound, *other]) == expected


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kept=st.lists(KEYS, max_size=6), asked=st.lists(KEYS, max_size=6))
def test_seen_alerts_agrees_with_a_set(db: Database, kept: list[str], asked: list[str]) -> None:
    """For any fingerprints, `seen_alerts` returns exactly the asked alerts that were kept."""
    store = CaseStore(db)
    db.execute("DELETE FROM incident_alerts")
    store.add_alerts(
        stored_alert(fp, "firing", T0, "gw", "d", "r", 1, None, None, None, None, None, None, "pending") for fp in kept
    )
    idents = {(fp, "firing", T0) for fp in [*asked, *kept[:2]]}
    assert store.seen_alerts(idents) == {(fp, "firing", T0) for fp in kept} & idents


@pytest.mark.integration
def test_postgres_lookups_stay_on_the_index_for_a_large_batch(postgres_url: str) -> None:
    """With statistics of a few thousand keys, a lookup of 1,000 keys is planned as index probes, not a table scan."""
    db = Database.open(postgres_url)
    try:
        store = CaseStore(db)
        keys = [f"device:dev-{i:07d}/gas_leak/combustible_gas" for i in range(5000)]
        store.bind_keys([(k, i, "firing", T0) for i, k in enumerate(keys)], new=True)
        db.execute("ANALYZE incident_keys")
        where, params = store._in("key", keys[4500:] + [k + "x" for k in keys[:500]])
        plan = "\n".join(
            str(r[0])
            for r in db.fetchall(f"EXPLAIN SELECT key, case_id FROM incident_keys WHERE {where}", params, replan=True)
        )
        assert "Index" in plan, plan
        assert "Seq Scan" not in plan, plan
        assert len(db.fetchall(f"SELECT key, case_id FROM incident_keys WHERE {where}", params, replan=True)) == 500
    finally:
        db.close()
