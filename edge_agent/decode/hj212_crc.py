"""HJ 212 checksums: the standard's own CRC and the CRC-16/MODBUS variants some devices send instead."""

from __future__ import annotations

from typing import Final, Literal

CrcMode = Literal["hj212", "modbus_be", "modbus_le", "none"]
CRC_MODES: Final[tuple[CrcMode, ...]] = ("hj212", "modbus_be", "modbus_le", "none")


def _reflected_table(poly: int) -> tuple[int, ...]:
    """Return the 256 results of eight reflected shifts of each byte value with `poly`."""
    table = []
    for value in range(256):
        reg = value
        for _ in range(8):
            reg = (reg >> 1) ^ poly if reg & 1 else reg >> 1
        table.append(reg)
    return tuple(table)


_TABLE: Final = _reflected_table(0xA001)


def _powers(high: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
    """Return the tables of `high` applied k times to each byte value, k = 0..7."""
    powers = [tuple(range(256))]
    for _ in range(7):
        powers.append(tuple(high[x] for x in powers[-1]))
    return tuple(powers)


# The HJ 212 register after a byte is _TABLE[(reg >> 8) ^ byte]: only its high byte h carries over,
# h' = HIGH[h ^ byte]. HIGH is linear over GF(2) and HIGH applied 8 times is the identity, so each byte
# enters the final h through HIGH^(distance mod 8) and bytes at the same distance mod 8 can be XORed
# together first. That turns a Python loop per byte into a few big-int XOR folds.
_HIGH_POWERS: Final = _powers(tuple(t >> 8 for t in _TABLE))


def crc_hj212(data: bytes) -> int:
    """Return the HJ 212-2017 Annex A CRC of `data` (`123456789` gives 0x2F80)."""
    n = len(data)
    if n == 0:
        return 0xFFFF
    p = _HIGH_POWERS
    # All bytes but the last fold into h; byte s places from the end of that prefix enters via HIGH^(s+1).
    folded = int.from_bytes(data[: n - 1], "big")
    width = (n - 1) * 8
    while width > 64:
        half = ((width + 127) // 128) * 64
        folded = (folded >> half) ^ (folded & ((1 << half) - 1))
        width = half
    h = p[(n - 1) & 7][0xFF]
    for s in range(8):
        h ^= p[(s + 1) & 7][(folded >> (8 * s)) & 0xFF]
    return _TABLE[h ^ data[n - 1]]


def crc16_modbus(data: bytes) -> int:
    """Return the CRC-16/MODBUS of `data` (`123456789` gives 0x4B37)."""
    table = _TABLE
    reg = 0xFFFF
    for byte in data:
        reg = (reg >> 8) ^ table[(reg ^ byte) & 0xFF]
    return reg


def expected_crc(segment: bytes, mode: CrcMode) -> int | None:
    """Return the 16-bit value a frame's 4 hex digits must spell in `mode`, or None when unchecked."""
    if mode == "hj212":
        return crc_hj212(segment)
    if mode == "modbus_be":
        return crc16_modbus(segment)
    if mode == "modbus_le":
        # Printed in wire order: low byte first.
        crc = crc16_modbus(segment)
        return ((crc & 0xFF) << 8) | (crc >> 8)
    return None
