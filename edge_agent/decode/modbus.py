"""Modbus RTU decoding: a register map in, a poll plan out; register words or RTU frames in, samples out."""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from device_profiles.schema import ModbusRead, Register
from edge_agent.decode.base import DecodeError, DecodeStats, Sample
from edge_agent.decode.hj212_crc import crc16_modbus

# Big-endian struct format of each register type, laid out as canonical ABCD bytes (A = most significant).
_FORMATS: Final[dict[str, struct.Struct]] = {
    "int16": struct.Struct(">h"),
    "uint16": struct.Struct(">H"),
    "int32": struct.Struct(">i"),
    "uint32": struct.Struct(">I"),
    "float32": struct.Struct(">f"),
}

# Where each canonical byte sits on the wire, per declared order and value width. Registers travel
# big-endian (high byte first), so `words` unpack to the wire bytes; picking wire[i] for each i in the
# tuple rebuilds A B (C D). 16-bit values have only AB or BA: ABCD/CDAB read as AB, BADC/DCBA as BA.
_WIRE_INDEX: Final[dict[tuple[str, int], tuple[int, ...]]] = {
    ("ABCD", 2): (0, 1),
    ("CDAB", 2): (0, 1),
    ("BADC", 2): (1, 0),
    ("DCBA", 2): (1, 0),
    ("ABCD", 4): (0, 1, 2, 3),
    ("CDAB", 4): (2, 3, 0, 1),
    ("BADC", 4): (1, 0, 3, 2),
    ("DCBA", 4): (3, 2, 1, 0),
}

# Largest register count one read (function 3 or 4) may ask for, by the Modbus application protocol.
MAX_READ_REGISTERS: Final = 125
# A decimals register holding more places than this is garbage, not a measurement layout.
_MAX_DECIMALS: Final = 9

EXCEPTION_NAMES: Final[dict[int, str]] = {
    0x01: "illegal function",
    0x02: "illegal data address",
    0x03: "illegal data value",
    0x04: "server device failure",
    0x05: "acknowledge",
    0x06: "server device busy",
    0x08: "memory parity error",
    0x0A: "gateway path unavailable",
    0x0B: "gateway target device failed to respond",
}


class ModbusDecodeError(DecodeError):
    """Register words or an RTU frame could not be decoded (reasons: length, bad_value, crc, framing)."""

    reason = "modbus"


class ModbusExceptionResponse(ModbusDecodeError):
    """The device answered with a Modbus exception response instead of register values."""

    reason = "exception"

    def __init__(self, function: int, code: int) -> None:
        name = EXCEPTION_NAMES.get(code, "unknown exception")
        super().__init__(f"function {function}: exception {code:#04x} ({name})")
        self.function = function
        self.code = code


def decode_value(words: Sequence[int], register: Register) -> float:
    """Decode one register value from its 16-bit words in the register's byte order, times its scale."""
    if len(words) != register.words:
        raise ModbusDecodeError(
            f"register {register.name!r}: {register.type} needs {register.words} words, got {len(words)}",
            reason="length",
        )
    try:
        wire = struct.pack(f">{len(words)}H", *words)
    except struct.error as exc:
        raise ModbusDecodeError(
            f"register {register.name!r}: words must be 0..65535, got {list(words)}", reason="length"
        ) from exc
    canonical = bytes(wire[i] for i in _WIRE_INDEX[register.order, len(wire)])
    value = float(_FORMATS[register.type].unpack(canonical)[0]) * register.scale
    # Many devices answer 0xFFFFFFFF (a NaN) for "no measurement"; it is not a value.
    if not math.isfinite(value):
        raise ModbusDecodeError(f"register {register.name!r}: not a finite number", reason="bad_value")
    return value


@dataclass(frozen=True, slots=True)
class ReadBlock:
    """One read request of the poll plan: `count` registers from `address` with `function` (3 or 4)."""

    function: int
    address: int
    count: int
    registers: tuple[Register, ...]


