"""The incident layer's one entry: alerts, liveness, actions and queries in (with the caller's actor); cases out.

`Incidents` wires the store, the intake (the ingest AlertSink), the case loop and the scheduler. Every
read takes an Actor and applies the scope rule in SQL (lists) or `visible` (one case); a case outside the
caller's scope is reported as not found, so its existence does not leak.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cloud.fleet import LivenessEvent
from cloud.incidents.clocks import Clock, Light, with_timer
from cloud.incidents.intake import DEFAULT_SETTINGS, CaseIntake, Categorize, IntakeSettings
from cloud.incidents.kpis import Kpis, PersonKpis, Unit, by_person, by_unit
from cloud.incidents.loop import ActionRefused, Context, apply_action
from cloud.incidents.model import Action, AuditEntry, Case, CaseKind, CaseState, Source, Urgency, evolve
from cloud.incidents.ports import Calendar, District, Locator, NaturalCalendar, Policies, Router, territory_codes
from cloud.incidents.recovery import arm
from cloud.incidents.roles import Actor, Role, visible
from cloud.incidents.scheduler import Scheduler
from cloud.incidents.silences import Emergency, Matchers, Silence, SilenceError, Silences
from cloud.incidents.store import ALL, CaseFilter, CaseStore, Escalation, StoredAlert
from gateway.alerts import AlertEvent

SILENCE_ROLES = frozenset({Role.MAINTENANCE, Role.SHIFT_LEAD})
EMERGENCY_ROLES = frozenset({Role.LEADER, Role.SHIFT_LEAD})
REPORT_ROLES = frozenset({Role.GRID_WORKER, Role.AREA_LEAD, Role.ACCEPTOR, Role.SHIFT_LEAD, Role.SYSTEM})


class CaseNotFound(LookupError):
    """No case with that id is visible to the caller."""


@dataclass(frozen=True, slots=True)
class Timeline:
    """A case with its audit trail, alerts and escalations (the detail view)."""

    case: Case
    light: Light
    audit: list[AuditEntry]
    alerts: list[StoredAlert]
    escalations: list[Escalation]


class Incidents:
    """The case engine on one database; see the module docstring."""

    def __init__(
        self,
        store: CaseStore,
        district: District,
        policies: Policies,
        router: Router,
        categorize: Categorize,
        *,
        calendar: Calendar | None = None,
        locator: Locator | None = None,
        settings: IntakeSettings = DEFAULT_SETTINGS,
    ) -> None:
        self.store = store
        self.ctx = Context(district, policies, Clock(calendar or NaturalCalendar()))
        self.intake = CaseIntake(store, self.ctx, router, categorize, locator=locator, settings=settings)
        self.scheduler = Scheduler(store, self.ctx)
        self.silences = Silences(store.db)
        self.locator = locator

    # Ingest and the clock.

    def handle(self, gateway: str, alerts: Sequence[AlertEvent]) -> None:
        """Take the alerts of one envelope (through `handle_batch`, the one entry hooks wrap)."""
        self.handle_batch([(gateway, alerts)])

    def handle_batch(self, envelopes: Sequence[tuple[str, Sequence[AlertEvent]]]) -> None:
        """Take the alerts of several envelopes in one transaction (the ingest AlertSink)."""
        self.intake.handle_batch(envelopes)

    def liveness_events(self, events: Sequence[LivenessEvent]) -> None:
        """Take the liveness changes of one fleet tick."""
        self.intake.liveness_events(events)

    def tick(self, now: int) -> list[Escalation]:
        """Run the scheduler at `now`; return the escalations fired."""
        return self.scheduler.tick(now)

    # Reads.

    def case(self, actor: Actor, case_id: int) -> Case:
        """Return one case the actor may see; raise CaseNotFound otherwise."""
        case = self.store.get(case_id)
        if case is None or not visible(actor, case, self.ctx.district):
            raise CaseNotFound(f"no case {case_id}")
        return case

    def cases(self, actor: Actor, flt: CaseFilter = ALL, *, limit: int = 100, offset: int = 0) -> list[Case]:
        """Return the cases the actor may see, matching `flt`, newest first."""
        return self.store.cases(actor, flt, limit=limit, offset=offset)

    def count(self, actor: Actor, flt: CaseFilter = ALL) -> int:
        """Return how many cases the actor may see match `flt`."""
        return self.store.count(actor, flt)

    def timeline(self, actor: Actor, case_id: int, now: int) -> Timeline:
        """Return a visible case with its audit, alerts, escalations and light at `now`."""
        case = self.case(actor, case_id)
        return Timeline(
            case,
            Clock.light(case, now),
            self.store.audit_trail(case_id),
            self.store.alerts_of(case_id),
            self.store.escalations(case_id),
        )

    def kpis(
        self,
        actor: Actor,
        start_ms: int,
        end_ms: int,
        unit: Unit,
        *,
        uptime: Mapping[str, tuple[int, int]] | None = None,
    ) -> dict[str, Kpis]:
        """Return KPIs per unit over the cases reported in [start, end) that the actor may see."""
        return by_unit(self._visible_between(actor, start_ms, end_ms), unit, uptime)

    def person_kpis(self, actor: Actor, start_ms: int, end_ms: int) -> dict[str, PersonKpis]:
        """Return per-person KPIs over the cases reported in [start, end) that the actor may see."""
        cases = self._visible_between(actor, start_ms, end_ms)
        audit = [e for c in cases for e in self.store.audit_trail(c.id)]
        return by_person(cases, audit)

    def _visible_between(self, actor: Actor, start_ms: int, end_ms: int) -> list[Case]:
        flt = CaseFilter(reported_from_ms=start_ms, reported_to_ms=end_ms)
        return self.store.cases(actor, flt, limit=1_000_000)

    # Writes.

    def act(self, case_id: int, action: Action, actor: Actor, now: int) -> Case:
        """Apply an action to a visible case; raise CaseNotFound, ActionRefused or store.StaleCase."""
        with self.store.transaction():
            read = self.case(actor, case_id) if actor.role != Role.SYSTEM else self.store.get(case_id)
            if read is None:
                raise CaseNotFound(f"no case {case_id}")
            new, entry = apply_action(read, action, actor, now, self.ctx)
            new = arm(new, self.ctx.policy(new))
            self.store.update(new, read)
            self.store.append_audit([entry])
            if not new.open:
                self.store.release_keys(case_id)
        return new

    def report(
        self,
        actor: Actor,
        category: str,
        urgency: Urgency,
        now: int,
        *,
        title: str,
        lat: float | None = None,
        lon: float | None = None,
        grid: str | None = None,
        source: Source = Source.MANUAL,
        evidence: tuple[str, ...] = (),
    ) -> Case:
        """Open a case reported by a person (grid worker, acceptor, or the public through Open311)."""
        if source != Source.PUBLIC and actor.role not in REPORT_ROLES:
            raise ActionRefused("role", f"{actor.role} may not report a case")
        if grid is None and self.locator is not None and lat is not None and lon is not None:
            grid = self.locator.locate(lat, lon)
        place = territory_codes(self.ctx.district, grid) if grid is not None else None
        if place is None:
            grid = None
        area, office, district = place if place is not None else (None, None, self.ctx.district.code)
        policy = self.ctx.policies.policy(category, urgency)
        with self.store.transaction():
            case = Case(
                id=self.store.new_id("case"),
                kind=CaseKind.GOVERNANCE.value,
                source=source.value,
                state=CaseState.REPORTED.value,
                category=category,
                urgency=urgency.value,
                reported_ms=now,
                updated_ms=now,
                title=title,
                recovery=policy.recovery.value,
                grid=grid,
                area=area,
                office=office,
                district=district,
                lat=lat,
                lon=lon,
            )
            if source != Source.PUBLIC and not visible(actor, case, self.ctx.district):
                raise ActionRefused("scope", f"{actor.username} may not report outside its scope")
            clock = self.ctx.clock
            case = with_timer(clock.enter(clock.start(case, policy, now), policy, now), policy)
            self.store.insert(case)
            self.store.append_audit(
                [AuditEntry(case.id, now, actor.username, actor.role, "report", "", case.state, title, evidence)],
                fresh=True,
            )
        return case

    def add_silence(
        self, actor: Actor, matchers: Matchers, reason: str, starts_ms: int, ends_ms: int, now: int
    ) -> Silence:
        """Create a maintenance window owned by the actor (maintenance or shift lead)."""
        if actor.role not in SILENCE_ROLES:
            raise ActionRefused("role", f"{actor.role} may not create silences")
        silence = Silence(self.store.new_id("silence"), actor.username, reason, matchers, starts_ms, ends_ms, now)
        return self.silences.add(silence)

    def expire_silence(self, actor: Actor, silence_id: int, now: int) -> bool:
        """End a silence now (maintenance or shift lead)."""
        if actor.role not in SILENCE_ROLES:
            raise ActionRefused("role", f"{actor.role} may not end silences")
        return self.silences.expire(silence_id, now)

    def declare_emergency(
        self, actor: Actor, name: str, matchers: Matchers, category: str, grid: str, ends_ms: int, now: int
    ) -> Case:
        """Declare an emergency in a territory: one registered case absorbs the matching alerts until `ends_ms`."""
        if actor.role not in EMERGENCY_ROLES:
            raise ActionRefused("role", f"{actor.role} may not declare emergencies")
        if matchers.empty():
            raise SilenceError("an emergency needs at least one matcher")
        with self.store.transaction():
            case = self.report(Actor.system("emergency"), category, Urgency.CRITICAL, now, title=name, grid=grid)
            if not visible(actor, case, self.ctx.district):
                raise ActionRefused("scope", f"{actor.username} may not declare an emergency outside its scope")
            self.store.update(evolve(case, priority=3, updated_ms=now), case)
            self.silences.add_emergency(
                Emergency(self.store.new_id("emergency"), name, matchers, case.id, now, ends_ms)
            )
        return self.store.get(case.id) or case
