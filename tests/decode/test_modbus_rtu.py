"""Tests of RTU response parsing (CRC, exceptions, framing) and the capture replay decoder."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymodbus.framer import FramerRTU
from pymodbus.pdu import DecodePDU, ExceptionResponse
from pymodbus.pdu.register_message import ReadHoldingRegistersResponse, ReadInputRegistersResponse

from device_profiles.schema import ModbusRead
from edge_agent.decode.base import Sample
from edge_agent.decode.modbus import (
    ModbusCaptureDecoder,
    ModbusDecodeError,
    ModbusExceptionResponse,
    RtuResponse,
    parse_rtu_response,
)

FRAMER = FramerRTU(DecodePDU(False))


def response(words: list[int], function: int = 3, slave: int = 1) -> bytes:
    """Encode a register-read response frame with pymodbus's own RTU framer."""
    pdu_class = ReadHoldingRegistersResponse if function == 3 else ReadInputRegistersResponse
    return FRAMER.buildFrame(pdu_class(registers=words, dev_id=slave))


def exception(function: int, code: int, slave: int = 1) -> bytes:
    """Encode an exception response frame with pymodbus's own RTU framer."""
    return FRAMER.buildFrame(ExceptionResponse(function, code, device_id=slave))


def test_parses_textbook_frame() -> None:
    """The spec-style frame `01 03 04 00 02 04 d2 d9 6e` reads slave 1, function 3, words [2, 1234]."""
    frame = bytes.fromhex("01 03 04 00 02 04 d2 d9 6e")
    assert frame == response([2, 1234])
    assert parse_rtu_response(frame) == RtuResponse(1, 3, (2, 1234))


@settings(max_examples=200, deadline=None)
@given(
    words=st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=125),
    function=st.sampled_from([3, 4]),
    slave=st.integers(1, 247),
)
def test_parses_pymodbus_frames(words: list[int], function: int, slave: int) -> None:
    """Any response pymodbus frames parses back to its slave, function and words."""
    assert parse_rtu_response(response(words, function, slave)) == RtuResponse(slave, function, tuple(words))


def test_exception_frame() -> None:
    """`01 83 02 c0 f1` is an illegal-data-address exception to function 3, raised with reason exception."""
    frame = bytes.fromhex("01 83 02 c0 f1")
    assert frame == exception(3, 2)
    parsed = parse_rtu_response(frame)
    assert parsed == RtuResponse(1, 3, exception_code=2)
    with pytest.raises(ModbusExceptionResponse) as info:
        parsed.raise_for_exception()
    assert (info.value.reason, info.value.code, info.value.function) == ("exception", 2, 3)
    assert "illegal data address" in str(info.value)


def test_bad_crc() -> None:
    """A flipped bit in the data fails the CRC-16/MODBUS check with reason crc."""
    frame = bytearray(response([2, 1234]))
    frame[4] ^= 0x01
    with pytest.raises(ModbusDecodeError) as info:
        parse_rtu_response(bytes(frame))
    assert info.value.reason == "crc"


def test_bad_crc_on_exception_frame() -> None:
    """An exception frame with a wrong CRC is a crc error, not an exception."""
    with pytest.raises(ModbusDecodeError) as info:
        parse_rtu_response(bytes.fromhex("01 83 02 c0 f2"))
    assert info.value.reason == "crc"


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        bytes.fromhex("01 03 04"),
        response([2, 1234])[:-1],  # truncated
        response([2, 1234]) + b"\x00",  # trailing byte
        bytes.fromhex("01 03 03 00 02 04 d2 00"),  # odd byte count
        exception(3, 2) + b"\x00",
        FRAMER.buildFrame(ReadHoldingRegistersResponse(registers=[1], dev_id=1))[:2] + bytes.fromhex("00 01 02 03"),
    ],
)
def test_framing_errors(frame: bytes) -> None:
    """Short, truncated, overlong and odd-count frames raise with reason framing."""
    with pytest.raises(ModbusDecodeError) as info:
        parse_rtu_response(frame)
    assert info.value.reason == "framing"


def test_non_read_function_is_framing() -> None:
    """A write-single-register echo (function 6) is not a register-read response."""
    body = bytes.fromhex("01 06 00 01 00 03")
    frame = body + FramerRTU.compute_CRC(body).to_bytes(2, "big")
    with pytest.raises(ModbusDecodeError) as info:
        parse_rtu_response(frame)
    assert info.value.reason == "framing"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_parse_fuzz_raises_only_typed_errors(frame: bytes) -> None:
    """Arbitrary bytes parse or raise ModbusDecodeError, nothing else."""
    with contextlib.suppress(ModbusDecodeError):
        parse_rtu_response(frame)


