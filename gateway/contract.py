"""The wire contract: Envelope, Reading and AlertEvent in, orjson bytes out, and back (or a ContractError).

Schema version 1. One envelope is one JSON object per MQTT message, at most MAX_ENVELOPE_BYTES, keys
written in this order (decoders ignore unknown top-level keys, so v1 may only grow additively):

    {"v": 1,                          schema version; any other value -> reason "schema_version"
     "gateway": "gw-001",             gateway id, ^[a-z0-9][a-z0-9_-]{0,63}$
     "seq": 42,                       per-gateway batch number, strictly increasing; a resend repeats it
                                      with identical bytes; gaps mean the edge buffer dropped a batch
     "lane": "telemetry",             alerts | status | telemetry (edge priority in that order)
     "sent_ms": 1718000000000,        when the edge sealed the batch (UTC ms), not when it was published
     "dropped": {"telemetry": 120},   items the edge buffer dropped since the previous envelope, by lane
     "status": null,                  health object on status-lane heartbeats, else null
     "alerts": [{...}],               AlertEvent objects, see below
     "readings": [[device, quantity, value, unit, ts_ms, quality, reason], ...]}

A reading row is a 7-item array: device and quantity non-empty strings, value a finite number, unit one
of gateway.readings.UNITS, ts_ms a non-negative int (UTC ms event time), quality good|suspect|bad,
reason null or a gateway.readings.Reason value. Arrays keep the hot path cheap (250k+ readings/s).

An alert object: {"gateway", "device", "rule", "state", "severity", "ts_ms", "quantity", "value",
"threshold", "location"} where gateway equals the envelope's, state is an AlertState value, severity an
int, quantity/value/threshold may be null, location is null or {"lat", "lon", "part_id", "grid"}.

For the edge buffer, single rows have compact array codecs: `encode_reading` is exactly the envelope's
reading row (so sealing is byte concatenation), `encode_alert` is
[gateway, device, rule, state, severity, ts_ms, quantity, value, threshold, [lat, lon, part_id, grid] | null].

Errors: ContractError.reason is one of oversize, malformed, schema_version, invalid; for invalid,
ContractError.field names the offending field (e.g. "readings.unit", "alerts.gateway", "seq").
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Final, TypeGuard

import orjson

from gateway.alerts import AlertEvent, AlertState, Location
from gateway.readings import UNITS, Quality, Reading, Reason
from gateway.topics import is_gateway_id

SCHEMA_VERSION: Final = 1
MAX_ENVELOPE_BYTES: Final = 1024 * 1024
# One buffered row (a reading, an alert, a status object) may not exceed this, so any row fits an envelope.
MAX_ROW_BYTES: Final = 64 * 1024
REASONS: Final = frozenset({"oversize", "malformed", "schema_version", "invalid"})


class ContractError(ValueError):
    """Bytes or values break the wire contract; `reason` is stable, `field` names the culprit."""

    def __init__(self, message: str, *, reason: str, field: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.field = field


class Lane(StrEnum):
    """A delivery lane; the edge sends alerts first, then status, then telemetry."""

    ALERTS = "alerts"
    STATUS = "status"
    TELEMETRY = "telemetry"


LANE_PRIORITY: Final[tuple[Lane, ...]] = (Lane.ALERTS, Lane.STATUS, Lane.TELEMETRY)


@dataclass(frozen=True, slots=True)
class Envelope:
    """One batch on the wire: a lane of one gateway's readings, alerts or status, with its seq."""

    v: int
    gateway: str
    seq: int
    lane: Lane
    sent_ms: int
    readings: tuple[Reading, ...] = ()
    alerts: tuple[AlertEvent, ...] = ()
    status: dict[str, Any] | None = None
    dropped: dict[str, int] = field(default_factory=dict)


