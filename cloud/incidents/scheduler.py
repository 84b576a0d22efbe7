"""Escalation on the clock: `now` in; escalation events fired (and persisted, once) and automatic actions out.

`Scheduler.tick(now)` looks at the open cases whose next timer is due, and for each due timer:

- `sign_overdue` (dispatched, not signed for in time), `step_overdue`, `yellow` (80 % of the allowed
  time), `red` (100 %): if the case's policy has an escalation step for that trigger, an `Escalation` is
  recorded for its notify roles; a step whose action is `supervise` also flags the case 督办
  (`system:scheduler`);
- `auto_check`: a sensor-sufficient case handled and recovered for `stable_for` is checked by
  `system:recovery`; `auto_close`: its veto window is over and it is closed.

Each (case, trigger, deadline) fires once: the case remembers it, and the escalation row's key refuses
a second insert, so a tick repeated at the same time does nothing twice.
"""

from __future__ import annotations

from typing import Final

from cloud.incidents.clocks import fired_key, timers, with_timer
from cloud.incidents.loop import ActionRefused, Context, apply_action
from cloud.incidents.model import Action, ActionKind, AuditEntry, Case, Outcome, evolve
from cloud.incidents.ports import Policy
from cloud.incidents.recovery import arm
from cloud.incidents.roles import Actor
from cloud.incidents.store import CaseStore, Escalation

BATCH: Final = 500
_AUTO: Final = {
    "auto_check": Action(ActionKind.CHECK, reason="sensor recovered and stable", outcome=Outcome.PASS),
    "auto_close": Action(ActionKind.CLOSE, reason="veto window over"),
}


class Scheduler:
    """Evaluate case timers on the clock; see the module docstring."""

    def __init__(self, store: CaseStore, ctx: Context) -> None:
        self.store = store
        self.ctx = ctx

    def tick(self, now: int) -> list[Escalation]:
        """Fire every timer due at `now`; return the escalations fired by this tick."""
        fired: list[Escalation] = []
        done: set[int] = set()
        while True:
            cases = [c for c in self.store.due_timers(now, BATCH + len(done)) if c.id not in done]
            if not cases:
                return fired
            for case in cases:
                done.add(case.id)
                with self.store.transaction():
                    fired.extend(self._case(case, now))

    def _case(self, read: Case, now: int) -> list[Escalation]:
        case = read
        out: list[Escalation] = []
        audits: list[AuditEntry] = []
        # An automatic action changes the timers (a check arms the veto window), so look again.
        for _ in range(4):
            policy = self.ctx.policy(case)
            due = [(k, at) for k, at in timers(case, policy) if at <= now and fired_key(k, at) not in case.fired]
            if not due:
                break
            for kind, at in sorted(due, key=lambda t: t[1]):
                case = evolve(case, fired=(*case.fired, fired_key(kind, at)))
                if kind in _AUTO:
                    case = self._auto(case, kind, now, audits)
                else:
                    case, esc = self._escalate(case, policy, kind, at, now, audits)
                    out.extend(esc)
        policy = self.ctx.policy(case)
        current = {fired_key(k, at) for k, at in timers(case, policy)}
        case = with_timer(evolve(case, fired=tuple(f for f in case.fired if f in current)), policy)
        self.store.update(case, read)
        self.store.append_audit(audits)
        if not case.open:
            self.store.release_keys(case.id)
        return out

    def _auto(self, case: Case, kind: str, now: int, audits: list[AuditEntry]) -> Case:
        try:
            new, entry = apply_action(case, _AUTO[kind], Actor.system("recovery"), now, self.ctx)
        except ActionRefused:
            return case
        audits.append(entry)
        return arm(evolve(new, fired=case.fired), self.ctx.policy(new))

    def _escalate(
        self, case: Case, policy: Policy, key: str, at: int, now: int, audits: list[AuditEntry]
    ) -> tuple[Case, list[Escalation]]:
        index, trigger = key.removeprefix("esc").split(":", 1)
        step = policy.escalation[int(index)]
        esc = Escalation(case.id, trigger, at, now, step.action, step.notify)
        if not self.store.record_escalation(esc):
            return case, []
        if step.action == "supervise":
            action = Action(ActionKind.SUPERVISE, reason=f"{trigger}: deadline {at} passed")
            new, entry = apply_action(case, action, Actor.system("scheduler"), now, self.ctx)
            case = evolve(new, fired=case.fired)
            audits.append(entry)
        return case, [esc]
