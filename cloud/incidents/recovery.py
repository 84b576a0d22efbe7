"""Recovery policy: a case and its policy in; when the system may complete 核查 on its own out.

`human_check_required` (default): a recovered sensor is evidence on the case, a person checks and closes.
`sensor_sufficient`: once the department has reported HANDLED and every alert of the case has been
resolved (not stale: a quiet sensor is not a recovered one) for `stable_for`, the scheduler checks the
case as `system:recovery`; it then closes after the veto window unless a person sends it back (返工).
`device_health`: maintenance cases, closed by the system when the device or gateway is back.
"""

from __future__ import annotations

from cloud.incidents.clocks import with_timer
from cloud.incidents.model import Case, CaseState, Recovery, evolve
from cloud.incidents.ports import Policy

RESOLVED = "resolved"


def recovered(statuses: dict[str, str]) -> bool:
    """Whether every alert key of a case is resolved (a stale or firing key is not)."""
    return bool(statuses) and all(status == RESOLVED for status in statuses.values())


def arm(case: Case, policy: Policy) -> Case:
    """Return the case with its automatic-check time set (or cleared) and its timer recomputed."""
    at = None
    if (
        policy.recovery == Recovery.SENSOR_SUFFICIENT
        and case.state == CaseState.HANDLED
        and case.recovered_ms is not None
        and case.handled_ms is not None
    ):
        at = max(case.recovered_ms + policy.stable_for_ms, case.handled_ms)
    if at == case.auto_check_ms:
        return with_timer(case, policy)
    return with_timer(evolve(case, auto_check_ms=at), policy)