_LANES: Final[dict[str, Lane]] = {lane.value: lane for lane in Lane}
_QUALITY: Final[dict[str, Quality]] = {q.value: q for q in Quality}
_REASON: Final[dict[str | None, Reason | None]] = {None: None, **{r.value: r for r in Reason}}
_STATES: Final[dict[str, AlertState]] = {s.value: s for s in AlertState}
_INF: Final = float("inf")
_COLUMNS: Final = tuple(operator.itemgetter(i) for i in range(7))
_ALERT_KEYS: Final = (
    "gateway",
    "device",
    "rule",
    "state",
    "severity",
    "ts_ms",
    "quantity",
    "value",
    "threshold",
)
_LOCATION_KEYS: Final = ("lat", "lon", "part_id", "grid")


def _invalid(field_name: str, detail: str = "") -> ContractError:
    return ContractError(f"invalid {field_name}{': ' + detail if detail else ''}", reason="invalid", field=field_name)


def _is_number(value: object) -> TypeGuard[float]:
    # bool is an int subclass; it is not a number on this wire. NaN fails both comparisons.
    return (type(value) is float or type(value) is int) and -_INF < value < _INF


def _is_text(value: object) -> TypeGuard[str]:
    return type(value) is str and value != ""


def _is_ts(value: object) -> TypeGuard[int]:
    return type(value) is int and value >= 0


def encode_reading(reading: Reading) -> bytes:
    """Encode one reading as its wire row `[device, quantity, value, unit, ts_ms, quality, reason]`.

    Refuses (ContractError "invalid") exactly what decode would refuse, so no row can poison an envelope.
    """
    device, quantity, value, unit, ts_ms = (
        reading.device,
        reading.quantity,
        reading.value,
        reading.unit,
        reading.ts_ms,
    )
    quality, reason = reading.quality, reading.reason
    try:
        # isinstance, not type(): numpy floats are float subclasses and become plain floats below.
        valid = (
            isinstance(device, str)
            and device != ""
            and isinstance(quantity, str)
            and quantity != ""
            and isinstance(value, float | int)
            and not isinstance(value, bool)
            and -_INF < float(value) < _INF
            and unit in UNITS
            and type(ts_ms) is int
            and ts_ms >= 0
            and quality in _QUALITY
            and reason in _REASON
        )
    except (TypeError, OverflowError):  # an unhashable unit, quality or reason; an int too big for a float
        valid = False
    if not valid:
        # The decoder's own validator names the offending field.
        _reading_from_row([device, quantity, value, unit, ts_ms, quality, reason])
        raise _invalid("readings", repr(reading))
    try:
        return orjson.dumps((device, quantity, float(value), unit, ts_ms, quality, reason))
    except orjson.JSONEncodeError as exc:
        raise _invalid("readings", str(exc)) from exc


def _reading_from_row(row: object) -> Reading:
    if type(row) is not list or len(row) != 7:
        raise _invalid("readings", "a reading is a 7-item array")
    device, quantity, value, unit, ts_ms, quality, reason = row
    if not _is_text(device):
        raise _invalid("readings.device")
    if not _is_text(quantity):
        raise _invalid("readings.quantity")
    if not _is_number(value):
        raise _invalid("readings.value")
    if type(unit) is not str or unit not in UNITS:
        raise _invalid("readings.unit", repr(unit))
    if not _is_ts(ts_ms):
        raise _invalid("readings.ts_ms")
    q = _QUALITY.get(quality) if type(quality) is str else None
    if q is None:
        raise _invalid("readings.quality", repr(quality))
    if reason is not None and (type(reason) is not str or reason not in _REASON):
        raise _invalid("readings.reason", repr(reason))
    return Reading(device, quantity, float(value), unit, ts_ms, q, _REASON[reason])


def decode_reading(data: bytes) -> Reading:
    """Decode one wire reading row (as stored by the buffer)."""
    return _reading_from_row(_loads(data))


