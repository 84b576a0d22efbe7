"""Fault injection: a seeded spec in, damaged frames, spoiled values, skewed clocks and outages out."""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from dataclasses import dataclass
from typing import Final, Literal

from simulators.errors import FaultSpecError

_HEX: Final = b"0123456789ABCDEF"
_LINE_END: Final = b"\r\n"
# Clock faults seen in the field: a zone slip, an RTC that lost a day, a minute-scale drift.
_SKEWS_S: Final = (-86400.0, -28800.0, -3600.0, -300.0, 300.0, 3600.0, 28800.0)

Outage = Literal["unplug", "silence"]


@dataclass(frozen=True, slots=True)
class FaultSpec:
    """Fault rates. Frame faults are probabilities per frame, outages per second, spikes per value."""

    garbage: float = 0.0  # junk bytes before a frame
    checksum: float = 0.0  # one checksum digit changed
    truncate: float = 0.0  # frame cut short, the line end kept
    splice: float = 0.0  # frame cut short and the next frame glued to the stump
    skew: float = 0.0  # the device clock is off for this frame
    unplug: float = 0.0  # the cable is pulled (per second)
    silence: float = 0.0  # the device says nothing (per second)
    spike: float = 0.0  # a value jumps far above the truth
    drift: float = 0.0  # fraction of the value gained per hour of scenario time (may be negative)
    unplug_for: float = 3.0  # seconds an unplug lasts
    silence_for: float = 5.0  # seconds a silence lasts

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name == "drift":
                continue
            if field.name.endswith("_for"):
                if value < 0:
                    raise FaultSpecError(f"{field.name} must be >= 0 seconds, got {value}")
            elif not 0.0 <= value <= 1.0:
                raise FaultSpecError(f"{field.name} is a probability in [0, 1], got {value}")

    @property
    def active(self) -> bool:
        """Return True when any fault can happen."""
        defaults = FaultSpec()
        return any(
            getattr(self, f.name) != getattr(defaults, f.name)
            for f in dataclasses.fields(self)
            if not f.name.endswith("_for")
        )


FAULT_NAMES: Final = tuple(f.name for f in dataclasses.fields(FaultSpec))


def parse_faults(text: str) -> FaultSpec:
    """Parse `garbage=0.01,checksum=0.02,unplug_for=5` into a FaultSpec."""
    values: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, raw = item.partition("=")
        name = name.strip()
        if not sep or name not in FAULT_NAMES:
            raise FaultSpecError(f"{item!r}: expected NAME=RATE with NAME one of {', '.join(FAULT_NAMES)}")
        try:
            values[name] = float(raw)
        except ValueError as exc:
            raise FaultSpecError(f"{item!r}: {raw.strip()!r} is not a number") from exc
    return FaultSpec(**values)


class Faults:
    """Applies a FaultSpec with a seeded random.Random; `counts` says how often each fault happened."""

    def __init__(self, spec: FaultSpec | None = None, rng: random.Random | None = None) -> None:
        self.spec = spec or FaultSpec()
        self.rng = rng or random.Random(0)
        self.counts: Counter[str] = Counter()
        self._stump = b""

    def roll(self, name: str, probability: float) -> bool:
        """Draw once; count and return True with `probability`."""
        if probability <= 0.0:
            return False
        hit = self.rng.random() < probability
        if hit:
            self.counts[name] += 1
        return hit

    def frame(self, frame: bytes, *, binary: bool = False) -> bytes:
        """Return the bytes to send for one frame after the frame faults.

        Text frames end in CR LF and a hex checksum; `binary` frames (Modbus RTU) end in a CRC byte pair.
        """
        spec = self.spec
        end = b"" if binary else _LINE_END
        out = frame
        if self.roll("checksum", spec.checksum):
            out = corrupt_crc(out, self.rng) if binary else corrupt_checksum(out, self.rng)
        if self.roll("truncate", spec.truncate):
            out = out[: self.rng.randrange(1, max(2, len(out) - 2))] + end
        stump, self._stump = self._stump, b""
        if self.roll("splice", spec.splice):
            # The tail and line end of this frame are lost; the next frame starts right after the stump.
            self._stump = out[: self.rng.randrange(1, max(2, len(out) - 2))]
            out = b""
        out = stump + out
        if self.roll("garbage", spec.garbage):
            out = self.rng.randbytes(self.rng.randint(1, 16)) + out
        return out

    def value(self, value: float, t: float) -> float:
        """Return `value` at scenario time `t` after drift and spikes."""
        if self.spec.drift:
            self.counts["drift"] += 1
            value *= 1.0 + self.spec.drift * t / 3600.0
        if self.roll("spike", self.spec.spike):
            value += max(abs(value), 1.0) * self.rng.uniform(3.0, 10.0)
        return value

    def clock_offset_s(self) -> float:
        """Return how far off the device clock is for the next frame (0 unless a skew fault hits)."""
        if self.roll("skew", self.spec.skew):
            return self.rng.choice(_SKEWS_S)
        return 0.0

    def outage(self, step: float) -> Outage | None:
        """Decide once per tick of `step` seconds whether an unplug or a silence starts now."""
        if self.roll("unplug", min(1.0, self.spec.unplug * step)):
            return "unplug"
        if self.roll("silence", min(1.0, self.spec.silence * step)):
            return "silence"
        return None


def corrupt_checksum(frame: bytes, rng: random.Random) -> bytes:
    """Change the last hex digit before the line end so the checksum no longer matches."""
    body = frame.removesuffix(_LINE_END)
    if not body:
        return frame
    last = body[-1:].upper()
    choices = [d for d in _HEX if bytes([d]) != last]
    digit = rng.choice(choices)
    return body[:-1] + bytes([digit]) + frame[len(body) :]


def corrupt_crc(frame: bytes, rng: random.Random) -> bytes:
    """Flip bits of the last byte of a binary frame so its CRC no longer matches."""
    if not frame:
        return frame
    return frame[:-1] + bytes([frame[-1] ^ rng.randint(1, 255)])
