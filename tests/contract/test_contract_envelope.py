"""Tests for the v1 wire contract: golden envelopes, round trips, row codecs and every ContractError."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.alerts import AlertEvent, AlertState, Location
from gateway.contract import (
    MAX_ENVELOPE_BYTES,
    REASONS,
    SCHEMA_VERSION,
    ContractError,
    Envelope,
    Lane,
    decode_alert,
    decode_envelope,
    decode_reading,
    encode_alert,
    encode_envelope,
    encode_reading,
)
from gateway.readings import UNITS, Quality, Reading, Reason
from gateway.topics import GATEWAY_ID_RE

HERE = Path(__file__).resolve().parent
GOLDEN = ("envelope_v1.json", "envelope_v1_alerts.json", "envelope_v1_status.json")
GW = "gw-futian-017"

# The pinned content of the golden files, written out by hand: changing the wire breaks these tests.
EXPECTED: dict[str, Envelope] = {
    "envelope_v1.json": Envelope(
        v=1,
        gateway=GW,
        seq=42,
        lane=Lane.TELEMETRY,
        sent_ms=1718000060000,
        readings=(
            Reading("aq-0001", "pm2_5", 35.2, "ug/m3", 1718000000000),
            Reading("aq-0001", "noise_la", 61.5, "dB(A)", 1718000000000, Quality.SUSPECT, Reason.OUT_OF_RANGE),
            Reading("gnss-07", "latitude", 22.54321, "deg", 1718000001000, Quality.BAD, Reason.NO_FIX),
            Reading("hj212-03", "cod", 0.0, "mg/L", 1718000002000, Quality.SUSPECT, Reason.INSTRUMENT_FLAG),
        ),
        dropped={"telemetry": 120},
    ),
    "envelope_v1_alerts.json": Envelope(
        v=1,
        gateway=GW,
        seq=43,
        lane=Lane.ALERTS,
        sent_ms=1718000061000,
        alerts=(
            AlertEvent(
                GW,
                "tunnel-gas-02",
                "gas_lel_high",
                AlertState.FIRING,
                2,
                1718000030000,
                "gas_lel",
                52.5,
                50.0,
                Location(22.5431, 114.0579, "440304-0201-000123", "440304001001"),
            ),
            AlertEvent(GW, "aq-0001", "no_data", AlertState.RESOLVED, 1, 1718000040000),
        ),
    ),
    "envelope_v1_status.json": Envelope(
        v=1,
        gateway=GW,
        seq=44,
        lane=Lane.STATUS,
        sent_ms=1718000062000,
        status={
            "ts_ms": 1718000062000,
            "state": "online",
            "uptime_s": 3600,
            "buffer": {"depth_items": 812, "autonomy_h": 71.5},
        },
        dropped={"status": 2, "telemetry": 7},
    ),
}


def _golden_doc(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads((HERE / name).read_bytes())
    return doc


def _canonical(doc: dict[str, Any]) -> bytes:
    return orjson.dumps({k: v for k, v in doc.items() if not k.startswith("$")})


@pytest.mark.parametrize("name", GOLDEN)
def test_golden_decodes_to_pinned_envelope(name: str) -> None:
    """Each golden file, read as bytes straight from disk, decodes to its pinned Envelope."""
    assert decode_envelope((HERE / name).read_bytes()) == EXPECTED[name]


@pytest.mark.parametrize("name", GOLDEN)
def test_golden_encodes_to_canonical_bytes(name: str) -> None:
    """Encoding the pinned Envelope yields exactly the golden file's compact canonical bytes."""
    assert encode_envelope(EXPECTED[name]) == _canonical(_golden_doc(name))


def test_schema_version_is_one() -> None:
    """The golden files pin schema version 1."""
    assert SCHEMA_VERSION == 1
    assert {_golden_doc(n)["v"] for n in GOLDEN} == {SCHEMA_VERSION}


