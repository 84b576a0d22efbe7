"""A new sensor case's automatic steps (受理 → 立案 → 派遣): the case, its steps and `now` in; the case and audit out.

`AutoChain.apply` returns what `apply_action` applied in turn would (a test holds it so), in one pass
(`loop.apply_actions`). A chain of system steps on a fresh case reads only the case's kind, category,
urgency and clock mode, never its place, device or id; in natural time every deadline it sets is `now`
plus a duration. So such a chain is computed once per shape and, for the next case of that shape,
shifted by the difference in `now`: the same states, deadlines and audit entries, for a few dict
operations instead of three transitions. Work-time chains (a calendar with nights and holidays is not
shift-invariant), non-system actors and other actions always take the full path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from operator import itemgetter
from typing import Any, Final

from cloud.incidents.loop import Context, apply_actions
from cloud.incidents.model import Action, ActionKind, AuditEntry, Case, CaseState, audit_entry, case_fields, case_of
from cloud.incidents.ports import NaturalCalendar
from cloud.incidents.roles import Actor, Role

Steps = Sequence[tuple[Action, Actor]]

# What differs between fresh cases of one shape and the chain never reads (it may write updated_ms).
_VARYING: Final = frozenset(
    {
        "id",
        "title",
        "source",
        "grid",
        "area",
        "office",
        "district",
        "lat",
        "lon",
        "part_id",
        "device",
        "gateway",
        "dedup_key",
        "group_key",
        "recurrence_of",
        "alert_count",
        "last_alert_ms",
        "reported_ms",
        "updated_ms",
    }
)
_SHAPE: Final = ("kind", "category", "urgency", "clock_mode", "recovery")
_DEFAULTS: Final = {f.name: f.default for f in fields(Case)}
# Every other field must be as a new case has it (REPORTED, nothing started) for a memoized chain to apply.
_LIFECYCLE: Final = tuple(n for n in _DEFAULTS if n not in _VARYING and n not in _SHAPE and n != "state")
_lifecycle = itemgetter(*_LIFECYCLE)
_shape = itemgetter(*_SHAPE)
_FRESH: Final = tuple(_DEFAULTS[n] for n in _LIFECYCLE)
# Instants (not durations or counts): they move with `now`.
_INSTANTS: Final = frozenset(n for n in _DEFAULTS if n.endswith("_ms") and n not in ("paused_ms",))
_SHIFTABLE_ACTIONS: Final = frozenset({ActionKind.ACCEPT, ActionKind.VERIFY, ActionKind.REGISTER, ActionKind.DISPATCH})


@dataclass(frozen=True, slots=True)
class _Template:
    steps: Steps
    now: int
    constants: dict[str, Any]  # the fields the chain set that do not move with `now`
    instants: tuple[tuple[str, int], ...]  # those that do, as set at `now`
    entries: tuple[AuditEntry, ...]
    refused: bool


class AutoChain:
    """Apply the automatic steps of new cases, memoizing natural-time chains per shape (see the module)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._natural_calendar = isinstance(ctx.clock.calendar, NaturalCalendar)
        self._memo: dict[tuple[Any, ...], _Template] = {}

    def open(self, values: Mapping[str, Any], steps: Steps, now: int) -> tuple[Case, list[AuditEntry], bool]:
        """Return `apply(new_case(**values), steps, now)`: with the chain memoized, the case is built once."""
        data = case_fields(values)
        template = self._memo.get((id(steps), *_shape(data)))
        if template is None or template.steps is not steps or not _fresh(data, now):
            return self.apply(case_of(data), steps, now)
        return self._shifted(data, template, data["id"], now)

    def apply(self, case: Case, steps: Steps, now: int) -> tuple[Case, list[AuditEntry], bool]:
        """Return a new case (reported at `now`) after `steps`, their audit entries, and whether a step was refused."""
        data = case.__dict__
        key = (id(steps), *_shape(data))
        template = self._memo.get(key)
        fresh = _fresh(data, now)
        if template is None or template.steps is not steps or not fresh:
            new, entries, refused = apply_actions(case, steps, now, self.ctx, entered=True)
            if fresh and self._shiftable(case, steps):
                self._memo[key] = _template(case, new, steps, now, entries, refused is not None)
            return new, entries, refused is not None
        return self._shifted(dict(data), template, case.id, now)

    @staticmethod
    def _shifted(
        data: dict[str, Any], template: _Template, case_id: int, now: int
    ) -> tuple[Case, list[AuditEntry], bool]:
        """Return the case of `data` (a fresh case's fields, taken as the row) after the template shifted to `now`."""
        # The case's fields with the chain's: the template's names are Case fields, so this is a whole row.
        data.update(template.constants)
        shift = now - template.now
        for name, at in template.instants:
            data[name] = at + shift
        # The entries share the template's detail dicts: audit entries are written, never changed.
        entries = [
            audit_entry(
                case_id, now, e.actor, e.role, e.action, e.from_state, e.to_state, e.reason, e.evidence, e.detail
            )
            for e in template.entries
        ]
        return case_of(data), entries, template.refused

    def _shiftable(self, case: Case, steps: Steps) -> bool:
        """Whether the chain moves with `now`: system steps of the kinds it knows, in natural time."""
        return (self._natural_calendar or case.clock_mode == "natural") and all(
            a.kind in _SHIFTABLE_ACTIONS and actor.role == Role.SYSTEM for a, actor in steps
        )


def _fresh(data: Mapping[str, Any], now: int) -> bool:
    """Whether a case's fields are those of a case just reported at `now`, nothing of its life started."""
    return bool(
        data["state"] == CaseState.REPORTED
        and data["reported_ms"] == now
        and data["updated_ms"] == now
        and _lifecycle(data) == _FRESH
    )


def _template(case: Case, new: Case, steps: Steps, now: int, entries: list[AuditEntry], refused: bool) -> _Template:
    """Return what the chain did to `case` at `now`: the fields it set (updated_ms always), its entries."""
    before = case.__dict__
    written = {n: v for n, v in new.__dict__.items() if v != before[n] or n == "updated_ms"}
    instants = tuple((n, v) for n, v in written.items() if n in _INSTANTS and v is not None)
    moving = {n for n, _ in instants}
    constants = {n: v for n, v in written.items() if n not in moving}
    return _Template(steps, now, constants, instants, tuple(entries), refused)
