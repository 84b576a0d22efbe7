"""HJ 212 decoder behaviour the corpus does not cover: CRC checks, errors, time zones, flags, resync."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device_profiles.schema import Hj212Read
from edge_agent.decode.base import Decoder
from edge_agent.decode.hj212 import (
    CrcMode,
    Hj212Decoder,
    Hj212Error,
    Hj212LengthError,
    Hj212TimeError,
    build_ack,
    crc16_modbus,
    crc_hj212,
    datatime_to_utc_ms,
    encode_frame,
    needs_ack,
    parse_frame,
)


def ms(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    """Return the UTC milliseconds of a UTC wall-clock time."""
    return int(datetime(year, month, day, hour, minute, second, tzinfo=ZoneInfo("UTC")).timestamp() * 1000)


NOW = ms(2024, 5, 1, 12, 0, 0)
HEADER = [("QN", "20240501200000000"), ("ST", "22"), ("CN", "2011"), ("PW", "123456"), ("MN", "GW01")]


def frame(cp: str, cn: str = "2011", flag: str | None = "4", mode: CrcMode = "hj212") -> bytes:
    """Build a frame with the test header, the given CN and Flag, and data area `cp`."""
    header = [(k, cn if k == "CN" else v) for k, v in HEADER]
    if flag is not None:
        header.append(("Flag", flag))
    head = "".join(f"{key}={value};" for key, value in header)
    return encode_frame(f"{head}CP=&&{cp}&&", mode)


def crc_bitwise(data: bytes, hj212: bool) -> int:
    """Compute either CRC bit by bit, straight from the README's wording."""
    reg = 0xFFFF
    for byte in data:
        reg = (reg >> 8) ^ byte if hj212 else reg ^ byte
        for _ in range(8):
            reg = (reg >> 1) ^ 0xA001 if reg & 1 else reg >> 1
    return reg


def test_crc_check_values() -> None:
    """The README's check values: 123456789 gives 2F80 (HJ 212) and 4B37 (MODBUS); empty FFFF; A 7080."""
    assert crc_hj212(b"123456789") == 0x2F80
    assert crc16_modbus(b"123456789") == 0x4B37
    assert crc_hj212(b"") == 0xFFFF
    assert crc_hj212(b"A") == 0x7080


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=1200))
def test_fast_crcs_match_the_bitwise_definition(data: bytes) -> None:
    """The folded HJ 212 CRC and the table-driven MODBUS CRC equal their bit-by-bit definitions."""
    assert crc_hj212(data) == crc_bitwise(data, hj212=True)
    assert crc16_modbus(data) == crc_bitwise(data, hj212=False)


def test_length_counts_utf8_bytes() -> None:
    """Chinese text is framed by its UTF-8 byte count; counting characters instead is a length error."""
    wire = frame("DataTime=20240501200000;Info=颗粒物超标")
    text_chars = len(wire[6:-6].decode("utf-8"))
    assert int(wire[2:6]) == len(wire) - 12 > text_chars
    assert parse_frame(wire).items[-1].value == "颗粒物超标"
    segment = wire[6:-6]
    by_chars = b"##%04d%b%04X" % (text_chars, segment, crc_hj212(segment))
    with pytest.raises(Hj212LengthError):
        parse_frame(by_chars)


@pytest.mark.parametrize(
    ("wire", "reason"),
    [
        (b"", "framing"),
        (b"#0101QN=1;CP=&&&&1C80", "framing"),
        (b"##01a1QN=1;CP=&&&&1C80", "framing"),
        (b"##0013QN=1;CP=&&&&1C80", "length"),
        (b"##0012QN=1;CP=&&&&1G80", "framing"),
        (b"##0012QN=1;CP=&&&&+C80", "framing"),
        (b"##0012QN=1;CP=&&&&0000", "crc"),
    ],
)
def test_envelope_errors_have_stable_reasons(wire: bytes, reason: str) -> None:
    """Broken envelopes raise an Hj212Error whose reason names what is wrong."""
    with pytest.raises(Hj212Error) as info:
        parse_frame(wire)
    assert info.value.reason == reason