TEXT = st.text(st.characters(codec="utf-8"), min_size=1, max_size=20)
FINITE = st.floats(allow_nan=False, allow_infinity=False)
TS = st.integers(min_value=0, max_value=2**63 - 1)
GATEWAYS = st.from_regex(GATEWAY_ID_RE, fullmatch=True)

READINGS = st.builds(
    Reading,
    device=TEXT,
    quantity=TEXT,
    value=FINITE,
    unit=st.sampled_from(sorted(UNITS)),
    ts_ms=TS,
    quality=st.sampled_from(Quality),
    reason=st.none() | st.sampled_from(Reason),
)
LOCATIONS = st.none() | st.builds(
    Location,
    lat=st.none() | FINITE,
    lon=st.none() | FINITE,
    part_id=st.none() | TEXT,
    grid=st.none() | TEXT,
)


def _alerts(gateway: str) -> st.SearchStrategy[AlertEvent]:
    return st.builds(
        AlertEvent,
        gateway=st.just(gateway),
        device=TEXT,
        rule=TEXT,
        state=st.sampled_from(AlertState),
        severity=st.integers(min_value=-(2**63), max_value=2**63 - 1),
        ts_ms=TS,
        quantity=st.none() | TEXT,
        value=st.none() | FINITE,
        threshold=st.none() | FINITE,
        location=LOCATIONS,
    )


@st.composite
def envelopes(draw: st.DrawFn) -> Envelope:
    """Draw a valid envelope with any mix of readings, alerts, status and drop counts."""
    gateway = draw(GATEWAYS)
    return Envelope(
        v=SCHEMA_VERSION,
        gateway=gateway,
        seq=draw(TS),
        lane=draw(st.sampled_from(Lane)),
        sent_ms=draw(TS),
        readings=tuple(draw(st.lists(READINGS, max_size=8))),
        alerts=tuple(draw(st.lists(_alerts(gateway), max_size=3))),
        status=draw(st.none() | st.dictionaries(TEXT, st.integers(0, 10**6) | TEXT, max_size=3)),
        dropped=draw(st.dictionaries(st.sampled_from([lane.value for lane in Lane]), TS)),
    )


@settings(max_examples=300, deadline=None)
@given(envelopes())
def test_envelope_round_trip(env: Envelope) -> None:
    """Any valid envelope survives encode then decode unchanged, and re-encodes to the same bytes."""
    data = encode_envelope(env)
    back = decode_envelope(data)
    assert back == env
    assert encode_envelope(back) == data


@settings(max_examples=300, deadline=None)
@given(READINGS)
def test_reading_row_round_trip(reading: Reading) -> None:
    """A reading's buffer row is its envelope row and decodes back to an equal reading."""
    row = encode_reading(reading)
    assert decode_reading(row) == reading
    assert (
        orjson.loads(row)
        == orjson.loads(encode_envelope(Envelope(1, "g", 1, Lane.TELEMETRY, 0, (reading,))))["readings"][0]
    )


@settings(max_examples=300, deadline=None)
@given(GATEWAYS.flatmap(_alerts))
def test_alert_row_round_trip(alert: AlertEvent) -> None:
    """An alert's compact array row decodes back to an equal AlertEvent."""
    row = encode_alert(alert)
    assert type(orjson.loads(row)) is list
    assert decode_alert(row) == alert


def test_reading_integer_value_decodes_as_float() -> None:
    """A JSON integer value (from a foreign encoder) is accepted and becomes a float."""
    reading = decode_reading(b'["d","pm10",7,"ug/m3",5,"good",null]')
    assert reading.value == 7.0
    assert type(reading.value) is float


