"""The edge rule engine: readings and ticks in, alert events out, on event time, with snapshots."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from typing import Any, Final, Protocol

from device_profiles.schema import GeofenceRule, NoDataRule, RateRule, ThresholdRule
from edge_agent.rules.emit import Emitter
from edge_agent.rules.errors import RulesError, SnapshotError
from edge_agent.rules.geofence import GeofenceEval
from edge_agent.rules.levels import NEVER, LevelMachine
from edge_agent.rules.nodata import NoDataEval
from edge_agent.rules.rate import RateEval
from edge_agent.rules.threshold import ThresholdEval
from gateway.alerts import AlertEvent, Location
from gateway.readings import Quality, Reading

SNAPSHOT_VERSION: Final = 1

Rule = ThresholdRule | RateRule | NoDataRule | GeofenceRule

_GOOD: Final = Quality.GOOD
_POSITION: Final = frozenset({"latitude", "longitude"})


class _Judged(Protocol):
    """A rule evaluator that keeps an alert state machine."""

    machine: LevelMachine

    def go_stale(self, ts: int, out: list[AlertEvent]) -> None: ...
    def dump(self) -> dict[str, Any]: ...
    def load(self, state: dict[str, Any]) -> None: ...


def signature(rule: Rule) -> str:
    """Return a short digest of a rule's definition, so a snapshot never feeds a changed rule."""
    return hashlib.blake2b(rule.model_dump_json().encode(), digest_size=8).hexdigest()


class _Device:
    """One registered device: its evaluators indexed for the hot path, and a half-paired position."""

    __slots__ = (
        "by_quantity",
        "geofences",
        "judged",
        "lat",
        "lat_ts",
        "lon",
        "lon_ts",
        "nodata",
        "nodata_all",
        "nodata_by_quantity",
        "signatures",
        "thresholds",
    )

    def __init__(self, gateway: str, device: str, rules: Sequence[Rule], location: Location | None) -> None:
        names = [r.name for r in rules]
        if len(set(names)) != len(names):
            raise RulesError(f"device {device!r}: rule names must be unique, got {names}")
        by_quantity: dict[str, list[ThresholdEval | RateEval]] = {}
        nodata_by_quantity: dict[str, list[NoDataEval]] = {}
        self.judged: dict[str, tuple[_Judged, str | None]] = {}
        self.nodata: dict[str, tuple[NoDataEval, str | None]] = {}
        self.nodata_all: tuple[NoDataEval, ...] = ()
        geofences: list[GeofenceEval] = []
        for rule in rules:
            quantity = None if isinstance(rule, GeofenceRule) else rule.quantity
            emit = Emitter(gateway, device, rule.name, quantity, location)
            if isinstance(rule, ThresholdRule | RateRule):
                ev = ThresholdEval(rule, emit) if isinstance(rule, ThresholdRule) else RateEval(rule, emit)
                by_quantity.setdefault(rule.quantity, []).append(ev)
                self.judged[rule.name] = (ev, rule.quantity)
            elif isinstance(rule, GeofenceRule):
                fence = GeofenceEval(rule, emit)
                geofences.append(fence)
                self.judged[rule.name] = (fence, None)
            else:
                nd = NoDataEval(rule, emit)
                self.nodata[rule.name] = (nd, rule.quantity)
                if rule.quantity is None:
                    self.nodata_all += (nd,)
                else:
                    nodata_by_quantity.setdefault(rule.quantity, []).append(nd)
        self.by_quantity = {q: tuple(evs) for q, evs in by_quantity.items()}
        self.nodata_by_quantity = {q: tuple(nds) for q, nds in nodata_by_quantity.items()}
        self.geofences = tuple(geofences)
        self.thresholds = tuple(ev for evs in self.by_quantity.values() for ev in evs if isinstance(ev, ThresholdEval))
        self.signatures = {r.name: signature(r) for r in rules}
        self.lat_ts = self.lon_ts = NEVER
        self.lat = self.lon = 0.0

    def covered(self, quantity: str | None) -> list[_Judged]:
        """Return the evaluators whose data a no-data rule on `quantity` (None: all) watches."""
        return [
            ev
            for ev, q in self.judged.values()
            if quantity is None or q == quantity or (q is None and quantity in _POSITION)
        ]

    def dump(self) -> dict[str, Any]:
        """Return the device's rule states as JSON-ready data, keyed by rule name."""
        rules = {name: {"sig": self.signatures[name], "state": ev.dump()} for name, (ev, _) in self.judged.items()}
        for name, (nd, _) in self.nodata.items():
            rules[name] = {"sig": self.signatures[name], "state": nd.dump()}
        return {"rules": rules, "position": [self.lat_ts, self.lat, self.lon_ts, self.lon]}

    def load(self, state: dict[str, Any], counts: Counter[str]) -> None:
        """Restore rule states written by `dump`; rules whose definition changed start afresh."""
        for name, saved in state["rules"].items():
            target = self.judged.get(name) or self.nodata.get(name)
            if target is None or saved["sig"] != self.signatures[name]:
                counts["snapshot_rule_dropped"] += 1
                continue
            target[0].load(saved["state"])
        lat_ts, lat, lon_ts, lon = state["position"]
        self.lat_ts, self.lat, self.lon_ts, self.lon = int(lat_ts), float(lat), int(lon_ts), float(lon)

    def late(self) -> int:
        """Return how many out-of-order readings this device's rules ignored."""
        return sum(ev.machine.late for ev, _ in self.judged.values()) + sum(nd.late for nd, _ in self.nodata.values())


