"""Fuzzing the HJ 212 decoder: arbitrary bytes only ever raise Hj212Error, and the stream never raises."""

from __future__ import annotations

import contextlib

from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.decode.hj212 import CRC_MODES, CrcMode, Hj212Decoder, Hj212Error, encode_frame, parse_frame

NOW = 1_714_564_800_000
GOOD = encode_frame("QN=20240501200000000;ST=22;CN=2011;MN=GW01;Flag=4;CP=&&DataTime=20240501200000;a34004-Rtd=7&&")
# Bytes that make up frames, so generated input reaches past the envelope checks.
WIRE_ALPHABET = "#0123456789ABCDEFabcdef=;,-&QNSTCPWMFlagRtdAvg\r\n颗"
segments = st.text(alphabet="QNSTCPWMFlagRtdAvgDatTime0123456789=;,-&颗", max_size=120)


def _parse_only_hj212_errors(data: bytes, mode: CrcMode) -> None:
    """Parse `data`; any exception other than Hj212Error fails the test."""
    with contextlib.suppress(Hj212Error):
        parse_frame(data, mode)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.sampled_from(CRC_MODES))
def test_arbitrary_bytes_raise_only_hj212_errors(data: bytes, mode: CrcMode) -> None:
    """parse_frame on arbitrary bytes returns a Frame or raises an Hj212Error, nothing else."""
    _parse_only_hj212_errors(data, mode)
    _parse_only_hj212_errors(b"##" + data, mode)


@settings(max_examples=300, deadline=None)
@given(segments, st.sampled_from(CRC_MODES))
def test_well_framed_arbitrary_segments_raise_only_hj212_errors(segment: str, mode: CrcMode) -> None:
    """Segments with a correct length and CRC but arbitrary content parse or raise an Hj212Error."""
    _parse_only_hj212_errors(encode_frame(segment, mode), mode)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=64), st.text(WIRE_ALPHABET, max_size=64).map(str.encode)), max_size=12))
def test_arbitrary_chunks_never_raise_and_a_good_frame_still_decodes(chunks: list[bytes]) -> None:
    """Any chunks fed to the stream decoder raise nothing, and a good frame after a CR LF still decodes."""
    decoder = Hj212Decoder()
    for chunk in chunks:
        decoder.feed(chunk, NOW)
    samples = decoder.feed(b"\r\n" + GOOD, NOW)
    assert [(s.key, s.value) for s in samples][-1:] == [("a34004", 7.0)]