@pytest.mark.parametrize(
    ("reading", "field"),
    [
        (Reading("d", "pm10", float("nan"), "ug/m3", 1), "readings.value"),
        (Reading("d", "pm10", float("inf"), "ug/m3", 1), "readings.value"),
        (Reading("d", "pm10", 1.0, "furlong", 1), "readings.unit"),
        (Reading("d\ud800", "pm10", 1.0, "ug/m3", 1), "readings"),
    ],
)
def test_encode_reading_rejects_what_decode_would(reading: Reading, field: str) -> None:
    """The encoder refuses non-finite values, unknown units and unencodable text, naming the field."""
    with pytest.raises(ContractError) as info:
        encode_reading(reading)
    assert (info.value.reason, info.value.field) == ("invalid", field)


def test_oversize_is_rejected_before_parsing() -> None:
    """Bytes over the limit fail with reason oversize, even when they are not JSON at all."""
    with pytest.raises(ContractError) as info:
        decode_envelope(b"x" * (MAX_ENVELOPE_BYTES + 1))
    assert info.value.reason == "oversize"
    golden = (HERE / GOLDEN[0]).read_bytes()
    with pytest.raises(ContractError) as info:
        decode_envelope(golden, max_bytes=len(golden) - 1)
    assert info.value.reason == "oversize"
    assert decode_envelope(golden, max_bytes=len(golden)) == EXPECTED[GOLDEN[0]]


@pytest.mark.parametrize("data", [b"", b"{", b"not json", b"[1, 2]", b"42", b'"v"', b"\xff\xfe{}", b"null"])
def test_malformed(data: bytes) -> None:
    """Anything that is not a JSON object fails with reason malformed."""
    with pytest.raises(ContractError) as info:
        decode_envelope(data)
    assert info.value.reason == "malformed"


@pytest.mark.parametrize("version", [2, 0, "1", 1.0, True, None, "missing"])
def test_schema_version(version: object) -> None:
    """A missing or different schema version fails with reason schema_version."""
    doc = _golden_doc(GOLDEN[0])
    if version == "missing":
        del doc["v"]
    else:
        doc["v"] = version
    with pytest.raises(ContractError) as info:
        decode_envelope(orjson.dumps(doc))
    assert info.value.reason == "schema_version"


def _set(path: tuple[str | int, ...], value: object) -> Any:
    def apply(doc: dict[str, Any]) -> None:
        target: Any = doc
        for key in path[:-1]:
            target = target[key]
        if value is _DELETE:
            del target[path[-1]]
        else:
            target[path[-1]] = value

    return apply


_DELETE = object()

