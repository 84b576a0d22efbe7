"""Audit entries and alert rows built by the fast constructors, and stored audit details, equal the plain path."""

from __future__ import annotations

import json
from dataclasses import astuple
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.db import Database
from cloud.incidents.model import AuditEntry, audit_entry
from cloud.incidents.store import CaseStore, StoredAlert, stored_alert

TEXT = st.text(max_size=12)
DETAIL = st.dictionaries(
    st.text(max_size=8),
    st.none() | st.integers(-(2**53), 2**53) | TEXT | st.dictionaries(TEXT, TEXT | st.integers(), max_size=3),
    max_size=4,
)


@settings(max_examples=300, deadline=None)
@given(
    st.tuples(
        st.integers(1, 2**40),
        st.integers(0, 2**45),
        TEXT,
        TEXT,
        TEXT,
        TEXT,
        TEXT,
        TEXT,
        st.tuples(TEXT) | st.just(()),
        DETAIL,
    )
)
def test_audit_entry_equals_the_dataclass_constructor(
    values: tuple[int, int, str, str, str, str, str, str, tuple[str, ...], dict[str, Any]],
) -> None:
    """`audit_entry(...)` gives an entry equal, field for field, to `AuditEntry(...)` of the same values."""
    fast = audit_entry(*values)
    plain = AuditEntry(*values)
    assert fast == plain
    assert astuple(fast) == astuple(plain)
    assert repr(fast) == repr(plain)


@settings(max_examples=100, deadline=None)
@given(st.lists(DETAIL, min_size=1, max_size=5))
def test_stored_audit_detail_reads_back_as_written(details: list[dict[str, object]]) -> None:
    """Details written to the audit trail (orjson, json for what it refuses) read back equal to the dicts."""
    db = Database.open(":memory:")
    store = CaseStore(db)
    entries = [
        AuditEntry(7, i, "system:test", "system", "evidence", "reported", "reported", "", (), d)
        for i, d in enumerate(details)
    ]
    with store.transaction():
        store.append_audit(entries)
    assert [e.detail for e in store.audit_trail(7)] == details
    db.close()


def test_a_detail_with_an_int_key_is_written_as_json_writes_it() -> None:
    """A detail orjson refuses (an int key) is stored as json.dumps stores it, so nothing is lost."""
    db = Database.open(":memory:")
    store = CaseStore(db)
    detail: dict[Any, Any] = {1: "a"}  # not the declared dict[str, Any]: what a caller may still hand in
    with store.transaction():
        store.append_audit([AuditEntry(3, 1, "system:test", "system", "evidence", "x", "x", "", (), detail)])
    assert store.audit_trail(3)[0].detail == json.loads(json.dumps({1: "a"}))
    db.close()


OPTIONAL_TEXT = st.none() | TEXT


@settings(max_examples=300, deadline=None)
@given(
    st.tuples(
        TEXT,
        TEXT,
        st.integers(0, 2**45),
        TEXT,
        TEXT,
        TEXT,
        st.integers(1, 4),
        OPTIONAL_TEXT,
        st.none() | st.floats(allow_nan=False),
        st.none() | st.floats(allow_nan=False),
        OPTIONAL_TEXT,
        OPTIONAL_TEXT,
        st.none() | st.integers(1, 2**40),
        TEXT,
    )
)
def test_stored_alert_equals_the_dataclass_constructor(
    values: tuple[
        str,
        str,
        int,
        str,
        str,
        str,
        int,
        str | None,
        float | None,
        float | None,
        str | None,
        str | None,
        int | None,
        str,
    ],
) -> None:
    """`stored_alert(...)` gives a row equal, field for field, to `StoredAlert(...)` of the same values."""
    fast = stored_alert(*values)
    plain = StoredAlert(*values)
    assert fast == plain
    assert astuple(fast) == astuple(plain)
