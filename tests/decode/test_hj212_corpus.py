"""The HJ 212 decoder against the real frames of shared/corpus/hj212 (see its README for the facts)."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

import pytest

from device_profiles.schema import Hj212Read
from edge_agent.decode.hj212 import (
    CRC_MODES,
    CrcMode,
    Hj212CrcError,
    Hj212Decoder,
    Item,
    build_ack,
    crc_hj212,
    needs_ack,
    parse_frame,
)

CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus" / "hj212"
# An arrival time for tests that do not look at the DataTime sanity window; those that do pick their own.
NOW_MS = int(datetime(2025, 6, 1, tzinfo=UTC).timestamp() * 1000)


_MODES: dict[str, CrcMode] = {"MODBUS_BE": "modbus_be", "MODBUS_LE": "modbus_le", "BAD": "none"}


class Line(NamedTuple):
    """One corpus line: the frame without CR LF, its source, and the CRC mode it passes in."""

    frame: bytes
    source: str
    mode: CrcMode


def _load(name: str) -> list[Line]:
    """Read one corpus file; lines of frames.tsv pass in `hj212`, the others name their mode."""
    lines = []
    for text in (CORPUS / name).read_text(encoding="utf-8").splitlines():
        cols = text.split("\t")
        mode: CrcMode = _MODES[cols[2]] if len(cols) > 2 else "hj212"
        lines.append(Line(cols[0].encode("utf-8"), cols[1], mode))
    return lines


STANDARD = _load("frames.tsv")
NONSTANDARD = _load("frames-nonstandard.tsv")
ALL = STANDARD + NONSTANDARD


def by_text(fragment: str) -> bytes:
    """Return the one standard corpus frame containing `fragment`."""
    found = [line.frame for line in STANDARD if fragment.encode() in line.frame]
    assert len(found) == 1, fragment
    return found[0]


def test_corpus_counts_match_readme() -> None:
    """The corpus holds the 32 standard and 34 nonstandard (26 BE, 3 LE, 5 BAD) lines its README lists."""
    assert len(STANDARD) == 32
    modes = [line.mode for line in NONSTANDARD]
    assert (modes.count("modbus_be"), modes.count("modbus_le"), modes.count("none")) == (26, 3, 5)


@pytest.mark.parametrize("mode", CRC_MODES)
@pytest.mark.parametrize("line", ALL, ids=[f"{i:02d}-{line.mode}" for i, line in enumerate(ALL)])
def test_every_line_passes_only_in_its_crc_mode(line: Line, mode: CrcMode) -> None:
    """Each corpus frame parses in its own CRC mode and in `none`, and fails with a CRC error in others."""
    if mode in (line.mode, "none"):
        frame = parse_frame(line.frame, mode)
        assert frame.raw == line.frame
        assert frame.crc == int(line.frame[-4:], 16)
    else:
        with pytest.raises(Hj212CrcError) as info:
            parse_frame(line.frame, mode)
        assert info.value.reason == "crc"


def test_standard_example_crc_is_1c80() -> None:
    """The standard's own Annex A example ends in 1C80 and crc_hj212 of its segment computes it."""
    frame = STANDARD[0].frame
    assert frame.endswith(b"1C80")
    assert crc_hj212(frame[6:-4]) == 0x1C80


def test_length_field_counts_bytes_for_every_line() -> None:
    """Every corpus frame's 4-digit length is the byte count of QN=/ST= through the final &&."""
    for line in ALL:
        segment = line.frame[6:-4]
        assert int(line.frame[2:6]) == len(segment)
        assert segment.startswith((b"QN=", b"ST="))
        assert segment.endswith(b"&&")


def test_lowercase_crc_hex_is_accepted() -> None:
    """Frames printing the CRC in lowercase hex (`cc01`, `1dc0`) parse like uppercase ones."""
    lower = [line for line in STANDARD if line.frame[-4:] != line.frame[-4:].upper()]
    assert len(lower) >= 3
    for line in lower:
        assert parse_frame(line.frame).crc == int(line.frame[-4:], 16)


def test_pno_before_pnum_and_no_flag() -> None:
    """A header with PNO before PNUM and no Flag parses both numbers, and its Flag bits read as unset."""
    frame = parse_frame(by_text(b"PNO=0002;PNUM=0002".decode()))
    assert (frame.pno, frame.pnum, frame.flag) == (2, 2, None)
    assert (frame.version, frame.ack, frame.split) == (0, False, False)


def test_24_char_password() -> None:
    """A 24-character PW is kept whole."""
    frame = parse_frame(by_text("PW=BF470F88957588DE902D1A52"))
    assert frame.pw == "BF470F88957588DE902D1A52"
    assert len(frame.pw) == 24