INVALID_CASES: list[tuple[str, str, Any, str]] = [
    (GOLDEN[0], "gateway", _set(("gateway",), "GW/1"), "gateway"),
    (GOLDEN[0], "gateway-missing", _set(("gateway",), _DELETE), "gateway"),
    (GOLDEN[0], "seq", _set(("seq",), -1), "seq"),
    (GOLDEN[0], "seq-bool", _set(("seq",), True), "seq"),
    (GOLDEN[0], "lane", _set(("lane",), "bulk"), "lane"),
    (GOLDEN[0], "sent_ms", _set(("sent_ms",), "now"), "sent_ms"),
    (GOLDEN[0], "dropped-lane", _set(("dropped",), {"bogus": 1}), "dropped"),
    (GOLDEN[0], "dropped-count", _set(("dropped",), {"telemetry": -3}), "dropped"),
    (GOLDEN[0], "dropped-type", _set(("dropped",), [1]), "dropped"),
    (GOLDEN[0], "status", _set(("status",), 3), "status"),
    (GOLDEN[0], "alerts", _set(("alerts",), {}), "alerts"),
    (GOLDEN[0], "readings", _set(("readings",), {}), "readings"),
    (GOLDEN[0], "readings-missing", _set(("readings",), _DELETE), "readings"),
    (GOLDEN[0], "row-short", _set(("readings", 0), ["d", "pm10", 1.0, "ug/m3", 1, "good"]), "readings"),
    (GOLDEN[0], "row-object", _set(("readings", 0), {"device": "d"}), "readings"),
    (GOLDEN[0], "device", _set(("readings", 1, 0), ""), "readings.device"),
    (GOLDEN[0], "quantity", _set(("readings", 1, 1), 5), "readings.quantity"),
    (GOLDEN[0], "value", _set(("readings", 1, 2), "61.5"), "readings.value"),
    (GOLDEN[0], "value-bool", _set(("readings", 1, 2), True), "readings.value"),
    (GOLDEN[0], "value-null", _set(("readings", 1, 2), None), "readings.value"),
    (GOLDEN[0], "unit", _set(("readings", 1, 3), "furlong"), "readings.unit"),
    (GOLDEN[0], "unit-list", _set(("readings", 1, 3), ["deg"]), "readings.unit"),
    (GOLDEN[0], "ts_ms", _set(("readings", 1, 4), 1.5), "readings.ts_ms"),
    (GOLDEN[0], "ts_ms-negative", _set(("readings", 1, 4), -1), "readings.ts_ms"),
    (GOLDEN[0], "quality", _set(("readings", 1, 5), "meh"), "readings.quality"),
    (GOLDEN[0], "quality-list", _set(("readings", 1, 5), []), "readings.quality"),
    (GOLDEN[0], "reason", _set(("readings", 1, 6), "because"), "readings.reason"),
    (GOLDEN[0], "reason-list", _set(("readings", 1, 6), ["stale"]), "readings.reason"),
    (GOLDEN[1], "alert-object", _set(("alerts", 0), ["x"]), "alerts"),
    (GOLDEN[1], "alert-gateway", _set(("alerts", 0, "gateway"), "gw-other"), "alerts.gateway"),
    (GOLDEN[1], "alert-gateway-bad", _set(("alerts", 0, "gateway"), "GW"), "alerts.gateway"),
    (GOLDEN[1], "alert-device", _set(("alerts", 0, "device"), None), "alerts.device"),
    (GOLDEN[1], "alert-rule", _set(("alerts", 0, "rule"), _DELETE), "alerts.rule"),
    (GOLDEN[1], "alert-state", _set(("alerts", 0, "state"), "angry"), "alerts.state"),
    (GOLDEN[1], "alert-severity", _set(("alerts", 0, "severity"), "high"), "alerts.severity"),
    (GOLDEN[1], "alert-ts", _set(("alerts", 0, "ts_ms"), None), "alerts.ts_ms"),
    (GOLDEN[1], "alert-quantity", _set(("alerts", 0, "quantity"), ""), "alerts.quantity"),
    (GOLDEN[1], "alert-value", _set(("alerts", 0, "value"), "52"), "alerts.value"),
    (GOLDEN[1], "alert-threshold", _set(("alerts", 0, "threshold"), False), "alerts.threshold"),
    (GOLDEN[1], "alert-location", _set(("alerts", 0, "location"), [1, 2]), "alerts.location"),
    (GOLDEN[1], "alert-lat", _set(("alerts", 0, "location", "lat"), "22N"), "alerts.location.lat"),
    (GOLDEN[1], "alert-lon", _set(("alerts", 0, "location", "lon"), True), "alerts.location.lon"),
    (GOLDEN[1], "alert-part", _set(("alerts", 0, "location", "part_id"), 7), "alerts.location.part_id"),
    (GOLDEN[1], "alert-grid", _set(("alerts", 0, "location", "grid"), 7), "alerts.location.grid"),
]


@pytest.mark.parametrize(
    ("name", "mutate", "field"),
    [pytest.param(name, mutate, field, id=case) for name, case, mutate, field in INVALID_CASES],
)
def test_invalid_names_the_field(name: str, mutate: Any, field: str) -> None:
    """Each broken field of an otherwise golden envelope fails with reason invalid naming that field."""
    doc = copy.deepcopy(_golden_doc(name))
    mutate(doc)
    with pytest.raises(ContractError) as info:
        decode_envelope(orjson.dumps(doc))
    assert (info.value.reason, info.value.field) == ("invalid", field)