@pytest.mark.parametrize(
    ("segment", "reason"),
    [
        (b"QN=1;ST=22;CP=&&a=\xff&&", "encoding"),
        (b"QN=1;ST22;CP=&&&&", "header"),
        (b"QN=1;QN=2;CP=&&&&", "header"),
        (b"QN=1;Flag=x;CP=&&&&", "header"),
        (b"QN=1;PNUM=-1;CP=&&&&", "header"),
        (b"QN=1;PW=CP=&&&&", "header"),
        (b"##0012QN=1;CP=&&&&", "header"),
        (b"QN=1;ST=22;&&a=1&&", "data"),
        (b"QN=1;CP=&&a=1&", "data"),
        (b"QN=1;CP=&&", "data"),
        (b"QN=1;CP=&&a=1;b&&", "data"),
    ],
)
def test_segment_errors_have_stable_reasons(segment: bytes, reason: str) -> None:
    """Malformed segments under a correct length and CRC raise the Hj212Error subclass of their part."""
    with pytest.raises(Hj212Error) as info:
        parse_frame(encode_frame(segment))
    assert info.value.reason == reason


def test_unknown_header_keys_are_kept() -> None:
    """A header key outside the standard set is kept in `extra`, not rejected."""
    parsed = parse_frame(encode_frame("ST=22;Ver=3;CP=&&&&"))
    assert parsed.extra == (("Ver", "3"),)


def test_encode_refuses_segments_over_9999_bytes() -> None:
    """A segment that does not fit the 4-digit length field cannot be encoded."""
    with pytest.raises(Hj212LengthError):
        encode_frame("x" * 10000)


def test_datatime_in_shanghai_and_berlin() -> None:
    """DataTime is station-local: 08:00 in Shanghai is 00:00 UTC; in Berlin summer 08:00 is 06:00 UTC."""
    assert datatime_to_utc_ms("20240501080000", ZoneInfo("Asia/Shanghai")) == ms(2024, 5, 1, 0, 0, 0)
    assert datatime_to_utc_ms("20240701080000", ZoneInfo("Europe/Berlin")) == ms(2024, 7, 1, 6, 0, 0)
    assert datatime_to_utc_ms("20240101080000", ZoneInfo("Europe/Berlin")) == ms(2024, 1, 1, 7, 0, 0)
    assert datatime_to_utc_ms("20240501080000123", ZoneInfo("Asia/Shanghai")) == ms(2024, 5, 1) + 123


@pytest.mark.parametrize("text", ["2024050108000", "20241301080000", "2024050108000x", "２０２４0501080000"])
def test_bad_datatime_raises_time_error(text: str) -> None:
    """Short, impossible or non-ASCII DataTimes raise Hj212TimeError."""
    with pytest.raises(Hj212TimeError):
        datatime_to_utc_ms(text, ZoneInfo("Asia/Shanghai"))


def test_decoder_uses_the_profile_timezone() -> None:
    """The same frame is stamped 8 h apart by a Shanghai decoder and a UTC decoder."""
    wire = frame("DataTime=20240501200000;a34004-Rtd=12,a34004-Flag=N")
    shanghai = Hj212Decoder().feed(wire, NOW)
    utc = Hj212Decoder(Hj212Read(timezone="UTC")).feed(wire, NOW)
    assert shanghai[0].ts_ms == ms(2024, 5, 1, 12, 0, 0)
    assert utc[0].ts_ms == ms(2024, 5, 1, 20, 0, 0)