def test_lengths_over_1024_are_framed() -> None:
    """Frames longer than 1024 bytes (1025 and 1623 in the corpus) parse in their CRC mode."""
    long_lines = [line for line in ALL if int(line.frame[2:6]) > 1024]
    assert sorted(int(line.frame[2:6]) for line in long_lines) == [1025, 1623]
    for line in long_lines:
        data_area = line.frame.split(b"CP=&&", 1)[1]
        assert len(parse_frame(line.frame, line.mode).items) == data_area.count(b"=")


def test_2005_style_frames_without_qn_or_flag() -> None:
    """2005-style uploads start at ST= with no QN and no Flag, and still yield their fields and items."""
    old = [parse_frame(line.frame) for line in STANDARD if line.frame[6:9] == b"ST="]
    assert len(old) == 5
    for frame in old:
        assert (frame.qn, frame.flag, frame.version, frame.cn) == (None, None, 0, "2011")
        assert frame.mn
        assert frame.items


def test_flag_bits_of_2017_frames() -> None:
    """Flag=5 reads as version 1 (2017) with ack; Flag=4 as version 1 without; Flag=8 as the 2025 family."""
    assert (lambda f: (f.version, f.ack, f.split))(parse_frame(STANDARD[0].frame)) == (1, True, False)
    flag4 = parse_frame(by_text("CN=9011;PW=123456;MN=010000A8900016F000169DC0;Flag=4"))
    assert (flag4.version, flag4.ack) == (1, False)
    assert parse_frame(by_text("Flag=8;")).version == 2


def test_opaque_and_truncated_codes_are_kept() -> None:
    """Unknown or truncated codes (a2106, l01001, 011, B01, 100000) are items like any other."""
    codes = {item.code for line in STANDARD for item in parse_frame(line.frame).items}
    assert {"a2106", "a214", "l01001", "011", "060", "B01", "100000", "ua19004", "ele01"} <= codes


def test_items_split_on_last_dash_and_carry_their_flag() -> None:
    """`SB1-RS=1`, `100000-Pa_ave=...` and `l01001-Flag=N,l01001-Rtd=...` split on the last dash."""
    sb = parse_frame(by_text("SB1-RS=1"))
    assert Item("SB1", "RS", "1", None) in sb.items
    power = parse_frame(by_text("100000-Pa_ave"))
    assert Item("100000", "Pa_ave", "0.3964", "N") in power.items
    lon = parse_frame(by_text("l01001-Flag=N,l01001-Rtd"))
    # The flag comes before the value it qualifies; it still applies to it.
    assert Item("l01001", "Rtd", "119.90287", "N") in lon.items


def test_bare_flag_entry_is_kept_opaque() -> None:
    """A `Flag=N` entry without a code is kept as its own item and not guessed onto a neighbour."""
    frame = parse_frame(by_text("a34001-Rtd=92;Flag=N"))
    assert Item("a34001", "Rtd", "92", None) in frame.items
    assert Item("Flag", None, "N", None) in frame.items


def test_datatime_and_other_keys_kept() -> None:
    """DataTime and non-pollutant keys (RestartTime, PolId, QnRtn) stay in the items."""
    restart = parse_frame(by_text("RestartTime=20231007130452"))
    assert restart.datatime == "20231008130452"
    assert Item("RestartTime", None, "20231007130452", None) in restart.items
    assert Item("QnRtn", None, "1", None) in parse_frame(by_text("CC01")).items


def test_corpus_samples_are_rtd_and_avg_values() -> None:
    """Real-time frames yield their -Rtd values and period frames their -Avg values under the plain code."""
    decoder = Hj212Decoder()
    rtd = decoder.samples(parse_frame(by_text("a34004-Rtd=4")), NOW_MS)
    assert {s.key: s.value for s in rtd} == {
        "l01001": 119.90287,
        "l01002": 32.48505,
        "a34002": 5.0,
        "a34004": 4.0,
        "a21026": 22.25,
        "a21004": 22.7,
        "a21005": 0.36,
        "a05024": 8.82,
    }
    avg = decoder.samples(parse_frame(by_text("JLYP01_AIR01_0001")), NOW_MS)
    assert {s.key: s.value for s in avg}["a34004"] == 14.0
    assert all(s.flag == "N" for s in rtd + avg)


def test_period_data_min_max_companions() -> None:
    """An hourly/minute frame with Avg, Min and Max yields the code plus `_min`/`_max` companions."""
    samples = Hj212Decoder().samples(parse_frame(by_text("a01006-Min=101.84")), NOW_MS)
    assert {s.key: s.value for s in samples} == {"a01006": 101.85, "a01006_min": 101.84, "a01006_max": 101.87}