def test_unknown_top_level_keys_are_ignored() -> None:
    """An additive v1 field from a newer encoder does not break an older decoder."""
    doc = _golden_doc(GOLDEN[0])
    doc["future_field"] = {"anything": [1, 2, 3]}
    assert decode_envelope(orjson.dumps(doc)) == EXPECTED[GOLDEN[0]]


@pytest.mark.parametrize(
    "row", [b"", b"{}", b"[1]", b'["d","pm10",1.0,"ug/m3",1,"good",null,"extra"]', b'["d","pm10",1.0']
)
def test_bad_reading_rows(row: bytes) -> None:
    """A corrupt buffer row fails decode_reading with a ContractError, never another exception."""
    with pytest.raises(ContractError) as info:
        decode_reading(row)
    assert info.value.reason in {"malformed", "invalid"}


@pytest.mark.parametrize("row", [b"[]", b'["g","d","r","firing",1,1,null,null,null,7]', b"nope"])
def test_bad_alert_rows(row: bytes) -> None:
    """A corrupt alert row fails decode_alert with a ContractError."""
    with pytest.raises(ContractError) as info:
        decode_alert(row)
    assert info.value.reason in {"malformed", "invalid"}


def test_every_reason_is_documented() -> None:
    """The stable reason names are exactly the four the contract documents."""
    assert frozenset({"oversize", "malformed", "schema_version", "invalid"}) == REASONS


ANY_READING = st.builds(
    Reading,
    device=st.text(max_size=5) | st.integers(),
    quantity=st.text(max_size=5),
    value=st.floats() | st.integers(min_value=-(2**70), max_value=2**70) | st.booleans() | st.text(max_size=3),
    unit=st.sampled_from(sorted(UNITS)) | st.text(max_size=5),
    ts_ms=st.integers(min_value=-5, max_value=2**65) | st.floats(),
    quality=st.sampled_from(Quality) | st.text(max_size=5),
    reason=st.none() | st.sampled_from(Reason) | st.text(max_size=5),
)


@settings(max_examples=300, deadline=None)
@given(ANY_READING)
def test_encode_reading_never_writes_what_decode_refuses(reading: Reading) -> None:
    """Whatever fields a Reading holds, encode either refuses it or writes a row decode accepts."""
    error: ContractError | None = None
    try:
        row = encode_reading(reading)
    except ContractError as exc:
        error = exc
    if error is not None:
        assert (error.reason, str(error.field).split(".")[0]) == ("invalid", "readings")
        return
    assert decode_reading(row).value == float(reading.value)


ANY_ALERT = st.builds(
    AlertEvent,
    gateway=st.sampled_from([GW, "", "GW"]),
    device=st.text(max_size=3),
    rule=st.text(max_size=3),
    state=st.sampled_from(AlertState) | st.text(max_size=3),
    severity=st.integers(min_value=-(2**65), max_value=2**65) | st.booleans(),
    ts_ms=st.integers(min_value=-2, max_value=2**64),
    quantity=st.none() | st.text(max_size=3),
    value=st.none() | st.floats(),
    threshold=st.none() | st.floats() | st.text(max_size=2),
    location=st.none() | st.builds(Location, lat=st.none() | st.floats(), lon=st.none() | st.floats()),
)


@settings(max_examples=300, deadline=None)
@given(ANY_ALERT)
def test_encode_alert_never_writes_what_decode_refuses(alert: AlertEvent) -> None:
    """Whatever fields an AlertEvent holds, both alert encodings either refuse it or decode back."""
    error: ContractError | None = None
    try:
        row = encode_alert(alert)
    except ContractError as exc:
        error = exc
    if error is not None:
        assert (error.reason, str(error.field).split(".")[0]) == ("invalid", "alerts")
        return
    assert decode_alert(row).fingerprint == alert.fingerprint
    env = Envelope(1, GW, 1, Lane.ALERTS, 0, alerts=(alert,))
    assert decode_envelope(encode_envelope(env)).alerts == (decode_alert(row),)