def two_block_map() -> ModbusRead:
    """A flowmeter-like map: float32 CDAB flow at input register 0, decimals-scaled level far away."""
    return ModbusRead.model_validate(
        {
            "registers": [
                {"name": "flow", "function": 4, "address": 0, "type": "float32", "order": "CDAB"},
                {"name": "level", "function": 3, "address": 0, "decimals_register": "places"},
                {"name": "places", "function": 3, "address": 50},
            ]
        }
    )


def cdab(value: float) -> list[int]:
    """Float32 words low word first."""
    high, low = struct.unpack(">2H", struct.pack(">f", value))
    return [low, high]


def hexline(frame: bytes, prefix: str = "") -> bytes:
    """One capture line: optional `@f:a ` prefix, then the frame as spaced hex."""
    return (prefix + frame.hex(" ") + "\n").encode()


def test_capture_follows_plan_cyclically() -> None:
    """Unprefixed responses are matched to the plan's blocks in order, wrapping around."""
    decoder = ModbusCaptureDecoder(two_block_map())
    assert [(b.function, b.address) for b in decoder.blocks] == [(3, 0), (3, 50), (4, 0)]
    data = b"".join(
        [
            hexline(response([1234])),  # level, decimals not yet known
            hexline(response([2])),  # places
            hexline(response(cdab(12.5), 4)),
            hexline(response([1234])),  # level again, now 12.34
        ]
    )
    assert decoder.feed(data, 0) == [Sample("flow", 12.5), Sample("level", 12.34)]
    assert decoder.stats.counts["frames"] == 4
    assert decoder.stats.counts["missing_decimals"] == 1


def test_capture_prefixed_lines() -> None:
    """`@<function>:<address>` names the read a response answers, in any order."""
    decoder = ModbusCaptureDecoder(two_block_map())
    data = hexline(response(cdab(-3.25), 4), "@4:0 ") + hexline(response([3]), "@3:50 ")
    data += hexline(response([1500]), "@3:0x0 ")
    assert decoder.feed(data, 0) == [Sample("flow", -3.25), Sample("level", 1.5)]


def test_capture_counts_every_bad_line() -> None:
    """CRC, exception, framing and unmatched lines are counted and skipped; good lines still decode."""
    decoder = ModbusCaptureDecoder(two_block_map())
    bad_crc = bytearray(response(cdab(1.0), 4))
    bad_crc[-1] ^= 0xFF
    lines = [
        b"# a comment\n",
        b"\n",
        hexline(bytes(bad_crc), "@4:0 "),
        hexline(exception(4, 2), "@4:0 "),
        b"@4:0 zz zz\n",
        b"@4:0 \xff\xfe\n",
        hexline(response([1]), "@9:9 "),  # no such read
        hexline(response([1, 2]), "@3:0 "),  # wrong word count for the block
        hexline(response(cdab(1.0), 3), "@4:0 "),  # wrong function
        b"@x:y 00\n",
        hexline(response(cdab(7.0), 4), "@4:0 "),
    ]
    assert decoder.feed(b"".join(lines), 0) == [Sample("flow", 7.0)]
    counts = decoder.stats.counts
    assert (counts["crc"], counts["exception"], counts["framing"]) == (1, 1, 2)
    assert (counts["unmatched"], counts["frames"]) == (4, 1)


def test_capture_bad_line_still_advances_plan() -> None:
    """A corrupt unprefixed response uses up its poll slot, so the next response matches the next read."""
    decoder = ModbusCaptureDecoder(two_block_map())
    data = b"garbage\n" + hexline(response([2])) + hexline(response(cdab(4.0), 4))
    assert decoder.feed(data, 0) == [Sample("flow", 4.0)]
    assert decoder.stats.counts["framing"] == 1
    assert decoder.stats.counts["unmatched"] == 0


def test_capture_samples_have_no_device_time() -> None:
    """Replayed Modbus samples carry ts_ms None: the runner stamps arrival time."""
    decoder = ModbusCaptureDecoder(two_block_map())
    (sample,) = decoder.feed(hexline(response(cdab(1.0), 4), "@4:0 "), 123)
    assert sample.ts_ms is None


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.binary(max_size=40),
            st.builds(
                lambda p, b: p.encode() + b.hex(" ").encode(),
                st.sampled_from(["", "@3:0 ", "@4:0 "]),
                st.binary(max_size=20),
            ),
        ),
        max_size=10,
    )
)
def test_capture_feed_never_raises(chunks: list[bytes]) -> None:
    """Arbitrary bytes and hex-looking lines fed to the capture decoder never raise."""
    decoder = ModbusCaptureDecoder(two_block_map())
    for chunk in chunks:
        decoder.feed(chunk + b"\n", 0)
