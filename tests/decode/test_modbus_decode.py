"""Tests of Modbus register decoding: value types and byte orders, decimals registers and the poll plan."""

from __future__ import annotations

import contextlib
import math
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device_profiles.schema import ModbusRead, Register
from edge_agent.decode.base import DecodeStats, Sample
from edge_agent.decode.modbus import (
    ModbusDecodeError,
    ReadBlock,
    decode_block,
    decode_registers,
    decode_value,
    plan_reads,
)

ORDERS = ("ABCD", "CDAB", "BADC", "DCBA")
FORMATS = {"int16": ">h", "uint16": ">H", "int32": ">i", "uint32": ">I", "float32": ">f"}


def to_words(value: float, type_: str, order: str) -> list[int]:
    """Lay `value` out as register words the way a device with `order` sends it (spelled as letters)."""
    canonical = struct.pack(FORMATS[type_], value)  # bytes A B (C D), most significant first
    if len(canonical) == 2:
        order = "AB" if order in ("ABCD", "CDAB") else "BA"
    wire = bytes(canonical["ABCD".index(letter)] for letter in order)
    return list(struct.unpack(f">{len(wire) // 2}H", wire))


def reg(type_: str = "uint16", order: str = "ABCD", **kw: object) -> Register:
    """Build a register at address 0 (unless given) named `v` (unless given)."""
    fields: dict[str, object] = {"name": "v", "address": 0, "type": type_, "order": order, **kw}
    return Register.model_validate(fields)


@pytest.mark.parametrize(
    ("order", "words"),
    [
        ("ABCD", [0x1234, 0x5678]),
        ("CDAB", [0x5678, 0x1234]),
        ("BADC", [0x3412, 0x7856]),
        ("DCBA", [0x7856, 0x3412]),
    ],
)
def test_uint32_known_orders(order: str, words: list[int]) -> None:
    """0x12345678 decodes from the four word/byte orders as the Modbus literature spells them."""
    assert decode_value(words, reg("uint32", order)) == 0x12345678


@pytest.mark.parametrize(
    ("order", "words"),
    [
        ("ABCD", [0x3F80, 0x0000]),
        ("CDAB", [0x0000, 0x3F80]),
        ("BADC", [0x803F, 0x0000]),
        ("DCBA", [0x0000, 0x803F]),
    ],
)
def test_float32_known_orders(order: str, words: list[int]) -> None:
    """IEEE-754 1.0 (0x3F800000) decodes from each order."""
    assert decode_value(words, reg("float32", order)) == 1.0


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize(
    ("type_", "value"),
    [
        ("int16", -12345),
        ("int16", 32767),
        ("uint16", 65535),
        ("uint16", 0x1234),
        ("int32", -123456789),
        ("int32", -(2**31)),
        ("uint32", 4_000_000_000),
        ("float32", -273.25),
        ("float32", 123456.5),
    ],
)
def test_every_type_and_order(type_: str, value: float, order: str) -> None:
    """Every register type decodes a struct-packed known value in every byte order."""
    assert decode_value(to_words(value, type_, order), reg(type_, order)) == value


@pytest.mark.parametrize(("order", "expected"), [("ABCD", 0x1234), ("CDAB", 0x1234), ("BADC", 0x3412)])
def test_sixteen_bit_orders_are_ab_or_ba(order: str, expected: int) -> None:
    """16-bit values read ABCD/CDAB as AB and BADC/DCBA as BA."""
    assert decode_value([0x1234], reg("uint16", order)) == expected


def test_scale_is_applied() -> None:
    """The register's scale multiplies the raw value (a 0.1 degC int16 reads -12.3 from -123)."""
    assert decode_value(to_words(-123, "int16", "ABCD"), reg("int16", scale=0.1)) == pytest.approx(-12.3)


@settings(max_examples=300, deadline=None)
@given(
    value=st.floats(width=32, allow_nan=False, allow_infinity=False),
    order=st.sampled_from(ORDERS),
)
def test_float32_round_trip(value: float, order: str) -> None:
    """Any finite float32 survives packing in any order and decoding back."""
    assert decode_value(to_words(value, "float32", order), reg("float32", order)) == value