class RuleEngine:
    """Every rule of every device of one gateway, judged on event time.

    Sans-I/O: the caller passes readings (`observe`) and the current time (`tick`); nothing here
    reads a clock. Only GOOD readings are judged: a suspect reading (stale, clock or instrument
    flag) neither triggers a rule nor keeps a device alive, a bad one never does; both are counted.
    `tick` drives no-data rules, and lets threshold holds (`for`, `clear_for`) complete when the
    last value has held long enough without a newer reading (a sensor reporting only on change: a
    cover that tilts reports once); otherwise holds complete at a reading that confirms the
    condition at an event time at or after the hold's end. A reading older than the
    last event time a rule judged is ignored by that rule and counted as `out_of_order`. When a
    no-data rule fires from `tick`, each firing alert on the data it watches (all of the device,
    or its quantity) turns STALE and its holds are broken; the next good reading makes it FIRING
    again, or RESOLVED if that reading clears it.
    """

    def __init__(self, gateway: str) -> None:
        self.gateway: Final = gateway
        self._devices: dict[str, _Device] = {}
        self._counts: Counter[str] = Counter()
        self._late_removed = 0

    def add_device(self, device: str, rules: Sequence[Rule], location: Location | None = None) -> None:
        """Register (or re-register) `device` with its merged rules; unchanged rules keep their state."""
        fresh = _Device(self.gateway, device, rules, location)
        old = self._devices.get(device)
        if old is not None:
            fresh.load(old.dump(), Counter())
            self._late_removed += old.late()
        self._devices[device] = fresh

    def remove_device(self, device: str) -> None:
        """Forget `device` and its rule states."""
        old = self._devices.pop(device, None)
        if old is not None:
            self._late_removed += old.late()

    def observe(self, reading: Reading) -> list[AlertEvent]:
        """Judge one reading at its event time; return the alert events it causes."""
        dev = self._devices.get(reading.device)
        if dev is None:
            self._counts["unknown_device"] += 1
            return []
        quality = reading.quality
        value = reading.value
        if quality != _GOOD:
            self._counts[f"skipped_{quality}"] += 1
            return []
        if value != value:
            self._counts["skipped_nan"] += 1
            return []
        out: list[AlertEvent] = []
        ts = reading.ts_ms
        quantity = reading.quantity
        for nd in dev.nodata_all:
            nd.seen(ts, out)
        if dev.nodata_by_quantity:
            nds = dev.nodata_by_quantity.get(quantity)
            if nds:
                for nd in nds:
                    nd.seen(ts, out)
        evs = dev.by_quantity.get(quantity)
        if evs:
            for ev in evs:
                ev.observe(ts, value, out)
        if dev.geofences and quantity in _POSITION:
            self._position(dev, quantity, ts, value, out)
        return out

    def _position(self, dev: _Device, quantity: str, ts: int, value: float, out: list[AlertEvent]) -> None:
        """Pair latitude and longitude readings by event time; judge each complete position."""
        # A half still waiting when another of its kind arrives will never be paired.
        if quantity == "latitude":
            if dev.lat_ts != NEVER:
                self._counts["unpaired_position"] += 1
            if dev.lon_ts != ts:
                dev.lat_ts, dev.lat = ts, value
                return
            lat, lon = value, dev.lon
        else:
            if dev.lon_ts != NEVER:
                self._counts["unpaired_position"] += 1
            if dev.lat_ts != ts:
                dev.lon_ts, dev.lon = ts, value
                return
            lat, lon = dev.lat, value
        dev.lat_ts = dev.lon_ts = NEVER
        for fence in dev.geofences:
            fence.observe_point(ts, lat, lon, out)

    def tick(self, now_ms: int) -> list[AlertEvent]:
        """Advance no-data rules and held thresholds to clock time `now_ms`; stale data breaks holds."""
        out: list[AlertEvent] = []
        for dev in self._devices.values():
            # No-data first: data that went stale breaks the holds its readings were keeping.
            for nd, quantity in dev.nodata.values():
                event = nd.tick(now_ms)
                if event is None:
                    continue
                out.append(event)
                for judged in dev.covered(quantity):
                    judged.go_stale(event.ts_ms, out)
            for ev in dev.thresholds:
                if not ev.machine.idle:
                    ev.advance(now_ms, out)
        return out

    def counters(self) -> dict[str, int]:
        """Return counts of what was skipped: unknown devices, quality, out-of-order readings, ..."""
        late = self._late_removed + sum(dev.late() for dev in self._devices.values())
        return {**self._counts, "out_of_order": late}

    def snapshot(self) -> dict[str, Any]:
        """Return every rule state as versioned, JSON-serialisable data."""
        return {
            "version": SNAPSHOT_VERSION,
            "gateway": self.gateway,
            "devices": {name: dev.dump() for name, dev in self._devices.items()},
        }

    def load_snapshot(self, snapshot: dict[str, Any]) -> None:
        """Restore rule states from `snapshot` into the devices registered so far."""
        if not isinstance(snapshot, dict) or snapshot.get("version") != SNAPSHOT_VERSION:
            version = snapshot.get("version") if isinstance(snapshot, dict) else None
            raise SnapshotError(f"unsupported rule snapshot version {version!r}, expected {SNAPSHOT_VERSION}")
        if snapshot.get("gateway") != self.gateway:
            raise SnapshotError(f"snapshot is of gateway {snapshot.get('gateway')!r}, not {self.gateway!r}")
        try:
            for name, state in snapshot["devices"].items():
                dev = self._devices.get(name)
                if dev is None:
                    self._counts["snapshot_device_dropped"] += 1
                    continue
                dev.load(state, self._counts)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise SnapshotError(f"malformed rule snapshot: {exc!r}") from exc
