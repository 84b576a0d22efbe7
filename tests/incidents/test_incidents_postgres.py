"""The incident engine runs unchanged on a real PostgreSQL (same SQL as SQLite)."""

from __future__ import annotations

import pytest

from cloud.db import Database
from cloud.fleet import EventKind, LivenessEvent
from cloud.incidents.model import Action, ActionKind, Outcome
from cloud.incidents.silences import Matchers
from gateway.alerts import AlertState
from tests.incidents.incidents_rig import CENTER, GAS_HANDLER, HOUR, MIN, OPS, T0, WORKER, alert, engine

pytestmark = pytest.mark.integration


def test_case_life_intake_scheduler_and_kpis_on_postgres(postgres_url: str) -> None:
    """Dedup, a silence, an outage, the full loop, an escalation and KPIs all work on PostgreSQL."""
    db = Database.open(postgres_url)
    try:
        eng = engine(db)
        eng.add_silence(OPS, Matchers(device="gas-9"), "calibration", T0, T0 + HOUR, T0)
        eng.handle(
            "gw-1",
            [alert("combustible_gas", AlertState.FIRING, T0), alert("combustible_gas", AlertState.FIRING, T0 + 1)],
        )
        eng.handle("gw-1", [alert("combustible_gas", AlertState.FIRING, T0, device="gas-9")])
        eng.handle("gw-1", [alert("combustible_gas", AlertState.FIRING, T0)])  # a replay
        devices = ("a", "b", "c")
        eng.liveness_events([LivenessEvent(EventKind.GATEWAY_OFFLINE, "gw-2", T0, "will", devices=devices)])
        eng.liveness_events(
            [LivenessEvent(EventKind.DEVICE_STALE, "gw-2", T0 + 1, "silent", device=d) for d in devices]
        )
        (case,) = eng.cases(CENTER)
        assert case.alert_count == 2
        assert eng.count(OPS) == 1
        assert [e.kind for e in eng.tick(T0 + 31 * MIN)] == ["sign_overdue"]
        assert eng.tick(T0 + 31 * MIN) == []
        eng.act(case.id, Action(ActionKind.SIGN), GAS_HANDLER, T0 + 40 * MIN)
        eng.act(case.id, Action(ActionKind.REPORT_HANDLED), GAS_HANDLER, T0 + HOUR)
        eng.act(case.id, Action(ActionKind.CHECK, outcome=Outcome.PASS), WORKER, T0 + 2 * HOUR)
        eng.act(case.id, Action(ActionKind.CLOSE), CENTER, T0 + 2 * HOUR)
        assert len(eng.store.audit_trail(case.id)) == 8
        (grid_kpis,) = eng.kpis(CENTER, T0, T0 + HOUR, "grid").values()
        assert (grid_kpis.closed, grid_kpis.closure_rate, grid_kpis.alerts_per_case) == (1, 1.0, 2.0)
    finally:
        db.close()