def test_command_and_response_frames_yield_no_samples() -> None:
    """Frames of commands and responses (1062, 9011, 9014, 2081 ...) are counted but yield no samples."""
    decoder = Hj212Decoder()
    data = b"".join(line.frame + b"\r\n" for line in STANDARD if b"CN=2011" not in line.frame)
    samples = decoder.feed(data, NOW_MS)
    assert {s.key for s in samples} == {"a34006", "a34007", "a34048", "a34047", "a34049", "a21004", "a05024",
                                        "a21026", "a21005", "a34004", "a34002", "a01007", "a01008", "a01001",
                                        "a01002", "a01006", "a01006_min", "a01006_max"}  # fmt: skip
    periods = sum(1 for line in STANDARD if b"CN=2051" in line.frame or b"CN=2061" in line.frame)
    others = sum(1 for line in STANDARD if b"CN=2011" not in line.frame)
    assert decoder.stats.counts["frames"] == others
    assert decoder.stats.counts["command"] == others - periods


def test_corpus_datatime_to_utc() -> None:
    """A corpus DataTime of 2019-09-24 22:00 Beijing time is 14:00 UTC, and is not clock-suspect nearby."""
    now = int(datetime(2019, 9, 25, tzinfo=UTC).timestamp() * 1000)
    samples = Hj212Decoder().samples(parse_frame(by_text("DataTime=20190924220000")), now)
    assert {s.ts_ms for s in samples} == {int(datetime(2019, 9, 24, 14, tzinfo=UTC).timestamp() * 1000)}
    assert not any(s.clock_suspect for s in samples)


def test_acks_round_trip_through_the_parser() -> None:
    """Every corpus frame asking for a response gets a 9014 that our parser reads back with its QN/MN/PW."""
    asking = [parse_frame(line.frame) for line in STANDARD]
    asking = [frame for frame in asking if needs_ack(frame)]
    assert len(asking) >= 10
    for frame in asking:
        for mode in CRC_MODES:
            wire = build_ack(frame, mode)
            assert wire.endswith(b"\r\n")
            ack = parse_frame(wire, mode)
            assert (ack.st, ack.cn, ack.qn, ack.pw, ack.mn) == ("91", "9014", frame.qn, frame.pw, frame.mn)
            assert (ack.version, ack.ack) == (frame.version, False)
            assert [(i.code, i.value) for i in ack.items] == [("QN", frame.qn), ("CN", frame.cn)]
            assert not needs_ack(ack)


def test_standard_example_ack_bytes() -> None:
    """The ack of the Annex A example is the exact 9014 frame, length and CRC computed independently."""
    wire = build_ack(parse_frame(STANDARD[0].frame))
    segment = (
        b"QN=20160801085857223;ST=91;CN=9014;PW=100000;MN=010000A8900016F000169DC0;Flag=4;"
        b"CP=&&QN=20160801085857223;CN=1062&&"
    )
    assert wire == b"##%04d" % len(segment) + segment + b"%04X\r\n" % crc_hj212(segment)


def _stream(lines: list[Line], rng: random.Random) -> bytes:
    """Concatenate frames with CR LF, random garbage (`#`, digits, CR LF ...) before each and at the end."""
    parts = []
    alphabet = b"abc#\r\n\x00\xff123&;="
    for line in lines:
        garbage = bytes(rng.choice(alphabet) for _ in range(rng.randrange(0, 40)))
        parts.append(garbage + line.frame + b"\r\n")
    parts.append(b"tail garbage \r\n")
    return b"".join(parts)


@pytest.mark.parametrize("seed", range(20))
def test_stream_with_garbage_and_random_splits_yields_exactly_the_frames(seed: int) -> None:
    """The corpus with garbage between frames, fed in random chunks, yields exactly its frames in order."""
    rng = random.Random(seed)
    for mode in ("hj212", "modbus_be", "modbus_le"):
        lines = [line for line in ALL if line.mode == mode]
        data = _stream(lines, rng)
        decoder = Hj212Decoder(Hj212Read(crc=mode))
        got = []
        pos = 0
        while pos < len(data):
            step = rng.choice((1, 2, 3, 7, 64, 500, 3000))
            got += [frame.raw for frame in decoder.feed_frames(data[pos : pos + step])]
            pos += step
        assert got == [line.frame for line in lines]
        assert decoder.stats.counts["frames"] == len(lines)
        assert decoder.stats.counts["crc"] == 0


def test_stream_in_hj212_mode_counts_nonstandard_frames_as_crc_errors() -> None:
    """Fed nonstandard frames in the default mode, the decoder counts a CRC error for each and keeps going."""
    decoder = Hj212Decoder()
    data = b"".join(line.frame + b"\r\n" for line in NONSTANDARD + STANDARD)
    frames = decoder.feed_frames(data)
    assert [f.raw for f in frames] == [line.frame for line in STANDARD]
    assert decoder.stats.counts["crc"] == len(NONSTANDARD)
