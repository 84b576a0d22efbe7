"""No-data rules: event times of good readings and the clock passed to tick in, silence alerts out."""

from __future__ import annotations

from typing import Any

from device_profiles.schema import NoDataRule
from edge_agent.rules.emit import Emitter
from edge_agent.rules.threshold import ms
from gateway.alerts import AlertEvent, AlertState


class NoDataEval:
    """One no-data rule on one device (all its quantities, or one).

    Fires at event time `last_seen + after`: from `tick(now)` when the silence is live, or from the
    next reading when replayed data shows a gap (then FIRING and RESOLVED come together). Resolves
    at the first good reading stamped at or after the firing instant; older, replayed readings only
    move `last_seen` (they are counted as late), so the alert's own events stay in time order.
    """

    __slots__ = ("_after", "emit", "fired_ts", "firing", "last_seen", "late", "severity")

    def __init__(self, rule: NoDataRule, emit: Emitter) -> None:
        self._after = ms(rule.after)
        self.severity = rule.severity
        self.emit = emit
        self.last_seen: int | None = None
        self.firing = False
        self.fired_ts = 0
        self.late = 0

    def seen(self, ts: int, out: list[AlertEvent]) -> None:
        """Note a good reading covered by the rule at event time `ts`."""
        last = self.last_seen
        if self.firing:
            if ts >= self.fired_ts:
                self.firing = False
                out.append(self.emit.event(AlertState.RESOLVED, self.severity, ts, None, None))
            else:
                self.late += 1
        elif last is not None and ts - last >= self._after:
            fired = last + self._after
            out.append(self.emit.event(AlertState.FIRING, self.severity, fired, None, None))
            out.append(self.emit.event(AlertState.RESOLVED, self.severity, ts, None, None))
        if last is None or ts > last:
            self.last_seen = ts

    def tick(self, now_ms: int) -> AlertEvent | None:
        """Fire if nothing covered arrived for `after` before `now_ms`; return the event."""
        last = self.last_seen
        if last is None:
            # Never heard from: the silence counts from the first tick that sees the device.
            self.last_seen = now_ms
            return None
        if self.firing or now_ms - last < self._after:
            return None
        self.firing = True
        self.fired_ts = last + self._after
        return self.emit.event(AlertState.FIRING, self.severity, self.fired_ts, None, None)

    def dump(self) -> dict[str, Any]:
        """Return the rule's state as JSON-ready data."""
        return {"last_seen": self.last_seen, "firing": self.firing, "fired_ts": self.fired_ts}

    def load(self, state: dict[str, Any]) -> None:
        """Restore the state written by `dump`."""
        last = state["last_seen"]
        self.last_seen = None if last is None else int(last)
        self.firing = bool(state["firing"])
        self.fired_ts = int(state["fired_ts"])
