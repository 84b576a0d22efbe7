"""The fast decode path (decode_envelope_columns) accepts, returns and refuses exactly what decode_envelope does."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.contract import ContractError, Envelope, decode_envelope, decode_envelope_columns
from gateway.readings import UNITS, Quality, Reason

GOOD_ROW: list[Any] = ["dev-1", "pm25", 12.5, "ug/m3", 1_700_000_000_000, "good", None]
# Values a wire row field may hold: good ones, wrong types, out-of-range numbers, unknown names.
JUNK: st.SearchStrategy[object] = st.sampled_from(
    [None, True, False, 0, 7, -1, 2**63 - 1, 1.5, -0.0, 1e308, "", "x", "good", "stale", "ug/m3", [], {}, [1]]
)
ROWS = st.lists(
    st.tuples(
        st.sampled_from(["dev-1", "dev-2", "设备-3"]),
        st.sampled_from(["pm25", "no2"]),
        st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(-(2**53), 2**53)),
        st.sampled_from(sorted(UNITS)),
        st.integers(0, 2**62),
        st.sampled_from([q.value for q in Quality]),
        st.sampled_from([None, *(r.value for r in Reason)]),
    ).map(list),
    max_size=20,
)


def payload(rows: list[Any], alerts: list[Any] | None = None) -> bytes:
    """Return envelope bytes carrying `rows` as its readings."""
    doc = {"v": 1, "gateway": "gw-a", "seq": 3, "lane": "telemetry", "sent_ms": 5, "dropped": {}}
    return orjson.dumps({**doc, "status": None, "alerts": alerts or [], "readings": rows})


def outcome(decode: Any, data: bytes) -> tuple[str, object]:
    """Return ("ok", result) or ("error", (reason, field)) of one decoder on `data`."""
    try:
        return "ok", decode(data)
    except ContractError as exc:
        return "error", (exc.reason, exc.field)


def columns_as_rows(data: bytes) -> tuple[Envelope, list[list[Any]]]:
    """Return decode_envelope_columns' result as wire rows with float values."""
    env, columns = decode_envelope_columns(data)
    return env, [[d, q, float(v), u, ts, ql, why] for d, q, v, u, ts, ql, why in zip(*columns, strict=True)]


FAST = pytest.mark.parametrize("fast", [columns_as_rows], ids=["columns"])
Fast = Callable[[bytes], tuple[Envelope, list[list[Any]]]]


def as_rows(env: Envelope) -> tuple[Envelope, list[list[Any]]]:
    """Return the wire rows the fast path should give for what decode_envelope gave."""
    rows = [[d, q, v, u, ts, ql.value, None if why is None else why.value] for d, q, v, u, ts, ql, why in env.readings]
    return replace(env, readings=()), rows


@FAST
@settings(max_examples=300, deadline=None)
@given(ROWS)
def test_good_rows_decode_to_the_same_readings(fast: Fast, rows: list[list[Any]]) -> None:
    """Valid rows come back as wire arrays with float values, equal field by field to decode_envelope's readings."""
    data = payload(rows)
    env, got = fast(data)
    assert (env, got) == as_rows(decode_envelope(data))
    assert all(type(row[2]) is float for row in got)


@FAST
@settings(max_examples=300, deadline=None)
@given(ROWS.filter(bool), st.data())
def test_a_bad_field_is_refused_with_the_same_reason_and_field(
    fast: Fast, rows: list[list[Any]], data: st.DataObject
) -> None:
    """One junk field anywhere in the batch gives the same ContractError (or the same success) on both paths."""
    at = data.draw(st.integers(0, len(rows) - 1))
    column = data.draw(st.integers(0, 6))
    rows[at][column] = data.draw(JUNK)
    wire = payload(rows)
    slow, quick = outcome(decode_envelope, wire), outcome(fast, wire)
    assert quick[0] == slow[0]
    assert quick[1] == (as_rows(slow[1]) if isinstance(slow[1], Envelope) else slow[1])


@FAST
@pytest.mark.parametrize(
    "row",
    [[*GOOD_ROW[:6]], "not a row", {"device": "d"}, [*GOOD_ROW, None], ["dev-1", "pm25", 1.0, "ug/m3", 5, "good", []]],
)
def test_malformed_rows_are_refused_like_decode_envelope(fast: Fast, row: object) -> None:
    """Short, long, non-array rows and unhashable fields raise decode_envelope's exact error."""
    wire = payload([GOOD_ROW, row])
    assert outcome(fast, wire) == outcome(decode_envelope, wire)
    assert outcome(fast, wire)[0] == "error"


@FAST
def test_finite_values_whose_sum_overflows_are_kept(fast: Fast) -> None:
    """Large finite values are good readings even though the column check's sum overflows."""
    wire = payload([[*GOOD_ROW[:2], 1.7e308, *GOOD_ROW[3:]], [*GOOD_ROW[:2], 1.7e308, *GOOD_ROW[3:]]])
    assert fast(wire) == as_rows(decode_envelope(wire))


@FAST
def test_reading_errors_come_before_alert_errors(fast: Fast) -> None:
    """A bad reading and a bad alert in one envelope report the reading, as decode_envelope does."""
    wire = payload([[*GOOD_ROW[:3], "furlongs", *GOOD_ROW[4:]]], alerts=[{"gateway": "gw-b"}])
    assert outcome(fast, wire) == outcome(decode_envelope, wire) == ("error", ("invalid", "readings.unit"))
