"""JSON message decoding: an MQTT payload (or JSON lines) in, one sample per configured field path out."""

from __future__ import annotations

import math
from collections import Counter
from datetime import datetime
from typing import Final

import orjson

from device_profiles.schema import JsonRead
from edge_agent.decode.base import DecodeError, DecodeStats, Sample

# One step per dotted part: the object key, and the list index when the part is all digits.
Path = tuple[tuple[str, int | None], ...]

_MISSING: Final = object()
_MAX_MS: Final = 253_402_300_800_000  # 10000-01-01T00:00:00Z


class JsonDecodeError(DecodeError):
    """A JSON message could not be decoded as a whole (reason: bad_json)."""

    reason = "bad_json"


def compile_path(dotted: str) -> Path:
    """Split `data.values.0` into steps; an all-digit step indexes a list or names an object key."""
    return tuple((step, int(step) if step.isdigit() else None) for step in dotted.split("."))


def resolve(doc: object, path: Path) -> object:
    """Return the value at `path` in `doc`, or the `_MISSING` marker."""
    node = doc
    for key, index in path:
        # orjson builds exact dicts and lists, so type() is enough (and faster than isinstance).
        if type(node) is dict:
            node = node.get(key, _MISSING)
            if node is _MISSING:
                return node
        elif type(node) is list and index is not None and index < len(node):
            node = node[index]
        else:
            return _MISSING
    return node


def as_number(value: object) -> float | None:
    """Return a JSON number or numeric string as a finite float; booleans and the rest give None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def parse_time(value: object, time_format: str) -> int | None:
    """Return a time field as UTC epoch milliseconds, or None when it does not parse."""
    if time_format == "rfc3339":
        if not isinstance(value, str):
            return None
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return None
        # RFC 3339 always carries an offset; a local time without one cannot be placed on the UTC axis.
        if moment.tzinfo is None:
            return None
        ms = moment.timestamp() * 1000
    else:
        number = as_number(value)
        if number is None:
            return None
        ms = number * 1000 if time_format == "epoch_s" else number
    # Outside 1970..9999 the field is garbage (and would overflow the 64-bit times stored downstream).
    return round(ms) if 0 <= ms < _MAX_MS else None


class _Compiled:
    """A JsonRead with its paths split once."""

    __slots__ = ("fields", "time_format", "time_path")

    def __init__(self, settings: JsonRead) -> None:
        self.fields = tuple((key, compile_path(path)) for key, path in settings.fields.items())
        self.time_path = compile_path(settings.time_field) if settings.time_field else None
        self.time_format = settings.time_format


def _parse(payload: bytes) -> object:
    """Parse one JSON document; raise JsonDecodeError if it is not JSON."""
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise JsonDecodeError(f"not JSON: {exc}") from exc


def _extract(doc: object, compiled: _Compiled, counts: Counter[str]) -> list[Sample]:
    """Pick the configured fields (and event time) out of a parsed message, counting what is skipped."""
    ts_ms: int | None = None
    if compiled.time_path is not None:
        raw_time = resolve(doc, compiled.time_path)
        if type(raw_time) is int and compiled.time_format == "epoch_ms" and 0 <= raw_time < _MAX_MS:
            ts_ms = raw_time  # the common case, without the general parser's conversions
        elif raw_time is _MISSING:
            counts["missing_time"] += 1
        elif (ts_ms := parse_time(raw_time, compiled.time_format)) is None:
            counts["bad_time"] += 1
    samples: list[Sample] = []
    for key, path in compiled.fields:
        raw = resolve(doc, path)
        # Fast paths first: orjson never yields a non-finite float, and a bool is not an exact int.
        if type(raw) is float:
            value: float | None = raw
        elif type(raw) is int:
            value = float(raw)
        elif raw is _MISSING:
            counts["missing_field"] += 1
            continue
        else:
            value = as_number(raw)
        if value is None:
            counts["bad_value"] += 1
            continue
        samples.append(Sample(key, value, ts_ms))
    return samples


def decode_message(payload: bytes, settings: JsonRead, stats: DecodeStats | None = None) -> list[Sample]:
    """Decode one JSON message into samples; missing or non-numeric fields are skipped (and counted)."""
    counts = stats.counts if stats is not None else Counter[str]()
    return _extract(_parse(payload), _Compiled(settings), counts)


class JsonDecoder:
    """Decoder for JSON messages: each feed() is one MQTT payload, or newline-separated JSON lines."""

    def __init__(self, settings: JsonRead) -> None:
        self.settings = settings
        self.stats = DecodeStats()
        self._compiled = _Compiled(settings)

    def feed(self, data: bytes, now_ms: int) -> list[Sample]:
        """Decode every message in `data`; bad messages are counted, never raised."""
        if not data or data.isspace():
            return []  # an empty MQTT payload clears a retained message; it carries no data
        try:
            doc = _parse(data)
        except JsonDecodeError:
            # Not one document (which may be pretty-printed over lines): JSON lines of a replay, or garbage.
            return [s for line in data.split(b"\n") if line.strip() for s in self._line(line)]
        self.stats.counts["messages"] += 1
        return _extract(doc, self._compiled, self.stats.counts)

    def _line(self, line: bytes) -> list[Sample]:
        """Decode one JSON line, counting its outcome."""
        try:
            doc = _parse(line)
        except JsonDecodeError as exc:
            self.stats.add(exc.reason)
            return []
        self.stats.counts["messages"] += 1
        return _extract(doc, self._compiled, self.stats.counts)
