"""Alert → case: alert batches and liveness events in; cases opened, joined, muted or recovered out.

Learning from Alertmanager, every alert is kept (`incident_alerts`) with its disposition, and then:

- dedup: an alert key (part or device, category, rule family) belongs to at most one open case; a firing
  after that case finished opens a new case linked to it as a recurrence;
- grouping: a new key joins an open case of its group (the same part and category, or the same grid and
  category for area phenomena such as air quality) whose last alert is within the grouping window;
- inhibition: while a gateway is offline its devices' stale and device-health alerts are muted into the
  gateway's one maintenance case — an outage is one case, not a storm; a declared emergency absorbs
  matching governance alerts into its own case;
- silences: a matching firing or stale alert is kept as `silenced:<id>` and opens no case;
- recovery: a resolved alert is evidence on its case; when every key of the case is resolved, the case
  is `recovered` (sensor_sufficient cases are then checked by the scheduler; maintenance cases finish at
  once). A stale alert is never recovery: it marks the key stale and opens device-health maintenance.

Time is the alerts' and events' own event time; nothing here reads the clock.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import partial
from typing import Final

from cloud.fleet import EventKind, LivenessEvent
from cloud.gcpause import without_gc
from cloud.grid.errors import GridError
from cloud.incidents.autochain import AutoChain
from cloud.incidents.loop import Context, apply_action
from cloud.incidents.model import (
    Action,
    ActionKind,
    Assignee,
    AuditEntry,
    CancelReason,
    Case,
    CaseKind,
    CaseState,
    Recovery,
    Source,
    Urgency,
    audit_entry,
    evolve,
)
from cloud.incidents.ports import Locator, Policy, Router, territory_codes
from cloud.incidents.recovery import RESOLVED, arm, recovered
from cloud.incidents.roles import Actor
from cloud.incidents.silences import Emergency, Facts, Silence, Silences
from cloud.incidents.store import CaseStore, StoredAlert, stored_alert
from gateway.alerts import AlertEvent, AlertState, Location, fingerprint

Categorize = Callable[[AlertEvent], tuple[str, Urgency] | None]
DEVICE_HEALTH = "device_health"
_URGENCY = (Urgency.NORMAL, Urgency.URGENT, Urgency.CRITICAL)
_SENSOR: Final = Source.SENSOR.value
_REPORTED: Final = CaseState.REPORTED.value
# Enum members' values by member: `.value` goes through enum's descriptor (~0.5 µs), a few times per alert.
_VALUE: Final[dict[StrEnum, str]] = {m: m.value for e in (AlertState, CaseKind, Urgency, Recovery) for m in e}


def urgency_of(severity: int) -> Urgency:
    """Map a rule severity (1..4) to 一般 / 紧急 / 非常紧急."""
    return _URGENCY[max(0, min(severity, 3) - 1)]


class RuleCategories:
    """The small rule → category mapping (fed from the device profiles' `category`), severity → urgency."""

    def __init__(self, categories: Mapping[str, str], health_rules: frozenset[str] = frozenset()) -> None:
        self.categories = dict(categories)
        self.health_rules = health_rules

    def __call__(self, alert: AlertEvent) -> tuple[str, Urgency] | None:
        """Return (category, urgency) of an alert, or None for a rule with no category."""
        if alert.rule in self.health_rules:
            return DEVICE_HEALTH, urgency_of(alert.severity)
        category = self.categories.get(alert.rule)
        return None if category is None else (category, urgency_of(alert.severity))


def rule_family(rule: str) -> str:
    """Return a rule's family: its name up to a `:` level suffix (`gas:l2` and `gas:l1` are one family)."""
    return rule.split(":", 1)[0]


@dataclass(frozen=True, slots=True)
class IntakeSettings:
    """Grouping window, area categories, auto dispatch and the maintenance queue."""

    group_window_ms: int = 600_000
    area_categories: frozenset[str] = frozenset({"air_quality", "noise", "dust"})
    auto_dispatch: bool = True
    maintenance_queue: str = "YW"  # the routing table's maintenance department
    gateway_category: str = DEVICE_HEALTH
    device_category: str = DEVICE_HEALTH


DEFAULT_SETTINGS: Final = IntakeSettings()
# A call writes its new cases and kept alerts in parts of about this size: with background copies the
# database stores one part while the next is decided (parts of a few hundred keep statements few).
FLUSH_CASES: Final = 500
FLUSH_ALERTS: Final = 1000
# About a second of intake work at most per transaction (SQLite: the API's writes wait for it meanwhile).
MAX_TRANSACTION_ALERTS: Final = 5000
YIELD_EVERY: Final = 16  # alerts between turns offered to the background copies (a few hundred µs)


class _Reads:
    """The store reads and writes of one call (one transaction), memoized and batched.

    Every case, key and audit write of the intake goes through here and updates the memo, so a memoized
    case, key, key status or group answer is what the database would answer after the noted writes; those
    are sent at `write` (end of call, or before a raw read that needs them). `prefetch` fills the memo for
    a whole envelope with a few IN (...) queries instead of a few queries per alert.
    """

    def __init__(self, store: CaseStore) -> None:
        self.store = store
        self.cases: dict[int, Case] = {}
        self.keys: dict[str, int | None] = {}
        self.last: dict[str, int | None] = {}
        self.groups: dict[str, set[int]] = {}  # group key → memoized cases of it
        self.group_since: int | None = None  # groups in `groups` hold every open case from then on
        self.statuses: dict[int, dict[str, str]] = {}  # case id → every key bound to it, with its status
        # Writes wait here until the end of the call (or a raw read that needs them): fewer round trips.
        self.updates: dict[int, tuple[Case, Case]] = {}  # id → (latest case, first read)
        self.binds: dict[str, tuple[str, int, str, int]] = {}
        self.audits: list[AuditEntry] = []
        self.fresh: set[int] = set()  # cases whose whole trail is in `audits`

    def prefetch(self, keys: set[str], groups: set[str], since: int) -> None:
        """Read the envelope's key bindings, their cases and key statuses, its groups' open cases, its recurrences."""
        bound = self.store.key_cases(keys)
        self.keys.update((k, bound.get(k)) for k in keys)
        last = self.store.last_cases_of(keys)
        self.last.update((k, last.get(k)) for k in keys)
        self.groups.update((g, set()) for g in groups)
        for case in self.store.open_in_groups(groups, since):
            self._put(case)
        self.group_since = since
        for case in self.store.get_many(set(bound.values()) - self.cases.keys()).values():
            self._put(case)
        ids = set(bound.values())
        self.statuses.update((i, {}) for i in ids)
        self.statuses.update(self.store.key_statuses_of(ids))

    def _put(self, case: Case) -> None:
        self.cases[case.id] = case
        if case.group_key is not None and case.group_key in self.groups:
            self.groups[case.group_key].add(case.id)

    def get(self, case_id: int) -> Case | None:
        """Return a case by id."""
        if case_id not in self.cases:
            case = self.store.get(case_id)
            if case is None:
                return None
            self._put(case)
        return self.cases[case_id]

    def key_case(self, key: str) -> int | None:
        """Return the open case an alert key belongs to."""
        if key not in self.keys:
            self.keys[key] = self.store.key_case(key)
        return self.keys[key]

    def last_case_of(self, key: str) -> int | None:
        """Return the newest case first opened by `key`."""
        if key not in self.last:
            self.last[key] = self.store.last_case_of(key)
        return self.last[key]

    def open_in_group(self, group: str, since: int) -> Case | None:
        """Return the newest open case of a group whose last alert is at or after `since`."""
        if group not in self.groups or self.group_since is None or since < self.group_since:
            self.write()
            found = self.store.open_in_group(group, since)
            return None if found is None else self.get(found.id)
        best: Case | None = None
        for case_id in self.groups[group]:
            case = self.cases[case_id]
            if (
                case.open
                and case.last_alert_ms is not None
                and case.last_alert_ms >= since
                and (best is None or case.id > best.id)
            ):
                best = case
        return best

    def update(self, case: Case, read: Case) -> None:
        """Note a case write; it reaches the database at the next `write` (checked against the first read)."""
        first = self.updates.get(case.id, (case, read))[1]
        self.updates[case.id] = (case, first)
        self._put(case)

    def bind_key(self, key: str, case_id: int, status: str, now: int) -> None:
        """Note a key binding; it reaches the database at the next `write`."""
        self.binds[key] = (key, case_id, status, now)
        self._bound(key, case_id, status)

    def _bound(self, key: str, case_id: int, status: str) -> None:
        before = self.keys.get(key)
        if before is not None and before != case_id:
            self.statuses.get(before, {}).pop(key, None)
        elif before is None and key not in self.keys:  # unknown owner: forget every memo that may hold it
            for held in [i for i, statuses in self.statuses.items() if key in statuses and i != case_id]:
                del self.statuses[held]
        self.keys[key] = case_id
        if case_id in self.statuses:
            self.statuses[case_id][key] = status

    def audit(self, entries: Sequence[AuditEntry], *, fresh: bool = False) -> None:
        """Note audit entries (in order); `fresh`: their cases are new in this call (no trail yet)."""
        self.audits.extend(entries)
        if fresh:
            self.fresh.update(e.case_id for e in entries)

    def write(self) -> None:
        """Write the noted case updates, key bindings and audit entries, one statement each."""
        if self.updates:
            self.store.update_many(list(self.updates.values()))
            self.updates.clear()
        if self.binds:
            self.store.bind_keys(list(self.binds.values()))
            self.binds.clear()
        if self.audits:
            self.store.append_audit(self.audits, fresh=self.fresh)
            self.audits = []
            self.fresh = set()

    def key_statuses(self, case_id: int) -> dict[str, str]:
        """Return a case's key statuses."""
        if case_id not in self.statuses:
            self.write()
            self.statuses[case_id] = self.store.key_statuses(case_id)
        return self.statuses[case_id]

    def release_keys(self, case_id: int) -> None:
        """Unbind a finished case's keys."""
        self.write()
        self.store.release_keys(case_id)
        for key, bound in self.keys.items():
            if bound == case_id:
                self.keys[key] = None
        self.statuses[case_id] = {}

    def inserted(self, cases: Sequence[Case], keys: Mapping[str, int]) -> None:
        """Note cases and key bindings (firing) just written."""
        for case in cases:
            self._put(case)
            self.statuses[case.id] = {}
            if case.dedup_key is not None and case.dedup_key in self.last:
                self.last[case.dedup_key] = max(self.last[case.dedup_key] or 0, case.id)
        for key, case_id in keys.items():
            self._bound(key, case_id, "firing")


@dataclass(slots=True)
class _Batch:
    """What one call reads once and writes once."""

    silences: list[Silence]
    emergencies: list[Emergency]
    reads: _Reads
    rows: list[StoredAlert] = field(default_factory=list)
    seen: set[tuple[str, str, int]] = field(default_factory=set)
    # New cases are written once per batch; until then lookups see them here.
    cases: dict[int, Case] = field(default_factory=dict)
    keys: dict[str, tuple[int, int]] = field(default_factory=dict)  # key → (case id, ts)
    groups: dict[str, int] = field(default_factory=dict)
    audits: list[AuditEntry] = field(default_factory=list)


class CaseIntake:
    """The ingest AlertSink and liveness sink of the incident layer; one transaction per call."""

    def __init__(
        self,
        store: CaseStore,
        ctx: Context,
        router: Router,
        categorize: Categorize,
        *,
        locator: Locator | None = None,
        settings: IntakeSettings = DEFAULT_SETTINGS,
    ) -> None:
        self.store = store
        self.ctx = ctx
        self.router = router
        self.categorize = categorize
        self.locator = locator
        self.settings = settings
        self.silences = Silences(store.db)
        self.counts: Counter[str] = Counter()
        self.chain = AutoChain(ctx)
        self._places: dict[str, tuple[str | None, str | None, str | None] | None] = {}
        self._steps: dict[tuple[CaseKind, str, str | None], tuple[tuple[tuple[Action, Actor], ...], bool]] = {}

    # Entry points.

    def handle_batch(self, envelopes: Sequence[tuple[str, Sequence[AlertEvent]]]) -> None:
        """Take the alerts of envelopes in order (idempotent on fingerprint, state and time), in one
        transaction: as handing them one envelope at a time would.

        Ingest hands over every alerts envelope of one of its batches at once (a group commit): under load
        its batches grow, and a call's fixed costs (round trips, statements, the prefetch) are shared by
        more alerts. Each alert's outcome depends only on the alerts before it, which the call's memo sees.
        A call of more than MAX_TRANSACTION_ALERTS alerts is split between envelopes into several
        transactions, so a backlog never holds the database's write lock for long.
        """
        part: list[AlertEvent] = []
        for _, alerts in envelopes:
            if part and len(part) + len(alerts) > MAX_TRANSACTION_ALERTS:
                without_gc(partial(self._handle, part))
                part = []
            part.extend(alerts)
        if part:
            # A call's cases, rows and audit entries form no cycles: the collector only rescanned them.
            without_gc(partial(self._handle, part))

    def _handle(self, alerts: Sequence[AlertEvent]) -> None:
        times = [a.ts_ms for a in alerts]
        # Background copies: the database stores each flushed part while the next alerts are decided.
        with self.store.transaction(), self.store.db.background_copies():
            batch = self._batch(min(times), max(times))
            idents = [(a.fingerprint, _VALUE[a.state], a.ts_ms) for a in alerts]
            seen = self.store.seen_alerts(idents)
            work = []
            for alert, ident in zip(alerts, idents, strict=True):
                if ident in batch.seen or ident in seen:
                    self.counts["replayed"] += 1
                    continue
                batch.seen.add(ident)
                self.counts[ident[1]] += 1
                work.append((alert, self._grid(alert.location), self.categorize(alert)))
            self._prefetch(work, batch)
            for n, (alert, grid, cat) in enumerate(work, start=1):
                self._alert(alert, grid, cat, batch)
                if n % YIELD_EVERY == 0:
                    self.store.db.let_copies_run()
                if len(batch.cases) >= FLUSH_CASES or len(batch.rows) >= FLUSH_ALERTS:
                    self._flush(batch)
                    self.store.add_alerts(batch.rows)
                    batch.rows = []
            self._flush(batch)
            batch.reads.write()
            self.store.add_alerts(batch.rows)

    def liveness_events(self, events: Sequence[LivenessEvent]) -> None:
        """Take the liveness transitions of one fleet tick."""
        if events:
            without_gc(partial(self._liveness_events, events))

    def _liveness_events(self, events: Sequence[LivenessEvent]) -> None:
        times = [e.ts_ms for e in events]
        with self.store.transaction():
            batch = self._batch(min(times), max(times))
            for event in events:
                self._flush(batch)
                self._liveness(event, batch)
            self._flush(batch)
            batch.reads.write()
            self.store.add_alerts(batch.rows)

    def _batch(self, start: int, end: int) -> _Batch:
        return _Batch(
            self.silences.active_window(start, end), self.silences.emergencies(start, end), _Reads(self.store)
        )

    def _prefetch(
        self, work: Sequence[tuple[AlertEvent, str | None, tuple[str, Urgency] | None]], batch: _Batch
    ) -> None:
        """Read every key, case and group the envelope may touch in a few queries instead of a few per alert."""
        if not work:
            return
        keys: set[str] = set()
        groups: set[str] = set()
        for alert, grid, cat in work:
            # The keys and groups `_firing`, `_resolved` and `_stale` look up (any other is read when asked).
            state = alert.state
            if state == AlertState.PENDING:
                continue
            health = cat is None or self._is_health(cat[0], self.ctx.policies.policy(*cat))
            if health or state == AlertState.STALE:
                keys.add(f"health:{alert.device}")
            if cat is not None and not health:
                keys.add(self._key(alert, cat[0]))
                if state == AlertState.FIRING:
                    groups.add(self._group(alert, cat[0], grid))
        batch.reads.prefetch(keys, groups, min(a.ts_ms for a, _, _ in work) - self.settings.group_window_ms)

    def _flush(self, batch: _Batch) -> None:
        """Write the batch's new cases, their audit and their keys."""
        if not batch.cases:
            return
        batch.reads.write()  # bindings in their order: the noted ones happened before these
        self.store.insert_many(batch.cases.values())
        batch.reads.audit(batch.audits, fresh=True)
        # A new case's keys had no open case (`_lookup`), so no binding: COPY them.
        self.store.bind_keys([(key, cid, "firing", ts) for key, (cid, ts) in batch.keys.items()], new=True)
        batch.reads.inserted(list(batch.cases.values()), {key: cid for key, (cid, _) in batch.keys.items()})
        batch.cases.clear()
        batch.keys.clear()
        batch.groups.clear()
        batch.audits.clear()

    def _lookup(self, key: str, batch: _Batch) -> Case | None:
        """Return the open case of an alert key (this batch's new cases first)."""
        pending = batch.keys.get(key)
        if pending is not None:
            return batch.cases[pending[0]]
        case_id = batch.reads.key_case(key)
        return batch.reads.get(case_id) if case_id is not None else None

    def _group_case(self, group: str, ts: int, batch: _Batch) -> Case | None:
        """Return the open case of a group whose last alert is within the grouping window."""
        since = ts - self.settings.group_window_ms
        pending = batch.groups.get(group)
        if pending is not None and (batch.cases[pending].last_alert_ms or 0) >= since:
            return batch.cases[pending]
        return batch.reads.open_in_group(group, since)

    # Alerts.

    def _alert(
        self, alert: AlertEvent, grid: str | None, categorized: tuple[str, Urgency] | None, batch: _Batch
    ) -> None:
        if alert.state == AlertState.PENDING:
            self._keep(batch, alert, grid, None, "pending")
        elif alert.state == AlertState.FIRING:
            self._firing(alert, grid, categorized, batch)
        elif alert.state == AlertState.RESOLVED:
            self._resolved(alert, grid, categorized, batch)
        else:
            self._stale(alert, grid, categorized, batch)

    def _firing(self, alert: AlertEvent, grid: str | None, cat: tuple[str, Urgency] | None, batch: _Batch) -> None:
        if cat is None:
            self.counts["uncategorized"] += 1
            self._keep(batch, alert, grid, None, "uncategorized")
            return
        category, urgency = cat
        policy = self.ctx.policies.policy(category, urgency)
        health = self._is_health(category, policy)
        # Only silences, emergencies and (for device health) outages can take an alert: most envelopes have none.
        if (batch.silences or batch.emergencies or health) and self._muted(
            alert, Facts(alert.gateway, alert.device, alert.rule, category, grid), grid, batch, health
        ):
            return
        if health:
            key = f"health:{alert.device}"
            group = key
        else:
            key = self._key(alert, category)
            group = self._group(alert, category, grid)
        case = self._lookup(key, batch)
        if case is None and not health:
            case = self._group_case(group, alert.ts_ms, batch)
        if case is not None:
            self._join(case, key, alert.ts_ms, urgency, batch)
            self._keep(batch, alert, grid, case.id, "case")
            self.counts["joined"] += 1
            return
        kind = CaseKind.MAINTENANCE if health else CaseKind.GOVERNANCE
        title = f"{alert.rule} on {alert.device}" + (f" ({alert.value:g})" if alert.value is not None else "")
        new = self._open(
            kind,
            category,
            urgency,
            policy,
            alert.ts_ms,
            title=title,
            key=key,
            group=group,
            grid=grid,
            location=alert.location,
            device=alert.device,
            gateway=alert.gateway,
            reporter=f"system:{alert.rule}",
            evidence=(alert.fingerprint,),
            batch=batch,
        )
        self._keep(batch, alert, grid, new.id, "case")

    def _resolved(self, alert: AlertEvent, grid: str | None, cat: tuple[str, Urgency] | None, batch: _Batch) -> None:
        self._flush(batch)
        keys = [f"health:{alert.device}"]
        if cat is not None:
            policy = self.ctx.policies.policy(*cat)
            keys = [f"health:{alert.device}"] if self._is_health(cat[0], policy) else [self._key(alert, cat[0])]
        for key in keys:
            case_id = batch.reads.key_case(key)
            if case_id is not None:
                self._recover(case_id, key, alert.ts_ms, f"{alert.fingerprint} resolved", batch)
                self._keep(batch, alert, grid, case_id, "recovery")
                return
        self._keep(batch, alert, grid, None, "resolved")

    def _stale(self, alert: AlertEvent, grid: str | None, cat: tuple[str, Urgency] | None, batch: _Batch) -> None:
        self._flush(batch)
        # The governance case keeps the fact that its sensor went quiet: never recovery.
        if cat is not None and not self._is_health(cat[0], self.ctx.policies.policy(*cat)):
            key = self._key(alert, cat[0])
            case_id = batch.reads.key_case(key)
            if case_id is not None:
                self._mark_stale(case_id, key, alert.ts_ms, f"{alert.fingerprint} stale", batch)
        facts = Facts(alert.gateway, alert.device, alert.rule, self.settings.device_category, grid)
        if self._muted(alert, facts, grid, batch, health=True):
            return
        self._health(
            f"health:{alert.device}",
            alert.ts_ms,
            batch,
            alert=alert,
            grid=grid,
            title=f"{alert.device}: no data ({alert.rule})",
        )

    def _muted(self, alert: AlertEvent, facts: Facts, grid: str | None, batch: _Batch, health: bool) -> bool:
        """Keep and report True when a silence, an outage or an emergency takes the alert."""
        for silence in batch.silences:
            if silence.active(alert.ts_ms) and silence.matchers.match(facts, self.ctx.district):
                self.counts["silenced"] += 1
                self._keep(batch, alert, grid, None, f"silenced:{silence.id}")
                return True
        if health:
            outage = self._outage(alert.gateway, alert.device)
            if outage is not None:
                self.counts["inhibited"] += 1
                self._keep(batch, alert, grid, outage, f"inhibited:{outage}")
                return True
            return False
        for emergency in batch.emergencies:
            if emergency.active(alert.ts_ms) and emergency.matchers.match(facts, self.ctx.district):
                self.counts["absorbed"] += 1
                self._bump(emergency.case_id, alert.ts_ms, batch)
                self._keep(batch, alert, grid, emergency.case_id, f"absorbed:{emergency.id}")
                return True
        return False

    def _outage(self, gateway: str, device: str) -> int | None:
        outage = self.store.outage(gateway)
        if outage is not None:
            return outage[0]
        return self.store.outage_of_device(device)

    # Liveness.

    def _liveness(self, event: LivenessEvent, batch: _Batch) -> None:
        self.counts[event.kind.value] += 1
        gw_key = f"health:gw:{event.gateway}"
        if event.kind == EventKind.GATEWAY_OFFLINE:
            row = self._event_row(event, "*", "gateway_offline", "firing")
            facts = Facts(event.gateway, "*", "gateway_offline", self.settings.gateway_category)
            silence = next(
                (s for s in batch.silences if s.active(event.ts_ms) and s.matchers.match(facts, self.ctx.district)),
                None,
            )
            if silence is not None:
                # Still an outage: its devices' alerts stay muted, but no case is opened.
                self.store.start_outage(event.gateway, event.ts_ms, 0, event.devices)
                batch.rows.append(replace(row, disposition=f"silenced:{silence.id}"))
                return
            n = len(event.devices)
            case_id = self._health(
                gw_key,
                event.ts_ms,
                batch,
                title=f"gateway {event.gateway} offline ({event.reason}): {n} devices unreachable",
                gateway=event.gateway,
                row=row,
            )
            self.store.start_outage(event.gateway, event.ts_ms, case_id, event.devices)
        elif event.kind == EventKind.GATEWAY_ONLINE:
            self.store.end_outage(event.gateway)
            row = self._event_row(event, "*", "gateway_offline", "resolved")
            back = batch.reads.key_case(gw_key)
            if back is not None:
                self._recover(back, gw_key, event.ts_ms, f"gateway {event.gateway} online", batch)
            batch.rows.append(replace(row, case_id=back, disposition="recovery" if back else "resolved"))
        elif event.kind == EventKind.DEVICE_STALE:
            device = event.device or "*"
            row = self._event_row(event, device, "device_stale", "firing")
            outage = self._outage(event.gateway, device)
            if outage is not None:
                self.counts["inhibited"] += 1
                batch.rows.append(replace(row, case_id=outage, disposition=f"inhibited:{outage}"))
                return
            facts = Facts(event.gateway, device, "device_stale", self.settings.device_category)
            silence = next(
                (s for s in batch.silences if s.active(event.ts_ms) and s.matchers.match(facts, self.ctx.district)),
                None,
            )
            if silence is not None:
                batch.rows.append(replace(row, disposition=f"silenced:{silence.id}"))
                return
            self._health(
                f"health:{device}",
                event.ts_ms,
                batch,
                title=f"device {device} stale",
                gateway=event.gateway,
                device=device,
                row=row,
            )
        else:
            device = event.device or "*"
            row = self._event_row(event, device, "device_stale", "resolved")
            key = f"health:{device}"
            fresh = batch.reads.key_case(key)
            if fresh is not None:
                self._recover(fresh, key, event.ts_ms, f"device {device} fresh", batch)
            batch.rows.append(replace(row, case_id=fresh, disposition="recovery" if fresh else "resolved"))

    @staticmethod
    def _event_row(event: LivenessEvent, device: str, rule: str, state: str) -> StoredAlert:
        return StoredAlert(
            fingerprint(event.gateway, device, rule),
            state,
            event.ts_ms,
            event.gateway,
            device,
            rule,
            1,
            None,
            None,
            None,
            None,
            None,
            None,
            "",
        )

    # Cases.

    def _health(
        self,
        key: str,
        ts: int,
        batch: _Batch,
        *,
        title: str,
        alert: AlertEvent | None = None,
        grid: str | None = None,
        gateway: str | None = None,
        device: str | None = None,
        row: StoredAlert | None = None,
    ) -> int:
        """Open or join the maintenance case of `key`; keep the alert or event row linked to it."""
        category = self.settings.device_category if not key.startswith("health:gw:") else self.settings.gateway_category
        case = self._lookup(key, batch)
        if case is not None:
            self._join(case, key, ts, Urgency.NORMAL, batch)
            new_id = case.id
        else:
            policy = self.ctx.policies.policy(category, Urgency.NORMAL)
            new_id = self._open(
                CaseKind.MAINTENANCE,
                category,
                Urgency.NORMAL,
                policy,
                ts,
                title=title,
                key=key,
                group=key,
                grid=grid,
                location=alert.location if alert else None,
                device=alert.device if alert else device,
                gateway=alert.gateway if alert else gateway,
                reporter="system:liveness" if alert is None else f"system:{alert.rule}",
                evidence=(alert.fingerprint,) if alert else (),
                batch=batch,
            ).id
        if alert is not None:
            self._keep(batch, alert, grid, new_id, "case")
        elif row is not None:
            batch.rows.append(replace(row, case_id=new_id, disposition="case"))
        return new_id

    def _open(
        self,
        kind: CaseKind,
        category: str,
        urgency: Urgency,
        policy: Policy,
        ts: int,
        *,
        title: str,
        key: str,
        group: str,
        grid: str | None,
        location: Location | None,
        device: str | None,
        gateway: str | None,
        reporter: str,
        evidence: tuple[str, ...],
        batch: _Batch,
    ) -> Case:
        """Open a sensor case, auto-dispatch it when configured, and bind its first key."""
        self.counts["opened"] += 1
        place = self._place(grid) if grid is not None else None
        area, office, district = place if place is not None else (None, None, self.ctx.district.code)
        case_id = self.store.new_id("case")
        recurrence_of = batch.reads.last_case_of(key)
        values = {
            "id": case_id,
            "kind": _VALUE[kind],
            "source": _SENSOR,
            "state": _REPORTED,
            "category": category,
            "urgency": _VALUE[urgency],
            "reported_ms": ts,
            "updated_ms": ts,
            "title": title,
            "recovery": _VALUE[policy.recovery],
            "grid": grid,
            "area": area,
            "office": office,
            "district": district,
            "lat": location.lat if location else None,
            "lon": location.lon if location else None,
            "part_id": location.part_id if location else None,
            "device": device,
            "gateway": gateway,
            "dedup_key": key,
            "group_key": group,
            "recurrence_of": recurrence_of,
            "alert_count": 1,
            "last_alert_ms": ts,
            "clock_mode": policy.clock_mode,  # Clock.start
        }
        report = audit_entry(
            case_id,
            ts,
            reporter,
            "system",
            "report",
            "",
            _REPORTED,
            title,
            evidence,
            {"recurrence_of": recurrence_of} if recurrence_of else {},
        )
        # The automatic steps in one pass (every step audited, deadlines as if applied one by one).
        case, entries, refused = self.chain.open(values, self._auto(kind, category, grid), ts)
        if refused:
            self.counts["auto_refused"] += 1
        audits = [report, *entries]
        batch.cases[case.id] = case
        batch.audits.extend(audits)
        batch.keys[key] = (case.id, ts)
        batch.groups[group] = case.id
        return case

    def _auto(self, kind: CaseKind, category: str, grid: str | None) -> tuple[tuple[Action, Actor], ...]:
        """The automatic steps of a new sensor case: accept, register, dispatch through the routing table."""
        key = (kind, category, grid)
        found = self._steps.get(key)
        if found is None:
            found = self._steps[key] = self._auto_steps(kind, category, grid)
        steps, unrouted = found
        if unrouted:
            self.counts["unrouted"] += 1
        return steps

    def _auto_steps(
        self, kind: CaseKind, category: str, grid: str | None
    ) -> tuple[tuple[tuple[Action, Actor], ...], bool]:
        """Return the automatic steps and whether routing found no one (the routing table is fixed)."""
        if kind == CaseKind.MAINTENANCE:
            queue = Assignee("maintenance", self.settings.maintenance_queue)
            return (
                (Action(ActionKind.DISPATCH, reason="maintenance queue", assignee=queue), Actor.system("maintenance")),
            ), False
        if not self.settings.auto_dispatch or grid is None:
            return (), False
        steps = (
            (Action(ActionKind.ACCEPT, reason="sensor report"), Actor.system("intake")),
            (Action(ActionKind.REGISTER, reason="sensor report"), Actor.system("intake")),
        )
        try:
            routed = self.router.route(category, grid)
        except GridError:
            return steps, True  # registered, waiting for a dispatcher
        assignee = Assignee(routed.kind, routed.code)
        dispatch = Action(ActionKind.DISPATCH, reason=f"routing: {category}", assignee=assignee)
        return (*steps, (dispatch, Actor.system("routing"))), False

    def _join(self, case: Case, key: str, ts: int, urgency: Urgency, batch: _Batch) -> None:
        """Link one more alert to an open case; a new firing breaks any recovery in progress."""
        order = list(Urgency)
        higher = order.index(urgency) > order.index(Urgency(case.urgency))
        new = evolve(
            case,
            alert_count=case.alert_count + 1,
            last_alert_ms=max(ts, case.last_alert_ms or ts),
            recovered_ms=None,
            urgency=urgency.value if higher else case.urgency,
            updated_ms=max(case.updated_ms, ts),
        )
        new = arm(new, self.ctx.policy(new))
        if case.id in batch.cases:
            batch.cases[case.id] = new
            batch.keys.setdefault(key, (case.id, ts))
            return
        batch.reads.update(new, case)
        batch.reads.bind_key(key, case.id, "firing", ts)

    def _bump(self, case_id: int, ts: int, batch: _Batch) -> None:
        case = batch.reads.get(case_id)
        if case is not None:
            batch.reads.update(
                evolve(
                    case,
                    alert_count=case.alert_count + 1,
                    last_alert_ms=max(ts, case.last_alert_ms or ts),
                    updated_ms=max(case.updated_ms, ts),
                ),
                case,
            )

    def _recover(self, case_id: int, key: str, ts: int, note: str, batch: _Batch) -> None:
        """Record a recovery; when every key of the case is resolved, arm or finish the case."""
        batch.reads.bind_key(key, case_id, RESOLVED, ts)
        case = batch.reads.get(case_id)
        if case is None or not case.open:
            return
        audits = [self._evidence(case, ts, "system:recovery", "recovered", note)]
        new = case
        if recovered(batch.reads.key_statuses(case_id)):
            new = evolve(case, recovered_ms=ts, updated_ms=max(case.updated_ms, ts))
            if new.kind == CaseKind.MAINTENANCE:
                new, entry = self._finish_maintenance(new, ts)
                if entry is not None:
                    audits.append(entry)
            else:
                new = arm(new, self.ctx.policy(new))
        batch.reads.update(new, case)
        batch.reads.audit(audits)
        if not new.open:
            batch.reads.release_keys(case_id)

    def _finish_maintenance(self, case: Case, ts: int) -> tuple[Case, AuditEntry | None]:
        """A device-health case ends when the device is back: cancelled as transient if nobody signed for it."""
        if case.state in (CaseState.REPORTED, CaseState.DISPATCHED, CaseState.REGISTERED):
            action = Action(
                ActionKind.CANCEL, reason="recovered before it was signed for", cancel_reason=CancelReason.TRANSIENT
            )
        elif case.state in (CaseState.IN_PROGRESS, CaseState.HANDLED, CaseState.CHECKING):
            action = Action(ActionKind.CLOSE, reason="device back online")
        else:
            return case, None
        new, entry = apply_action(case, action, Actor.system("recovery"), ts, self.ctx)
        return new, entry

    def _mark_stale(self, case_id: int, key: str, ts: int, note: str, batch: _Batch) -> None:
        batch.reads.bind_key(key, case_id, "stale", ts)
        case = batch.reads.get(case_id)
        if case is None or not case.open:
            return
        new = arm(evolve(case, recovered_ms=None, updated_ms=max(case.updated_ms, ts)), self.ctx.policy(case))
        batch.reads.update(new, case)
        batch.reads.audit([self._evidence(case, ts, "system:liveness", "stale", note)])

    @staticmethod
    def _evidence(case: Case, ts: int, actor: str, what: str, note: str) -> AuditEntry:
        return AuditEntry(
            case.id, ts, actor, "system", "evidence", case.state, case.state, note, (), {"evidence": what}
        )

    # Keys and places.

    def _is_health(self, category: str, policy: Policy) -> bool:
        return category == DEVICE_HEALTH or policy.recovery == Recovery.DEVICE_HEALTH

    @staticmethod
    def _subject(alert: AlertEvent) -> str:
        part = alert.location.part_id if alert.location else None
        return f"part:{part}" if part else f"device:{alert.device}"

    def _key(self, alert: AlertEvent, category: str) -> str:
        return f"{self._subject(alert)}/{category}/{rule_family(alert.rule)}"

    def _group(self, alert: AlertEvent, category: str, grid: str | None) -> str:
        if category in self.settings.area_categories and grid is not None:
            return f"grid:{grid}/{category}"
        return f"{self._subject(alert)}/{category}"

    def _place(self, grid: str) -> tuple[str | None, str | None, str | None] | None:
        if grid not in self._places:
            self._places[grid] = territory_codes(self.ctx.district, grid)
        return self._places[grid]

    def _grid(self, location: Location | None) -> str | None:
        if location is None:
            return None
        grid = location.grid
        if grid is None and self.locator is not None and location.lat is not None and location.lon is not None:
            grid = self.locator.locate(location.lat, location.lon)
        if grid is not None and self._place(grid) is None:
            self.counts["unknown_grid"] += 1
            return None
        return grid

    def _keep(self, batch: _Batch, alert: AlertEvent, grid: str | None, case_id: int | None, disposition: str) -> None:
        loc = alert.location
        batch.rows.append(
            stored_alert(
                alert.fingerprint,
                _VALUE[alert.state],
                alert.ts_ms,
                alert.gateway,
                alert.device,
                alert.rule,
                alert.severity,
                alert.quantity,
                alert.value,
                alert.threshold,
                loc.part_id if loc else None,
                grid,
                case_id,
                disposition,
            )
        )
