"""Tests of the JSON message decoder: field paths, numbers, missing fields, bad JSON and event times."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device_profiles.schema import JsonRead
from edge_agent.decode.base import DecodeStats, Sample
from edge_agent.decode.jsonpath import JsonDecodeError, JsonDecoder, decode_message

TS = 1_718_000_000_123


def settings_for(fields: dict[str, str], time_field: str | None = None, fmt: str = "epoch_ms") -> JsonRead:
    """Build JsonRead settings."""
    return JsonRead.model_validate({"fields": fields, "time_field": time_field, "time_format": fmt})


def test_dotted_paths_and_list_index() -> None:
    """`data.tilt` walks objects and `values.1` indexes a list."""
    read = settings_for({"tilt": "data.tilt", "second": "values.1", "top": "top"})
    msg = orjson.dumps({"data": {"tilt": 3.5}, "values": [10, 20, 30], "top": 7})
    assert decode_message(msg, read) == [Sample("tilt", 3.5), Sample("second", 20.0), Sample("top", 7.0)]


def test_digit_key_in_object() -> None:
    """A digit step looks up an object key when the node is an object (`{"0": ...}`)."""
    read = settings_for({"v": "ch.0"})
    assert decode_message(b'{"ch": {"0": 4.5}}', read) == [Sample("v", 4.5)]


def test_numeric_strings_accepted() -> None:
    """A number sent as a string (`"12.5"`) is accepted."""
    assert decode_message(b'{"t": " 12.5 "}', settings_for({"t": "t"})) == [Sample("t", 12.5)]


@pytest.mark.parametrize("raw", ["true", "false", "null", '"abc"', '"NaN"', '"inf"', '"1e999"', "{}", "[1]"])
def test_non_numbers_are_bad_value(raw: str) -> None:
    """Booleans, null, text, non-finite numbers and containers are counted as bad_value, not samples."""
    stats = DecodeStats()
    read = settings_for({"v": "v", "ok": "ok"})
    assert decode_message(f'{{"v": {raw}, "ok": 1}}'.encode(), read, stats) == [Sample("ok", 1.0)]
    assert stats.counts["bad_value"] == 1


@pytest.mark.parametrize("path", ["missing", "data.tilt.deeper", "values.5", "values.x", "data.0"])
def test_missing_fields_counted(path: str) -> None:
    """A path that leads nowhere is counted as missing_field and the other fields still decode."""
    stats = DecodeStats()
    read = settings_for({"v": path, "ok": "ok"})
    msg = b'{"data": {"tilt": 1}, "values": [1, 2], "ok": 2}'
    assert decode_message(msg, read, stats) == [Sample("ok", 2.0)]
    assert stats.counts["missing_field"] == 1


def test_top_level_list_message() -> None:
    """A message whose top level is a list is walked by index."""
    assert decode_message(b"[5, 6]", settings_for({"v": "1"})) == [Sample("v", 6.0)]


@pytest.mark.parametrize("payload", [b"{", b"not json", b'{"a": 1} {"b": 2}', b"\xff\xfe", b"NaN"])
def test_bad_json_raises_typed_error(payload: bytes) -> None:
    """Malformed JSON raises JsonDecodeError with reason bad_json from decode_message."""
    with pytest.raises(JsonDecodeError) as info:
        decode_message(payload, settings_for({"v": "v"}))
    assert info.value.reason == "bad_json"


@pytest.mark.parametrize(
    ("fmt", "raw", "expected"),
    [
        ("epoch_ms", TS, TS),
        ("epoch_ms", str(TS), TS),
        ("epoch_s", TS / 1000, TS),
        ("epoch_s", 1_718_000_000, 1_718_000_000_000),
        ("rfc3339", "2024-06-10T06:13:20.123Z", TS),
        ("rfc3339", "2024-06-10T14:13:20.123+08:00", TS),
    ],
)
def test_time_formats(fmt: str, raw: object, expected: int) -> None:
    """Each time format yields the same UTC epoch milliseconds on every sample of the message."""
    read = settings_for({"a": "a", "b": "b"}, time_field="meta.t", fmt=fmt)
    samples = decode_message(orjson.dumps({"a": 1, "b": 2, "meta": {"t": raw}}), read)
    assert [s.ts_ms for s in samples] == [expected, expected]


def test_rfc3339_reference_instant() -> None:
    """The rfc3339 test instant is the epoch-ms constant used above (the constant is not made up)."""
    assert round(datetime(2024, 6, 10, 6, 13, 20, 123000, tzinfo=UTC).timestamp() * 1000) == TS


@pytest.mark.parametrize(
    ("fmt", "raw"),
    [
        ("rfc3339", "2024-06-10T14:13:20"),
        ("rfc3339", "yesterday"),
        ("rfc3339", 5),
        ("rfc3339", "0001-01-01T00:00:00+01:00"),
        ("epoch_ms", True),
        ("epoch_ms", -1),
        ("epoch_s", 1e300),
        ("epoch_s", "1e306"),
    ],
)
def test_bad_time_counted_and_none(fmt: str, raw: object) -> None:
    """A time without offset, unparsable, boolean or outside 1970..9999 is bad_time and leaves ts_ms None."""
    stats = DecodeStats()
    read = settings_for({"a": "a"}, time_field="t", fmt=fmt)
    assert decode_message(orjson.dumps({"a": 1, "t": raw}), read, stats) == [Sample("a", 1.0)]
    assert stats.counts["bad_time"] == 1


def test_absent_time_field_is_none() -> None:
    """A message without its time field decodes with ts_ms None (arrival time) and counts missing_time."""
    stats = DecodeStats()
    read = settings_for({"a": "a"}, time_field="ts")
    assert decode_message(b'{"a": 1}', read, stats) == [Sample("a", 1.0)]
    assert stats.counts["missing_time"] == 1


def test_decoder_one_message_per_feed() -> None:
    """feed() decodes one MQTT payload, pretty-printed over lines or not."""
    decoder = JsonDecoder(settings_for({"tilt": "data.tilt"}, time_field="ts"))
    pretty = orjson.dumps({"ts": TS, "data": {"tilt": 12}}, option=orjson.OPT_INDENT_2)
    assert b"\n" in pretty
    assert decoder.feed(pretty, 0) == [Sample("tilt", 12.0, TS)]
    assert decoder.feed(b'{"ts": 1, "data": {"tilt": 2}}', 0) == [Sample("tilt", 2.0, 1)]
    assert decoder.stats.counts["messages"] == 2


def test_decoder_json_lines() -> None:
    """A replay chunk of JSON lines decodes line by line; blank and bad lines do not stop the rest."""
    decoder = JsonDecoder(settings_for({"v": "v"}))
    data = b'{"v": 1}\n\n   \n{"v": \n{"v": 3}\r\n{"w": 4}\n'
    assert decoder.feed(data, 0) == [Sample("v", 1.0), Sample("v", 3.0)]
    counts = decoder.stats.counts
    assert (counts["messages"], counts["bad_json"], counts["missing_field"]) == (3, 1, 1)


def test_decoder_counts_bad_payload_and_ignores_empty() -> None:
    """A garbage payload is counted as bad_json; an empty one (retained-message clear) is ignored."""
    decoder = JsonDecoder(settings_for({"v": "v"}))
    assert decoder.feed(b"\x00\x01garbage", 0) == []
    assert decoder.feed(b"", 0) == []
    assert decoder.stats.counts == {"bad_json": 1}


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.integers(-(2**63), 2**63 - 1)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(["data", "v", "0", "t"]), inner),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(doc=json_values, fmt=st.sampled_from(["epoch_ms", "epoch_s", "rfc3339"]))
def test_fuzz_arbitrary_documents_never_raise(doc: object, fmt: str) -> None:
    """Any JSON document decodes to finite samples without raising."""
    decoder = JsonDecoder(settings_for({"a": "data.v", "b": "v.0", "c": "0"}, time_field="t", fmt=fmt))
    for sample in decoder.feed(orjson.dumps(doc), 0):
        assert math.isfinite(sample.value)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_arbitrary_bytes_never_raise(data: bytes) -> None:
    """Arbitrary bytes fed to the decoder never raise."""
    JsonDecoder(settings_for({"v": "v"}, time_field="t", fmt="rfc3339")).feed(data, 0)