def _location(lat: object, lon: object, part_id: object, grid: object) -> Location:
    if lat is not None and not _is_number(lat):
        raise _invalid("alerts.location.lat")
    if lon is not None and not _is_number(lon):
        raise _invalid("alerts.location.lon")
    if part_id is not None and type(part_id) is not str:
        raise _invalid("alerts.location.part_id")
    if grid is not None and type(grid) is not str:
        raise _invalid("alerts.location.grid")
    return Location(
        None if lat is None else float(lat),
        None if lon is None else float(lon),
        part_id,
        grid,
    )


def _alert(fields: Sequence[object], location: Location | None) -> AlertEvent:
    gateway, device, rule, state, severity, ts_ms, quantity, value, threshold = fields
    if not is_gateway_id(gateway):
        raise _invalid("alerts.gateway", repr(gateway))
    if not _is_text(device):
        raise _invalid("alerts.device")
    if not _is_text(rule):
        raise _invalid("alerts.rule")
    st = _STATES.get(state) if isinstance(state, str) else None
    if st is None:
        raise _invalid("alerts.state", repr(state))
    if type(severity) is not int:
        raise _invalid("alerts.severity")
    if not _is_ts(ts_ms):
        raise _invalid("alerts.ts_ms")
    if quantity is not None and not _is_text(quantity):
        raise _invalid("alerts.quantity")
    if value is not None and not _is_number(value):
        raise _invalid("alerts.value")
    if threshold is not None and not _is_number(threshold):
        raise _invalid("alerts.threshold")
    return AlertEvent(
        gateway,
        device,
        rule,
        st,
        severity,
        ts_ms,
        quantity,
        None if value is None else float(value),
        None if threshold is None else float(threshold),
        location,
    )


def _plain_number(value: object) -> object:
    # numpy scalars and other float subclasses become floats; anything else is left for the validator.
    if isinstance(value, float | int) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:
            return value
    return value


def _alert_fields(alert: AlertEvent) -> tuple[list[object], list[object] | None]:
    """Return the alert's row fields and location list, numbers normalized, validated like decode does."""
    loc = alert.location
    location = None if loc is None else [_plain_number(loc.lat), _plain_number(loc.lon), loc.part_id, loc.grid]
    fields: list[object] = [
        alert.gateway,
        alert.device,
        alert.rule,
        alert.state,
        alert.severity,
        alert.ts_ms,
        alert.quantity,
        _plain_number(alert.value),
        _plain_number(alert.threshold),
    ]
    _alert(fields, None if location is None else _location(*location))
    return fields, location


def encode_alert(alert: AlertEvent) -> bytes:
    """Encode one alert as a compact buffer row (an array, see the module docstring)."""
    fields, location = _alert_fields(alert)
    try:
        return orjson.dumps([*fields, location])
    except orjson.JSONEncodeError as exc:
        raise _invalid("alerts", str(exc)) from exc


def decode_alert(data: bytes) -> AlertEvent:
    """Decode one alert buffer row."""
    row = _loads(data)
    if type(row) is not list or len(row) != 10:
        raise _invalid("alerts", "an alert row is a 10-item array")
    loc = row[9]
    if loc is None:
        location = None
    elif type(loc) is list and len(loc) == len(_LOCATION_KEYS):
        location = _location(*loc)
    else:
        raise _invalid("alerts.location")
    return _alert(row[:9], location)


def alert_object(alert: AlertEvent) -> dict[str, Any]:
    """Return the envelope's JSON object form of one alert (validated like decode does)."""
    fields, location = _alert_fields(alert)
    obj = dict(zip(_ALERT_KEYS, fields, strict=True))
    obj["location"] = None if location is None else dict(zip(_LOCATION_KEYS, location, strict=True))
    return obj


