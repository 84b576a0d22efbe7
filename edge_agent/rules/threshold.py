"""Threshold rules: readings of one quantity in, level alerts with `for` and `clear_for` out."""

from __future__ import annotations

from typing import Any

from device_profiles.schema import ThresholdRule
from edge_agent.rules.emit import Emitter
from edge_agent.rules.levels import LevelMachine, Transition
from gateway.alerts import AlertEvent


def ms(seconds: float) -> int:
    """Convert a profile duration in seconds to whole milliseconds of event time."""
    return round(seconds * 1000)


class ThresholdEval:
    """One threshold rule on one device."""

    __slots__ = ("emit", "last_value", "machine")

    def __init__(self, rule: ThresholdRule, emit: Emitter) -> None:
        levels: list[tuple[int, float, bool]] = []
        for lv in rule.levels:
            # The schema guarantees exactly one of `above` / `below`.
            if lv.above is not None:
                levels.append((lv.severity, lv.above, True))
            elif lv.below is not None:
                levels.append((lv.severity, lv.below, False))
        self.machine = LevelMachine(levels, ms(rule.for_), ms(rule.clear_for))
        self.emit = emit
        self.last_value: float | None = None

    def observe(self, ts: int, value: float, out: list[AlertEvent]) -> None:
        """Judge one good reading of the rule's quantity at event time `ts`."""
        self.last_value = value
        t = self.machine.step(ts, value)
        if t is not None:
            out.append(self.emit.event(t[0], t[1], ts, value, t[2]))

    def advance(self, now_ms: int, out: list[AlertEvent]) -> None:
        """Let the last reading's value hold until clock time `now_ms` (holds of on-change sensors complete)."""
        done = self.machine.advance(now_ms)
        if done is not None:
            (state, severity, limit), at = done
            out.append(self.emit.event(state, severity, at, self.last_value, limit))

    def go_stale(self, ts: int, out: list[AlertEvent]) -> None:
        """The rule's data went stale at `ts`."""
        t: Transition | None = self.machine.go_stale(ts)
        if t is not None:
            out.append(self.emit.event(t[0], t[1], ts, None, t[2]))

    def dump(self) -> dict[str, Any]:
        """Return the rule's state as JSON-ready data."""
        return {**self.machine.dump(), "last_value": self.last_value}

    def load(self, state: dict[str, Any]) -> None:
        """Restore the state written by `dump`."""
        self.machine.load(state)
        value = state.get("last_value")
        self.last_value = None if value is None else float(value)