def test_data_flags_reach_samples() -> None:
    """Each code's -Flag (or -Flg) lands on its sample; a code without one has flag None."""
    flags = "NFMSDCTB"
    cp = ";".join(f"c{i}-Rtd={i}.5,c{i}-Flag={f}" for i, f in enumerate(flags))
    samples = Hj212Decoder().feed(frame(f"DataTime=20240501200000;{cp};LA-Flg=D,LA-Rtd=55.1;w01018-Rtd=3"), NOW)
    assert [(s.key, s.flag) for s in samples] == [
        *((f"c{i}", f) for i, f in enumerate(flags)),
        ("LA", "D"),
        ("w01018", None),
    ]


def test_bad_values_are_counted_and_the_frame_kept() -> None:
    """Non-numeric, NaN, infinite and underscored values are counted as bad_value; the rest still decodes."""
    decoder = Hj212Decoder()
    cp = "DataTime=20240501200000;a1-Rtd=abc;a2-Rtd=nan;a3-Rtd=inf;a4-Rtd=1_0;a5-Rtd=;a34004-Rtd=-1.5e1"
    samples = decoder.feed(frame(cp), NOW)
    assert [(s.key, s.value) for s in samples] == [("a34004", -15.0)]
    assert decoder.stats.counts["bad_value"] == 5
    assert decoder.stats.counts["items"] == 7


def test_period_frames_read_avg_min_max_cou() -> None:
    """Minute, hour and day frames read -Avg as the value, -Min/-Max/-Cou as companions, and ignore -Rtd."""
    cp = "DataTime=20240501200000;w00000-Cou=12.5,w00000-Avg=3,w00000-Min=1,w00000-Max=9,w00000-Rtd=7"
    for cn in ("2051", "2061", "2031"):
        samples = Hj212Decoder().feed(frame(cp, cn=cn), NOW)
        assert {s.key: s.value for s in samples} == {
            "w00000_cou": 12.5,
            "w00000": 3.0,
            "w00000_min": 1.0,
            "w00000_max": 9.0,
        }


def test_frame_without_cn_reads_rtd_and_avg() -> None:
    """A frame whose header has no CN still yields its -Rtd and -Avg values."""
    wire = encode_frame("ST=22;MN=X;CP=&&DataTime=20240501200000;a-Rtd=1;b-Avg=2,b-Max=3&&")
    assert {s.key: s.value for s in Hj212Decoder().feed(wire, NOW)} == {"a": 1.0, "b": 2.0, "b_max": 3.0}


@pytest.mark.parametrize(
    ("datatime", "suspect"),
    [
        ("20240501200000", False),
        ("20240502195900", False),
        ("20240503200000", True),
        ("20230502200000", False),
        ("20230430200000", True),
    ],
)
def test_clock_suspect_outside_the_sanity_window(datatime: str, suspect: bool) -> None:
    """A DataTime more than a day ahead of or a year behind arrival marks the samples clock_suspect."""
    decoder = Hj212Decoder()
    samples = decoder.feed(frame(f"DataTime={datatime};a34004-Rtd=1"), NOW)
    assert samples[0].clock_suspect is suspect
    assert decoder.stats.counts["clock_suspect"] == int(suspect)


def test_unreadable_datatime_leaves_time_to_the_runner() -> None:
    """A DataTime that is no time gives samples without ts_ms, marked clock_suspect and counted bad_time."""
    decoder = Hj212Decoder()
    samples = decoder.feed(frame("DataTime=20241341200000;a34004-Rtd=1"), NOW)
    assert (samples[0].ts_ms, samples[0].clock_suspect) == (None, True)
    assert decoder.stats.counts["bad_time"] == 1


def test_ack_rules() -> None:
    """Only frames with the ack bit, a QN and a non-9xxx CN need a response; a 2005 ack has Flag=0."""
    assert needs_ack(parse_frame(frame("a-Rtd=1", flag="5")))
    assert not needs_ack(parse_frame(frame("a-Rtd=1", flag="4")))
    assert not needs_ack(parse_frame(frame("", cn="9014", flag="5")))
    assert not needs_ack(parse_frame(encode_frame("ST=22;CN=2011;Flag=5;CP=&&&&")))
    old = parse_frame(frame("a-Rtd=1", flag="1"))
    assert needs_ack(old)
    assert parse_frame(build_ack(old)).flag == 0