def _alert_from_object(obj: object, gateway: str) -> AlertEvent:
    if type(obj) is not dict:
        raise _invalid("alerts", "an alert is an object")
    loc = obj.get("location")
    if loc is None:
        location = None
    elif type(loc) is dict:
        location = _location(*(loc.get(k) for k in _LOCATION_KEYS))
    else:
        raise _invalid("alerts.location")
    alert = _alert([obj.get(k) for k in _ALERT_KEYS], location)
    if alert.gateway != gateway:
        raise _invalid("alerts.gateway", "differs from the envelope's gateway")
    return alert


def assemble_envelope(
    *,
    gateway: str,
    seq: int,
    lane: Lane,
    sent_ms: int,
    reading_rows: Iterable[bytes] = (),
    alerts: Sequence[AlertEvent] = (),
    status: dict[str, Any] | orjson.Fragment | None = None,
    dropped: Mapping[str, int] | None = None,
    v: int = SCHEMA_VERSION,
) -> bytes:
    """Build envelope bytes around already-encoded reading rows (the buffer's cheap sealing path)."""
    if not is_gateway_id(gateway):
        raise _invalid("gateway", repr(gateway))
    try:
        return _dump_envelope(v, gateway, seq, lane, sent_ms, reading_rows, alerts, status, dropped)
    except orjson.JSONEncodeError as exc:
        raise _invalid("envelope", str(exc)) from exc


def _dump_envelope(
    v: int,
    gateway: str,
    seq: int,
    lane: Lane,
    sent_ms: int,
    reading_rows: Iterable[bytes],
    alerts: Sequence[AlertEvent],
    status: dict[str, Any] | orjson.Fragment | None,
    dropped: Mapping[str, int] | None,
) -> bytes:
    return orjson.dumps(
        {
            "v": v,
            "gateway": gateway,
            "seq": seq,
            "lane": lane,
            "sent_ms": sent_ms,
            "dropped": {} if dropped is None else dict(dropped),
            "status": status,
            "alerts": [alert_object(a) for a in alerts],
            "readings": orjson.Fragment(b"[" + b",".join(reading_rows) + b"]"),
        }
    )


def encode_envelope(env: Envelope) -> bytes:
    """Encode an envelope to its canonical wire bytes."""
    return assemble_envelope(
        gateway=env.gateway,
        seq=env.seq,
        lane=env.lane,
        sent_ms=env.sent_ms,
        reading_rows=[encode_reading(r) for r in env.readings],
        alerts=env.alerts,
        status=env.status,
        dropped=env.dropped,
        v=env.v,
    )


def _loads(data: bytes | bytearray | memoryview | str) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ContractError(f"malformed JSON: {exc}", reason="malformed") from exc


def _header(data: bytes | bytearray | memoryview, max_bytes: int) -> tuple[dict[str, Any], Envelope]:
    """Parse and validate everything but readings and alerts; return the document and a bare Envelope."""
    if len(data) > max_bytes:
        raise ContractError(f"envelope of {len(data)} bytes exceeds {max_bytes}", reason="oversize")
    doc = _loads(data)
    if type(doc) is not dict:
        raise ContractError("an envelope is a JSON object", reason="malformed")
    v = doc.get("v")
    if type(v) is not int or v != SCHEMA_VERSION:
        raise ContractError(f"unsupported schema version {v!r}", reason="schema_version")
    gateway = doc.get("gateway")
    if not is_gateway_id(gateway):
        raise _invalid("gateway", repr(gateway))
    seq = doc.get("seq")
    if not _is_ts(seq):
        raise _invalid("seq", repr(seq))
    lane_value = doc.get("lane")
    lane = _LANES.get(lane_value) if type(lane_value) is str else None
    if lane is None:
        raise _invalid("lane", repr(lane_value))
    sent_ms = doc.get("sent_ms")
    if not _is_ts(sent_ms):
        raise _invalid("sent_ms", repr(sent_ms))
    dropped = doc.get("dropped")
    if type(dropped) is not dict or not all(k in _LANES and _is_ts(n) for k, n in dropped.items()):
        raise _invalid("dropped", repr(dropped))
    status = doc.get("status")
    if status is not None and type(status) is not dict:
        raise _invalid("status", "an object or null")
    if type(doc.get("alerts")) is not list:
        raise _invalid("alerts", "an array")
    if type(doc.get("readings")) is not list:
        raise _invalid("readings", "an array")
    return doc, Envelope(v=v, gateway=gateway, seq=seq, lane=lane, sent_ms=sent_ms, status=status, dropped=dropped)