@settings(max_examples=300, deadline=None)
@given(value=st.integers(-(2**31), 2**31 - 1), order=st.sampled_from(ORDERS))
def test_int32_round_trip(value: int, order: str) -> None:
    """Any int32 survives packing in any order and decoding back."""
    assert decode_value(to_words(value, "int32", order), reg("int32", order)) == value


@pytest.mark.parametrize(
    ("type_", "words"), [("uint16", []), ("uint16", [1, 2]), ("float32", [1]), ("int32", [1, 2, 3])]
)
def test_wrong_word_count_is_a_length_error(type_: str, words: list[int]) -> None:
    """A value given the wrong number of words raises ModbusDecodeError with reason `length`."""
    with pytest.raises(ModbusDecodeError) as info:
        decode_value(words, reg(type_))
    assert info.value.reason == "length"


@pytest.mark.parametrize("words", [[-1], [65536]])
def test_word_out_of_range_is_a_length_error(words: list[int]) -> None:
    """A 'word' outside 0..65535 is rejected as a typed error, not a struct.error."""
    with pytest.raises(ModbusDecodeError):
        decode_value(words, reg())


def test_nan_float_is_bad_value() -> None:
    """0xFFFFFFFF (a NaN, 'no measurement' on many devices) is a bad_value error, never a sample."""
    with pytest.raises(ModbusDecodeError) as info:
        decode_value([0xFFFF, 0xFFFF], reg("float32"))
    assert info.value.reason == "bad_value"


@settings(max_examples=300, deadline=None)
@given(
    words=st.lists(st.integers(-5, 70000), max_size=3),
    type_=st.sampled_from(tuple(FORMATS)),
    order=st.sampled_from(ORDERS),
)
def test_decode_value_fuzz(words: list[int], type_: str, order: str) -> None:
    """Arbitrary word lists decode to a finite number or raise only ModbusDecodeError."""
    with contextlib.suppress(ModbusDecodeError):
        assert math.isfinite(decode_value(words, reg(type_, order)))


def pressure_map() -> ModbusRead:
    """The value + decimal-point layout: 0x0003 decimal places, 0x0004 signed value."""
    return ModbusRead.model_validate(
        {
            "registers": [
                {"name": "decimals", "address": 3},
                {"name": "pressure", "address": 4, "type": "int16", "decimals_register": "decimals"},
            ]
        }
    )


def test_decimals_register_divides_value() -> None:
    """350 with 3 decimal places reads 0.350, and the decimals register itself is not a sample."""
    modbus = pressure_map()
    (block,) = plan_reads(modbus)
    assert decode_registers(modbus, {block: [3, 350]}) == [Sample("pressure", 0.35)]


def test_decimals_with_negative_value() -> None:
    """A signed value keeps its sign through the decimal shift (-5 with 1 place is -0.5)."""
    modbus = pressure_map()
    (block,) = plan_reads(modbus)
    assert decode_registers(modbus, {block: [1, 0xFFFB]}) == [Sample("pressure", -0.5)]


def test_decimals_out_of_range_is_counted() -> None:
    """A decimals register holding 12 places is garbage: the value is dropped and counted as bad_value."""
    modbus = pressure_map()
    (block,) = plan_reads(modbus)
    stats = DecodeStats()
    assert decode_registers(modbus, {block: [12, 350]}, stats) == []
    assert stats.counts["bad_value"] == 1


def test_missing_decimals_is_counted() -> None:
    """A value whose decimals register was not read is dropped and counted as missing_decimals."""
    modbus = ModbusRead.model_validate(
        {
            "registers": [
                {"name": "decimals", "address": 100},
                {"name": "pressure", "address": 0, "decimals_register": "decimals"},
            ]
        }
    )
    first, _ = plan_reads(modbus)
    stats = DecodeStats()
    assert decode_registers(modbus, {first: [350]}, stats) == []
    assert stats.counts["missing_decimals"] == 1


def test_decode_block_length_mismatch() -> None:
    """Words that do not match the block's count raise a length error."""
    (block,) = plan_reads(pressure_map())
    with pytest.raises(ModbusDecodeError) as info:
        decode_block(block, [1, 2, 3])
    assert info.value.reason == "length"


