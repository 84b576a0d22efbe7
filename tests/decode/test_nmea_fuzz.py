"""Hypothesis fuzzing of the NMEA parser and stream decoder: garbage in, only counted NmeaErrors out."""

from __future__ import annotations

import contextlib
from functools import reduce
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from device_profiles.schema import NmeaRead
from edge_agent.decode.nmea import NmeaDecoder, NmeaError, parse_sentence

CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus"
REAL = [
    line.rstrip(b"\r\n")
    for line in (CORPUS / "gnss" / "ublox-neo-m9n-nmea.log").read_bytes().splitlines()[:400]
    if line.startswith(b"$")
]
ALLOW_ALL = NmeaRead(checksumless=("GGA", "RMC", "GSA", "GSV", "GNS", "GLL", "VTG", "ZDA"))

# Bodies built from the characters NMEA uses, so the typed layer (not just framing) is exercised.
_ADDRESSES = st.sampled_from(
    [
        "GPGGA",
        "GNRMC",
        "GNGNS",
        "GPGLL",
        "GPVTG",
        "GPZDA",
        "GNGSA",
        "GBGSV",
        "PQGSV",
        "PQGSA",
        "GPTXT",
        "PERC",
    ]
)
_FIELD = st.text(alphabet="0123456789.-+NSEWAVDM eE", max_size=12)
_BODY = st.builds(lambda a, fs: ",".join([a, *fs]), _ADDRESSES, st.lists(_FIELD, max_size=24))


def _framed(body: str) -> bytes:
    return f"${body}*{reduce(lambda a, c: a ^ ord(c), body, 0):02X}".encode()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_parse_sentence_arbitrary_bytes_raise_only_nmea_error(data: bytes) -> None:
    """Arbitrary bytes into parse_sentence either parse or raise an NmeaError subclass, nothing else."""
    for line in (data, b"$" + data):
        with contextlib.suppress(NmeaError):
            parse_sentence(line, ALLOW_ALL)


@settings(max_examples=300, deadline=None)
@given(_BODY)
def test_parse_sentence_checksummed_garbage_fields_raise_only_nmea_error(body: str) -> None:
    """Well-framed sentences with a valid checksum but garbage fields parse or raise only NmeaError."""
    with contextlib.suppress(NmeaError):
        parse_sentence(_framed(body))


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(REAL), st.integers(0, 200), st.binary(min_size=1, max_size=3))
def test_parse_sentence_mutated_real_lines_raise_only_nmea_error(line: bytes, at: int, junk: bytes) -> None:
    """Real sentences with bytes spliced in, re-checksummed or not, parse or raise only NmeaError."""
    body = line[1 : line.rfind(b"*")] if b"*" in line else line[1:]
    i = at % (len(body) + 1)
    mutated = body[:i] + junk + body[i:]
    for candidate in (b"$" + mutated, _framed(mutated.decode("latin-1"))):
        with contextlib.suppress(NmeaError):
            parse_sentence(candidate)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.binary(max_size=64),
            st.sampled_from(REAL).map(lambda b: b + b"\r\n"),
            _BODY.map(lambda b: _framed(b) + b"\r\n"),
            st.sampled_from([b"$", b"$$", b"\r", b"\n", b"*", b"\x00", b"\x1b[2J"]),
        ),
        max_size=40,
    ),
    st.integers(0, 2**42),
)
def test_feed_arbitrary_chunks_never_raises(chunks: list[bytes], now_ms: int) -> None:
    """Any sequence of byte chunks (garbage, real lines, fuzzed sentences) is consumed without raising."""
    decoder = NmeaDecoder(NmeaRead(max_sentence_bytes=120))
    for chunk in chunks:
        for sample in decoder.feed(chunk, now_ms):
            assert sample.value == sample.value  # never NaN
    decoder.flush(now_ms)
    assert all(n >= 0 for n in decoder.stats.counts.values())
