"""Scripted value sources: scenario time in, canonical quantity values out (deterministic, value = f(t))."""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final, Protocol

from simulators.errors import ScenarioError


class ValueSource(Protocol):
    """A value as a pure function of scenario time in seconds."""

    def value(self, t: float) -> float:
        """Return the value at scenario time `t`."""
        ...


@dataclass(frozen=True, slots=True)
class Constant:
    """The same value at every time."""

    level: float

    def value(self, t: float) -> float:
        """Return the constant level."""
        return self.level


@dataclass(frozen=True, slots=True)
class Linear:
    """A straight line from `start` at t = 0, clamped to [low, high]."""

    start: float
    per_second: float
    low: float = -math.inf
    high: float = math.inf

    def value(self, t: float) -> float:
        """Return start + per_second·t, clamped."""
        return min(self.high, max(self.low, self.start + self.per_second * t))


@dataclass(frozen=True, slots=True)
class Ramp:
    """`start` until `begin`, then linear to `end` over `duration` seconds, then `end`."""

    start: float
    end: float
    begin: float
    duration: float

    def value(self, t: float) -> float:
        """Return the ramp value at `t`."""
        if t <= self.begin:
            return self.start
        if self.duration <= 0 or t >= self.begin + self.duration:
            return self.end
        return self.start + (self.end - self.start) * (t - self.begin) / self.duration


@dataclass(frozen=True, slots=True)
class Episode:
    """`base`, rising linearly to `peak` from `begin` over `rise`, holding, then decaying back."""

    base: float
    peak: float
    begin: float
    rise: float
    hold: float
    decay: float

    def value(self, t: float) -> float:
        """Return the episode value at `t`."""
        up = Ramp(self.base, self.peak, self.begin, self.rise)
        down = Ramp(self.peak, self.base, self.begin + self.rise + self.hold, self.decay)
        return up.value(t) if t < self.begin + self.rise + self.hold else down.value(t)


@dataclass(frozen=True, slots=True)
class Wobble:
    """Another source plus a deterministic ripple of `amplitude` (two sines), never below `floor`."""

    source: ValueSource
    amplitude: float
    period: float = 97.0
    phase: float = 0.0
    floor: float = -math.inf

    def value(self, t: float) -> float:
        """Return the source value with the ripple added."""
        w = 2.0 * math.pi * t / self.period
        ripple = 0.6 * math.sin(w + self.phase) + 0.4 * math.sin(w / 0.37 + 2.0 * self.phase)
        return max(self.floor, self.source.value(t) + self.amplitude * ripple)


def _phase(name: str) -> float:
    """Return a stable phase per quantity name so quantities do not ripple in step."""
    return (zlib.crc32(name.encode()) % 6283) / 1000.0


def _calm(name: str, level: float, amplitude: float, floor: float = 0.0) -> ValueSource:
    return Wobble(Constant(level), amplitude, 60.0 + zlib.crc32(name.encode()) % 90, _phase(name), floor)


# Calm-day values of every quantity the simulators produce, in canonical units.
BASELINE: Final[Mapping[str, ValueSource]] = {
    "pm2_5": _calm("pm2_5", 35.0, 4.0),
    "pm10": _calm("pm10", 62.0, 6.0),
    "so2": _calm("so2", 8.0, 1.0),
    "no2": _calm("no2", 31.0, 4.0),
    "o3": _calm("o3", 82.0, 8.0),
    "co": _calm("co", 0.6, 0.08),
    "noise_la": _calm("noise_la", 55.0, 3.0),
    "temperature": _calm("temperature", 22.0, 0.8, -273.15),
    "humidity": _calm("humidity", 55.0, 3.0),
    "pressure": _calm("pressure", 0.35, 0.005),
    "water_level": _calm("water_level", 1.2, 0.03),
    "flow_rate": _calm("flow_rate", 12.5, 0.6),
    "flow_total": Linear(1000.0, 12.5 / 3600.0),
    "gas_lel": Constant(0.0),
    "tilt": _calm("tilt", 0.8, 0.1),
    "battery": Linear(95.0, -0.0005, low=0.0),
}


@dataclass(frozen=True, slots=True)
class Scenario:
    """A named set of value sources by canonical quantity, over the calm baseline."""

    name: str
    sources: Mapping[str, ValueSource] = field(default_factory=dict)

    def value(self, quantity: str, t: float) -> float:
        """Return the value of `quantity` at scenario time `t`."""
        source = self.sources.get(quantity) or BASELINE.get(quantity)
        if source is None:
            raise ScenarioError(f"scenario {self.name!r} has no value for quantity {quantity!r}")
        return source.value(t)

    def has(self, quantity: str) -> bool:
        """Return True when the scenario can give `quantity`."""
        return quantity in self.sources or quantity in BASELINE


def _gas_leak(begin: float, duration: float) -> dict[str, ValueSource]:
    return {"gas_lel": Ramp(0.0, 60.0, begin, duration)}


def _pressure_drop(begin: float, duration: float) -> dict[str, ValueSource]:
    return {"pressure": Ramp(0.35, 0.08, begin, duration)}


def _tilt(begin: float, duration: float) -> dict[str, ValueSource]:
    # The cover is knocked open at `begin` and put back `duration` seconds later.
    return {"tilt": Episode(0.8, 35.0, begin, 2.0, max(0.0, duration - 4.0), 2.0)}


def _pm25_episode(begin: float, duration: float) -> dict[str, ValueSource]:
    third = duration / 3.0
    return {
        "pm2_5": Episode(35.0, 250.0, begin, third, third, third),
        "pm10": Episode(62.0, 380.0, begin, third, third, third),
    }


def _flood(begin: float, duration: float) -> dict[str, ValueSource]:
    return {"water_level": Ramp(1.2, 3.4, begin, duration)}


SCENARIOS: Final[dict[str, Callable[[float, float], dict[str, ValueSource]]]] = {
    "normal": lambda begin, duration: {},
    "gas-leak": _gas_leak,
    "pressure-drop": _pressure_drop,
    "tilt": _tilt,
    "pm25-episode": _pm25_episode,
    "flood": _flood,
}


def scenario(name: str, *, begin: float = 10.0, duration: float = 120.0) -> Scenario:
    """Build a named scenario whose event starts at `begin` and lasts `duration` seconds."""
    factory = SCENARIOS.get(name)
    if factory is None:
        raise ScenarioError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}")
    if begin < 0 or duration < 0:
        raise ScenarioError("begin and duration must be >= 0 seconds")
    return Scenario(name, factory(begin, duration))