def test_decode_block_skips_nan_register_when_counting() -> None:
    """With stats, one NaN float32 is counted as bad_value and its neighbours still decode."""
    modbus = ModbusRead.model_validate(
        {
            "registers": [
                {"name": "a", "address": 0, "type": "float32"},
                {"name": "b", "address": 2, "type": "float32"},
            ]
        }
    )
    (block,) = plan_reads(modbus)
    stats = DecodeStats()
    values = decode_block(block, [0xFFFF, 0xFFFF, *to_words(2.5, "float32", "ABCD")], stats)
    assert values == {"b": 2.5}
    assert stats.counts["bad_value"] == 1


def registers(*specs: tuple[str, int, int, str]) -> ModbusRead:
    """Build a map from (name, function, address, type) tuples."""
    return ModbusRead.model_validate(
        {"registers": [{"name": n, "function": f, "address": a, "type": t} for n, f, a, t in specs]}
    )


def test_plan_contiguous_registers_one_block() -> None:
    """Adjacent registers of one function are read in one block spanning them all."""
    modbus = registers(("a", 3, 0, "uint16"), ("b", 3, 1, "float32"), ("c", 3, 3, "int16"))
    (block,) = plan_reads(modbus)
    assert (block.function, block.address, block.count) == (3, 0, 4)
    assert [r.name for r in block.registers] == ["a", "b", "c"]


def test_plan_bridges_small_gaps_only() -> None:
    """A gap of max_gap registers is read through; a wider one starts a new block."""
    modbus = registers(("a", 3, 0, "uint16"), ("b", 3, 5, "uint16"), ("c", 3, 20, "uint16"))
    blocks = plan_reads(modbus, max_gap=4)
    assert [(b.address, b.count) for b in blocks] == [(0, 6), (20, 1)]
    assert [(b.address, b.count) for b in plan_reads(modbus, max_gap=0)] == [(0, 1), (5, 1), (20, 1)]


def test_plan_separates_function_codes() -> None:
    """Holding (3) and input (4) registers at the same addresses go in separate reads."""
    modbus = registers(("h", 3, 0, "uint16"), ("i", 4, 0, "uint16"), ("h2", 3, 1, "uint16"))
    blocks = plan_reads(modbus)
    assert [(b.function, b.address, b.count, len(b.registers)) for b in blocks] == [
        (3, 0, 2, 2),
        (4, 0, 1, 1),
    ]


def test_plan_respects_max_block() -> None:
    """No block is longer than max_block registers."""
    modbus = registers(*[(f"r{i}", 3, i * 2, "float32") for i in range(10)])
    blocks = plan_reads(modbus, max_block=6)
    assert [(b.address, b.count) for b in blocks] == [(0, 6), (6, 6), (12, 6), (18, 2)]


def test_plan_rejects_bad_max_block() -> None:
    """A block limit beyond the protocol's 125 registers is a configuration error."""
    with pytest.raises(ValueError, match="max_block"):
        plan_reads(registers(("a", 3, 0, "uint16")), max_block=126)


def test_plan_rejects_register_past_address_space() -> None:
    """A 2-word register at 65535 cannot be read and is refused up front."""
    with pytest.raises(ValueError, match="65535"):
        plan_reads(registers(("a", 3, 65535, "uint32")))


@settings(max_examples=200, deadline=None)
@given(
    specs=st.lists(
        st.tuples(st.sampled_from([3, 4]), st.integers(0, 400), st.sampled_from(["uint16", "float32"])),
        min_size=1,
        max_size=30,
    ),
    max_block=st.integers(2, 125),
    max_gap=st.integers(0, 10),
)
def test_plan_covers_every_register(specs: list[tuple[int, int, str]], max_block: int, max_gap: int) -> None:
    """Every register lies inside exactly one block of its function, and no block exceeds max_block."""
    modbus = registers(*[(f"r{i}", f, a, t) for i, (f, a, t) in enumerate(specs)])
    blocks = plan_reads(modbus, max_block=max_block, max_gap=max_gap)
    seen: list[str] = []
    for block in blocks:
        assert isinstance(block, ReadBlock)
        assert 1 <= block.count <= max_block
        for r in block.registers:
            assert r.function == block.function
            assert block.address <= r.address
            assert r.address + r.words <= block.address + block.count
            seen.append(r.name)
    assert sorted(seen) == sorted(r.name for r in modbus.registers)