def decode_envelope(data: bytes | bytearray | memoryview, *, max_bytes: int = MAX_ENVELOPE_BYTES) -> Envelope:
    """Decode and validate one envelope; raise ContractError with a stable reason on bad input."""
    doc, env = _header(data, max_bytes)
    readings = tuple(map(_reading_from_row, doc["readings"]))
    alerts = tuple(_alert_from_object(a, env.gateway) for a in doc["alerts"])
    return replace(env, readings=readings, alerts=alerts)


# A batch of readings as seven parallel lists: devices, quantities, values, units, stamps, qualities, reasons.
RowColumns = tuple[list[Any], list[Any], list[Any], list[Any], list[Any], list[Any], list[Any]]


def _row_columns(rows: list[Any]) -> tuple[RowColumns, bool] | None:
    """Return the columns and whether some value is an int if every row passes `_reading_from_row`, else None.

    Checked a column at a time with C loops, which is what makes this path fast.
    """
    try:
        if set(map(type, rows)) != {list} or set(map(len, rows)) != {7}:
            return None
        # Columns via itemgetter, not zip(*rows), which allocates an iterator per row (and wakes the GC).
        columns: RowColumns = tuple(list(map(get, rows)) for get in _COLUMNS)  # type: ignore[assignment]
        devices, quantities, values, units, stamps, qualities, reasons = columns
        # Distinct values only: a batch has few devices, units and qualities. Non-str items fail the type
        # check; orjson yields no str subclass, so `<=` on the str-keyed sets implies exact str.
        for texts in (set(devices), set(quantities)):
            if set(map(type, texts)) != {str} or "" in texts:
                return None
        value_types = set(map(type, values))
        if not value_types <= {float, int} or not -_INF < sum(values) < _INF:
            return None  # a NaN or an infinity makes the sum non-finite; bool is its own type
        if set(map(type, stamps)) != {int} or min(stamps) < 0:
            return None
        if set(units) <= UNITS and set(qualities) <= _QUALITY.keys() and set(reasons) <= _REASON.keys():
            return columns, int in value_types
        return None
    except (TypeError, OverflowError):  # unhashable items; a sum too big for a float: let the row checks say
        return None


def _checked_columns(rows: list[Any]) -> tuple[RowColumns, bool]:
    """Return `_row_columns(rows)`; raise the exact ContractError of the first bad row if there is one."""
    checked = _row_columns(rows) if rows else None
    if checked is not None:
        return checked
    for row in rows:
        _reading_from_row(row)  # raises the exact error of the first bad row
    # Reached with good rows only when a column check is stricter than the row check (a sum overflowing).
    columns: RowColumns = tuple(list(map(get, rows)) for get in _COLUMNS)  # type: ignore[assignment]
    return columns, True


def decode_envelope_columns(
    data: bytes | bytearray | memoryview, *, max_bytes: int = MAX_ENVELOPE_BYTES
) -> tuple[Envelope, RowColumns]:
    """Decode like decode_envelope but return the readings as seven validated columns, readings empty.

    The columns are devices, quantities, values (ints or floats), units, stamps, and qualities and reasons as
    their wire strings; the same input raises the same ContractError as decode_envelope.
    """
    doc, env = _header(data, max_bytes)
    columns, _ = _checked_columns(doc["readings"])
    alerts = tuple(_alert_from_object(a, env.gateway) for a in doc["alerts"])
    return replace(env, alerts=alerts), columns