def test_stream_resyncs_after_hash_runs_truncation_and_bad_lengths() -> None:
    """`###`, a frame cut short and a non-digit length are skipped; the good frames around them all decode."""
    good = frame("DataTime=20240501200000;a34004-Rtd=1")
    decoder = Hj212Decoder()
    data = b"###" + good + good[:40] + b"\r\n" + b"##12ab" + good + good[:30] + good
    assert len(decoder.feed_frames(data)) == 3
    assert decoder.stats.counts["frames"] == 3
    assert decoder.stats.counts["length"] == 2


def test_truncated_frame_does_not_hold_back_the_next_one() -> None:
    """A frame cut short is abandoned when the next frame's CR LF arrives, not at its declared length."""
    long_frame = frame("DataTime=20240501200000;" + ";".join(f"x{i}-Rtd={i}" for i in range(200)))
    good = frame("DataTime=20240501200000;a34004-Rtd=1")
    decoder = Hj212Decoder()
    assert [f.raw for f in decoder.feed_frames(long_frame[:100] + good)] == [good[:-2]]


def test_noise_marker_spanning_a_frame_does_not_swallow_it() -> None:
    """Noise `##dddd` whose length ends exactly at a real frame's CR LF fails; the frame inside decodes."""
    good = frame("DataTime=20240501200000;a34004-Rtd=1")
    noise = b"##%04d" % (len(good) - 6)
    decoder = Hj212Decoder()
    assert [f.raw for f in decoder.feed_frames(noise + good)] == [good[:-2]]
    assert decoder.stats.counts["crc"] == 1


def test_noise_marker_spanning_a_frame_fails_even_without_crc() -> None:
    """In CRC mode `none` the noise-spanned candidate still fails (its header key is `##...QN`)."""
    good = frame("DataTime=20240501200000;a34004-Rtd=1", mode="none")
    decoder = Hj212Decoder(Hj212Read(crc="none"))
    assert [f.raw for f in decoder.feed_frames(b"##%04d" % (len(good) - 6) + good)] == [good[:-2]]
    assert decoder.stats.counts["header"] == 1


def test_oversize_frames_are_dropped_and_the_buffer_stays_bounded() -> None:
    """A frame longer than max_frame_bytes is counted as oversize and skipped; garbage is not buffered."""
    small = Hj212Decoder(Hj212Read(max_frame_bytes=64))
    big = frame("DataTime=20240501200000;" + "a-Rtd=1;" * 20)
    short = encode_frame("ST=22;CN=2011;CP=&&a-Rtd=1&&")
    assert [f.raw for f in small.feed_frames(big + short)] == [short[:-2]]
    assert small.stats.counts["oversize"] == 1
    small.feed(b"x" * 100_000, NOW)
    assert small.stats.counts["garbage_bytes"] >= 100_000
    assert len(small._buf) == 0


def test_decoder_satisfies_the_decoder_protocol() -> None:
    """Hj212Decoder is a Decoder: feed(data, now_ms) returns samples and stats counts outcomes."""
    decoder: Decoder = Hj212Decoder()
    assert decoder.feed(b"noise", NOW) == []
    assert decoder.stats.counts["garbage_bytes"] == 5


def test_byte_by_byte_feeding() -> None:
    """A frame fed one byte per call decodes once, on its last byte."""
    wire = frame("DataTime=20240501200000;a34004-Rtd=1")
    decoder = Hj212Decoder()
    results = [decoder.feed(wire[i : i + 1], NOW) for i in range(len(wire))]
    assert all(r == [] for r in results[:-1])
    assert [s.key for s in results[-1]] == ["a34004"]
