"""The alert state machine of one rule on one device: values at event times in, transitions out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from gateway.alerts import AlertState

# Below any event time, so the first reading of a rule is always in order.
NEVER: Final = -(2**62)

# A transition: the new state, its severity and the limit of the level it concerns.
Transition = tuple[AlertState, int, float]


class LevelMachine:
    """inactive → pending → firing → resolved over severity levels, with `for` and `clear_for` holds.

    A level is (severity, limit, above). A level is *met* at a reading when the value is strictly
    beyond its limit; it is *held* when every reading since the first one that met it did too, for at
    least `for_ms` of event time. Escalation to a higher held level is immediate; de-escalation and
    resolving drop a level only once readings have not met it for `clear_ms` of event time. Holds
    complete at the first reading at or after start + hold, or through `advance` (the engine's tick):
    the last value is taken to hold until the next reading, as a sensor reporting only on change
    means it, so a hold also completes when the event time it covered plus the clock time since the
    first tick after the last reading reaches the hold. Only differences of event times and of clock
    times are used, so a device clock that is off by minutes neither fires nor clears early.
    """

    __slots__ = (
        "_levels",
        "clear_ms",
        "for_ms",
        "idle",
        "last_ts",
        "late",
        "limit",
        "pending",
        "quiet_high",
        "quiet_low",
        "seen_at",
        "severity",
        "since",
        "stale",
        "unmet",
    )

    def __init__(self, levels: Sequence[tuple[int, float, bool]], for_ms: int, clear_ms: int) -> None:
        # Highest severity first, so the first met level is the instant level.
        self._levels: Final = tuple(sorted(levels, key=lambda lv: -lv[0]))
        self.for_ms: Final = for_ms
        # Values in [quiet_low, quiet_high] meet no level: an idle machine skips the level loop for them.
        self.quiet_low: Final = max((lv[1] for lv in levels if not lv[2]), default=-float("inf"))
        self.quiet_high: Final = min((lv[1] for lv in levels if lv[2]), default=float("inf"))
        self.clear_ms: Final = clear_ms
        self.since: list[int | None] = [None] * len(self._levels)
        self.severity = 0
        self.limit = 0.0
        self.pending = False
        # Per level, the event time since which readings no longer meet it (None while they do).
        self.unmet: list[int | None] = [None] * len(self._levels)
        self.stale = False
        self.last_ts = NEVER
        self.late = 0
        # Not firing, not pending, no hold running: a quiet value changes nothing.
        self.idle = True
        # Clock time of the first tick after the last reading (None until a tick has seen it).
        self.seen_at: int | None = None

    def step(self, ts: int, value: float) -> Transition | None:
        """Advance to event time `ts` with `value`; return the transition it causes, if any."""
        if ts < self.last_ts:
            # Replayed data older than what this rule already judged cannot rewrite its history.
            self.late += 1
            return None
        self.last_ts = ts
        self.seen_at = None
        if self.idle and self.quiet_low <= value <= self.quiet_high:
            return None
        since = self.since
        unmet = self.unmet
        for_ms = self.for_ms
        instant = target = 0
        instant_limit = target_limit = 0.0
        for i, (sev, limit, above) in enumerate(self._levels):
            if (value > limit) if above else (value < limit):
                unmet[i] = None
                start = since[i]
                if start is None:
                    since[i] = start = ts
                if not instant:
                    instant, instant_limit = sev, limit
                if not target and ts - start >= for_ms:
                    target, target_limit = sev, limit
            else:
                since[i] = None
                if unmet[i] is None:
                    unmet[i] = ts
        current = self.severity
        if target > current:
            self.severity, self.limit = target, target_limit
            self.pending = self.stale = self.idle = False
            return (AlertState.FIRING, target, target_limit)
        if current:
            if instant >= current:
                return self._fresh()
            return self._clear(ts, current)
        if instant:
            self.idle = False
            if not self.pending:
                self.pending = True
                return (AlertState.PENDING, instant, instant_limit)
        else:
            self.pending = False
            self.idle = True
        return None

    def advance(self, now_ms: int) -> tuple[Transition, int] | None:
        """Let the last value hold until clock time `now_ms`; return a completed hold's transition and event time."""
        if self.idle or self.stale:
            return None
        seen_at = self.seen_at
        if seen_at is None:
            # The first tick after a reading: the clock starts here, whatever the device's clock says.
            self.seen_at = now_ms
            return None
        if now_ms <= seen_at:
            return None
        at = self.last_ts + (now_ms - seen_at)
        since = self.since
        for_ms = self.for_ms
        target = instant = 0
        target_limit = 0.0
        for i, (sev, limit, _) in enumerate(self._levels):
            start = since[i]
            if start is None:
                continue
            instant = instant or sev
            if at - start >= for_ms:
                target, target_limit = sev, limit
                break
        current = self.severity
        transition: Transition | None = None
        if target > current:
            self.severity, self.limit = target, target_limit
            self.pending = False
            transition = (AlertState.FIRING, target, target_limit)
        elif current and instant < current:
            transition = self._clear(at, current)
        if transition is None:
            return None
        # Events after this one must not carry an older event time.
        self.last_ts, self.seen_at = at, now_ms
        return transition, at

    def _clear(self, ts: int, current: int) -> Transition | None:
        """Fall back to the highest level at or below the firing one that is not clear for `clear_ms`."""
        clear_ms = self.clear_ms
        unmet = self.unmet
        keep, keep_limit = 0, 0.0
        for i, (sev, limit, _) in enumerate(self._levels):
            if sev <= current:
                start = unmet[i]
                if start is None or ts - start < clear_ms:
                    keep, keep_limit = sev, limit
                    break
        if keep >= current:
            return self._fresh()
        self.stale = False
        if keep:
            self.severity, self.limit = keep, keep_limit
            return (AlertState.FIRING, keep, keep_limit)
        # Nothing at or below the firing level is met any more, so no hold is running.
        self.severity = 0
        self.idle = True
        return (AlertState.RESOLVED, current, self.limit)

    def _fresh(self) -> Transition | None:
        """Re-announce a firing alert whose data had gone stale and has just come back."""
        if self.stale:
            self.stale = False
            return (AlertState.FIRING, self.severity, self.limit)
        return None

    def go_stale(self, ts: int) -> Transition | None:
        """Mark the data behind this rule stale at `ts`: break holds, and say so if it is firing."""
        self.since = [None] * len(self._levels)
        self.unmet = [None] * len(self._levels)
        self.pending = False
        self.idle = not self.severity
        self.last_ts = max(self.last_ts, ts)
        if self.severity and not self.stale:
            self.stale = True
            return (AlertState.STALE, self.severity, self.limit)
        return None

    def dump(self) -> dict[str, Any]:
        """Return the machine's state as JSON-ready data."""
        return {
            "since": list(self.since),
            "severity": self.severity,
            "limit": self.limit,
            "pending": self.pending,
            "unmet": list(self.unmet),
            "stale": self.stale,
            "last_ts": self.last_ts,
            "seen_at": self.seen_at,
        }

    def load(self, state: dict[str, Any]) -> None:
        """Restore the state written by `dump`."""
        since = [None if s is None else int(s) for s in state["since"]]
        unmet = [None if s is None else int(s) for s in state["unmet"]]
        if len(since) != len(self._levels) or len(unmet) != len(self._levels):
            raise ValueError("the snapshot has another number of levels")
        self.since, self.unmet = since, unmet
        self.severity = int(state["severity"])
        self.limit = float(state["limit"])
        self.pending = bool(state["pending"])
        self.stale = bool(state["stale"])
        self.last_ts = int(state["last_ts"])
        seen_at = state.get("seen_at")  # absent in snapshots written before holds ran on the clock
        self.seen_at = None if seen_at is None else int(seen_at)
        self.idle = not self.severity and not self.pending and all(s is None for s in since)