def plan_reads(modbus: ModbusRead, max_block: int = MAX_READ_REGISTERS, max_gap: int = 4) -> list[ReadBlock]:
    """Group the register map into as few reads as possible, per function code, in address order.

    Registers join a block when the unused registers between them are at most `max_gap` (reading a
    few unmapped registers is cheaper than another round trip; set 0 for devices that reject it) and
    the block stays within `max_block` registers.
    """
    if not 2 <= max_block <= MAX_READ_REGISTERS:
        raise ValueError(f"max_block must be 2..{MAX_READ_REGISTERS}, got {max_block}")
    if max_gap < 0:
        raise ValueError(f"max_gap cannot be negative, got {max_gap}")
    blocks: list[ReadBlock] = []
    for function in sorted({r.function for r in modbus.registers}):
        regs = sorted((r for r in modbus.registers if r.function == function), key=lambda r: r.address)
        start, end = -1, -1
        members: list[Register] = []
        for reg in regs:
            reg_end = reg.address + reg.words
            if reg_end > 65536:
                raise ValueError(f"register {reg.name!r} runs past address 65535")
            if members and reg.address - end <= max_gap and max(end, reg_end) - start <= max_block:
                end = max(end, reg_end)
                members.append(reg)
                continue
            if members:
                blocks.append(ReadBlock(function, start, end - start, tuple(members)))
            start, end, members = reg.address, reg_end, [reg]
        if members:
            blocks.append(ReadBlock(function, start, end - start, tuple(members)))
    return blocks


def decode_block(block: ReadBlock, words: Sequence[int], stats: DecodeStats | None = None) -> dict[str, float]:
    """Decode every register of a block from the words one read returned (scale applied, decimals not).

    A register whose value is not a finite number is left out and counted as `bad_value` in `stats`.
    """
    if len(words) != block.count:
        raise ModbusDecodeError(
            f"read {block.function}:{block.address} expects {block.count} words, got {len(words)}",
            reason="length",
        )
    values: dict[str, float] = {}
    for reg in block.registers:
        offset = reg.address - block.address
        try:
            values[reg.name] = decode_value(words[offset : offset + reg.words], reg)
        except ModbusDecodeError as exc:
            if stats is None or exc.reason != "bad_value":
                raise
            stats.add("bad_value")
    return values


def decimals_registers(modbus: ModbusRead) -> frozenset[str]:
    """Return the names of registers that only hold another register's number of decimal places."""
    return frozenset(r.decimals_register for r in modbus.registers if r.decimals_register is not None)


def apply_decimals(modbus: ModbusRead, values: Mapping[str, float], stats: DecodeStats | None = None) -> list[Sample]:
    """Turn decoded register values into samples, dividing by 10**decimals where a register has them.

    Decimals registers are not emitted. A value whose decimals register is missing from `values` or
    holds no small whole number is left out and counted (`missing_decimals`, `bad_value`).
    """
    hidden = decimals_registers(modbus)
    samples: list[Sample] = []
    for reg in modbus.registers:
        if reg.name in hidden or reg.name not in values:
            continue
        value = values[reg.name]
        if reg.decimals_register is not None:
            places = values.get(reg.decimals_register)
            if places is None:
                if stats is not None:
                    stats.add("missing_decimals")
                continue
            if not (places.is_integer() and 0 <= places <= _MAX_DECIMALS):
                if stats is not None:
                    stats.add("bad_value")
                continue
            value /= 10 ** int(places)
        samples.append(Sample(reg.name, value))
    return samples


def decode_registers(
    modbus: ModbusRead,
    blocks_words: Mapping[ReadBlock, Sequence[int]],
    stats: DecodeStats | None = None,
) -> list[Sample]:
    """Decode one poll cycle (each block of the plan with the words its read returned) into samples."""
    values: dict[str, float] = {}
    for block, words in blocks_words.items():
        values.update(decode_block(block, words, stats))
    return apply_decimals(modbus, values, stats)


@dataclass(frozen=True, slots=True)
class RtuResponse:
    """A checked RTU response to a register read: register words, or the device's exception code."""

    slave: int
    function: int
    words: tuple[int, ...] = ()
    exception_code: int | None = None

    def raise_for_exception(self) -> RtuResponse:
        """Return self, or raise ModbusExceptionResponse if the device answered with an exception."""
        if self.exception_code is not None:
            raise ModbusExceptionResponse(self.function, self.exception_code)
        return self


