"""Modbus register encoding: a profile's register map and device values in, 16-bit register words out."""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping
from typing import Final

from device_profiles import Measure, Profile
from device_profiles.schema import Register
from simulators.values import device_value

_FORMATS: Final = {"int16": ">h", "uint16": ">H", "int32": ">i", "uint32": ">I", "float32": ">f"}
_LIMITS: Final = {
    "int16": (-(2**15), 2**15 - 1),
    "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
}
_MAX_DEFAULT_DECIMALS: Final = 3


def wire_bytes(canonical: bytes, order: str) -> bytes:
    """Lay out big-endian (ABCD) value bytes in a register's byte order; 16-bit values use A and B only."""
    letters = "ABCD"[: len(canonical)]
    return bytes(canonical[letters.index(ch)] for ch in order if ch in letters)


def encode_value(register: Register, value: float, decimals: int = 0) -> list[int]:
    """Return the words a device holds for `value` (raw = value / scale · 10**decimals).

    Integer registers round and saturate at their type's limits, as transmitters do.
    """
    raw = value / register.scale * 10**decimals
    if register.type == "float32":
        packed = struct.pack(">f", raw)
    else:
        low, high = _LIMITS[register.type]
        whole = 0 if not math.isfinite(raw) else min(high, max(low, round(raw)))
        packed = struct.pack(_FORMATS[register.type], whole)
    wire = wire_bytes(packed, register.order)
    return list(struct.unpack(f">{len(wire) // 2}H", wire))


def default_decimals(register: Register, measure: Measure | None) -> int:
    """Pick the most decimal places (up to 3) at which the top of the measure's range still fits."""
    if register.type == "float32":
        return 0
    top = 1000.0
    if measure is not None and measure.valid_range is not None:
        top = max(abs(device_value(measure, bound)) for bound in measure.valid_range)
    _, high = _LIMITS[register.type]
    for places in range(_MAX_DEFAULT_DECIMALS, 0, -1):
        if top / abs(register.scale) * 10**places <= high:
            return places
    return 0


class RegisterImage:
    """The register contents of one slave, rebuilt from device values by its profile's register map."""

    def __init__(self, profile: Profile, decimals: Mapping[str, int] | None = None) -> None:
        modbus = profile.read.modbus
        if modbus is None or profile.read.decoder != "modbus":
            raise ValueError(f"profile {profile.name!r} has no Modbus register map")
        self.profile = profile
        self.registers = modbus.registers
        self.measures = {m.source: m for m in profile.measures}
        # Places held by each decimals register, from the first register that refers to it.
        self.decimals: dict[str, int] = {}
        for reg in self.registers:
            if reg.decimals_register is not None and reg.decimals_register not in self.decimals:
                given = (decimals or {}).get(reg.decimals_register)
                places = default_decimals(reg, self.measures.get(reg.name)) if given is None else given
                self.decimals[reg.decimals_register] = places
        self.words: dict[tuple[int, int], int] = {}

    def update(self, values: Mapping[str, float]) -> None:
        """Re-encode every register from device values by source key (unmeasured registers hold 0)."""
        for reg in self.registers:
            if reg.name in self.decimals:
                words = encode_value(reg, float(self.decimals[reg.name]))
            else:
                places = self.decimals.get(reg.decimals_register or "", 0)
                words = encode_value(reg, values.get(reg.name, 0.0), places)
            for offset, word in enumerate(words):
                self.words[reg.function, reg.address + offset] = word

    def function_words(self, function: int) -> dict[int, int]:
        """Return address → word for one function code (3 holding, 4 input registers)."""
        return {address: word for (fc, address), word in self.words.items() if fc == function}
