"""The standards table as the engine's Policies: Standards in; a cached Policy per category × urgency out."""

from __future__ import annotations

from cloud.incidents.model import Recovery, Urgency
from cloud.incidents.ports import EscalationStep, Policy
from cloud.incidents.standards import CategoryStandard, Standards, StandardsError


def policy_of(std: CategoryStandard) -> Policy:
    """Return the engine's view of one standard."""
    return Policy(
        clock_mode=str(std.clock_mode.value),
        steps=dict(std.steps),
        overall_ms=std.overall_ms,
        yellow_at=std.yellow_at,
        red_at=std.red_at,
        escalation=tuple(EscalationStep(e.trigger, e.action, e.notify, e.step, e.after_ms) for e in std.escalation),
        recovery=Recovery(std.recovery),
        stable_for_ms=std.stable_for_ms,
        veto_ms=std.veto_ms,
        self_handling=std.self_handling,
        open311_hidden=std.open311_hidden,
    )


class StandardsPolicies:
    """Policies read from the 立案结案标准 table, cached.

    A category the table does not know gets `default` (counted in `unknown`), so an alert of a new rule
    still becomes a case instead of being lost.
    """

    def __init__(self, standards: Standards, default: Policy | None = None) -> None:
        self.standards = standards
        self.default = default or Policy()
        self.unknown: dict[str, int] = {}
        self._cache: dict[tuple[str, Urgency], Policy] = {}

    def policy(self, category: str, urgency: Urgency) -> Policy:
        """Return the table's policy for category × urgency, or the default for an unknown category."""
        key = (category, urgency)
        found = self._cache.get(key)
        if found is None:
            try:
                found = policy_of(self.standards.rule(category, urgency.value))
            except StandardsError:
                self.unknown[category] = self.unknown.get(category, 0) + 1
                return self.default
            self._cache[key] = found
        return found