def _check_crc(frame: bytes) -> None:
    """Raise ModbusDecodeError(crc) unless the last two bytes are the frame's CRC, low byte first."""
    expected = crc16_modbus(frame[:-2])
    got = int.from_bytes(frame[-2:], "little")
    if got != expected:
        raise ModbusDecodeError(f"CRC {got:#06x} does not match {expected:#06x}", reason="crc")


def parse_rtu_response(frame: bytes) -> RtuResponse:
    """Parse one RTU response to a function 3 or 4 read, checking its length and CRC-16/MODBUS."""
    if len(frame) < 5:
        raise ModbusDecodeError(f"{len(frame)} bytes is shorter than any response", reason="framing")
    slave, function = frame[0], frame[1]
    if function & 0x80:
        if len(frame) != 5:
            raise ModbusDecodeError(f"exception response of {len(frame)} bytes, not 5", reason="framing")
        _check_crc(frame)
        return RtuResponse(slave, function & 0x7F, exception_code=frame[2])
    if function not in (3, 4):
        raise ModbusDecodeError(f"function {function} is not a register read", reason="framing")
    byte_count = frame[2]
    if byte_count % 2 or len(frame) != 5 + byte_count:
        raise ModbusDecodeError(f"byte count {byte_count} does not fit a {len(frame)}-byte frame", reason="framing")
    _check_crc(frame)
    count = byte_count // 2
    return RtuResponse(slave, function, struct.unpack(f">{count}H", frame[3 : 3 + byte_count]))


class ModbusCaptureDecoder:
    """Replay decoder for captured RTU responses: one hex dump per line, samples out.

    Each feed() carries whole lines (a capture file or part of one). A line may name the read it answers
    as `@<function>:<address> `; otherwise responses follow the poll plan's blocks in order, cyclically.
    Blank lines and `#` comments are skipped. Decimal places from an earlier block are remembered.
    """

    def __init__(self, modbus: ModbusRead, max_block: int = MAX_READ_REGISTERS, max_gap: int = 4) -> None:
        self.modbus = modbus
        self.stats = DecodeStats()
        self.blocks = plan_reads(modbus, max_block, max_gap)
        self._by_start = {(b.function, b.address): b for b in self.blocks}
        self._next = 0
        self._hidden = decimals_registers(modbus)
        self._decimals: dict[str, float] = {}

    def feed(self, data: bytes, now_ms: int) -> list[Sample]:
        """Decode every response line in `data`; bad lines are counted, never raised."""
        samples: list[Sample] = []
        for raw in data.splitlines():
            line = raw.strip()
            if line and not line.startswith(b"#"):
                samples.extend(self._line(line))
        return samples

    def _line(self, line: bytes) -> list[Sample]:
        """Decode one response line, counting its outcome."""
        if line.startswith(b"@"):
            head, _, line = line.partition(b" ")
            block = self._named_block(head[1:])
            if block is None:
                self.stats.add("unmatched")
                return []
        else:
            block = self.blocks[self._next]
            self._next = (self._next + 1) % len(self.blocks)
        try:
            response = parse_rtu_response(bytes.fromhex(line.decode("ascii"))).raise_for_exception()
        except ModbusDecodeError as exc:
            self.stats.add(exc.reason)
            return []
        except ValueError:  # not hex, or not ASCII (UnicodeDecodeError is a ValueError)
            self.stats.add("framing")
            return []
        if response.function != block.function or len(response.words) != block.count:
            self.stats.add("unmatched")
            return []
        self.stats.add("frames")
        values = decode_block(block, response.words, self.stats)
        self._decimals.update((k, v) for k, v in values.items() if k in self._hidden)
        values.update(self._decimals)
        return apply_decimals(self.modbus, values, self.stats)

    def _named_block(self, head: bytes) -> ReadBlock | None:
        """Return the plan's block that starts at `<function>:<address>`, or None."""
        function, _, address = head.partition(b":")
        try:
            return self._by_start.get((int(function, 0), int(address, 0)))
        except ValueError:
            return None
