"""Rate-of-change rules: readings of one quantity in, alerts on a rise or fall within a window out."""

from __future__ import annotations

from collections import deque
from typing import Any

from device_profiles.schema import RateRule
from edge_agent.rules.emit import Emitter
from edge_agent.rules.levels import LevelMachine
from edge_agent.rules.threshold import ms
from gateway.alerts import AlertEvent


class RateEval:
    """One rate rule on one device: fires while the value moved more than `max_change` within `window`.

    The change is measured against the lowest (for a rise) or highest (for a fall) value of the
    readings inside the window, kept in monotonic deques so each reading costs O(1) amortised.
    The event value is the signed change (a fall is negative); the threshold is `max_change`.
    """

    __slots__ = ("_fall", "_highs", "_lows", "_rise", "_window", "emit", "machine")

    def __init__(self, rule: RateRule, emit: Emitter) -> None:
        self._window = ms(rule.window)
        self._rise = rule.direction in ("rise", "any")
        self._fall = rule.direction in ("fall", "any")
        # (ts, value) pairs; _lows has increasing values, _highs decreasing values.
        self._lows: deque[tuple[int, float]] = deque()
        self._highs: deque[tuple[int, float]] = deque()
        self.machine = LevelMachine([(rule.severity, rule.max_change, True)], 0, 0)
        self.emit = emit

    def observe(self, ts: int, value: float, out: list[AlertEvent]) -> None:
        """Judge one good reading of the rule's quantity at event time `ts`."""
        machine = self.machine
        if ts < machine.last_ts:
            machine.late += 1
            return
        oldest = ts - self._window
        change = 0.0
        if self._rise:
            lows = self._lows
            while lows and lows[-1][1] >= value:
                lows.pop()
            lows.append((ts, value))
            while lows[0][0] < oldest:
                lows.popleft()
            change = value - lows[0][1]
        if self._fall:
            highs = self._highs
            while highs and highs[-1][1] <= value:
                highs.pop()
            highs.append((ts, value))
            while highs[0][0] < oldest:
                highs.popleft()
            drop = highs[0][1] - value
            if drop > change:
                change = -drop
        t = machine.step(ts, abs(change))
        if t is not None:
            out.append(self.emit.event(t[0], t[1], ts, change, t[2]))

    def go_stale(self, ts: int, out: list[AlertEvent]) -> None:
        """The rule's data went stale at `ts`: forget the window, say so if firing."""
        self._lows.clear()
        self._highs.clear()
        t = self.machine.go_stale(ts)
        if t is not None:
            out.append(self.emit.event(t[0], t[1], ts, None, t[2]))

    def dump(self) -> dict[str, Any]:
        """Return the rule's state as JSON-ready data."""
        return {
            **self.machine.dump(),
            "lows": [list(p) for p in self._lows],
            "highs": [list(p) for p in self._highs],
        }

    def load(self, state: dict[str, Any]) -> None:
        """Restore the state written by `dump`."""
        self.machine.load(state)
        self._lows = deque((int(t), float(v)) for t, v in state["lows"])
        self._highs = deque((int(t), float(v)) for t, v in state["highs"])
