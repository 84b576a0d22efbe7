"""The engine tap publishes each committed case as stored (no read back), nothing of a rollback, in scope."""

from __future__ import annotations

import pytest

from cloud.incidents.model import Action, ActionKind, evolve
from cloud.live.attach import attach_live
from cloud.live.events import case_change
from gateway.alerts import AlertState
from tests.incidents.incidents_rig import (
    CENTER,
    DISTRICT,
    FAR_GRID,
    GRID,
    INDEX,
    LEADER,
    T0,
    WORKER,
    alert,
    engine,
)
from tests.live.test_live_hub import FAR

NOW = T0 + 60_000


def test_a_call_publishes_each_case_once_as_committed_and_alerts_in_scope() -> None:
    """A call that opens and joins cases publishes each case once with its stored state, and its alerts."""
    eng = engine()
    live = attach_live(eng, DISTRICT, lambda: NOW, locator=INDEX)
    center, far = live.hub.subscribe(CENTER), live.hub.subscribe(FAR)
    eng.handle_batch(
        [
            ("gw-1", [alert("combustible_gas", AlertState.FIRING, T0, device="gas-1")]),
            ("gw-1", [alert("combustible_gas", AlertState.FIRING, T0 + 5, device="gas-1")]),  # joins
            ("gw-1", [alert("combustible_gas", AlertState.FIRING, T0 + 9, device="gas-2", grid=FAR_GRID)]),
        ]
    )
    got = live.hub.take(center)
    cases = [m["data"] for m in got if m["type"] == "case"]
    stored = sorted(eng.cases(CENTER), key=lambda c: c.id)
    assert cases == [case_change(c, NOW).data for c in stored]
    assert cases[0]["alert_count"] == 2
    alerts = {m["data"]["device"]: m["data"]["ts_ms"] for m in got if m["type"] == "alert"}
    assert alerts == {"gas-1": T0 + 5, "gas-2": T0 + 9}  # per fingerprint, the latest (conflated)
    far_got = live.hub.take(far)
    assert {m["data"].get("grid") for m in far_got} == {FAR_GRID}  # the far worker: its grid's case and alert


def test_an_action_publishes_the_updated_case_and_a_rollback_publishes_nothing() -> None:
    """An action's committed case is published as stored; a transaction that fails publishes nothing."""
    eng = engine()
    live = attach_live(eng, DISTRICT, lambda: NOW, locator=INDEX)
    eng.handle("gw-1", [alert("combustible_gas", AlertState.FIRING, T0)])
    (case,) = eng.cases(CENTER)
    sub = live.hub.subscribe(WORKER)
    eng.act(case.id, Action(ActionKind.SUPERVISE, "slow"), LEADER, NOW)
    (message,) = live.hub.take(sub)
    stored = eng.store.get(case.id)
    assert stored is not None
    assert message["data"] == case_change(stored, NOW).data
    assert message["data"]["supervised"] == 1

    def failing() -> None:
        with eng.store.transaction():
            eng.store.insert(evolve(case, id=case.id + 1000))
            raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError):
        failing()
    assert live.hub.take(sub) == []
    assert eng.store.get(case.id + 1000) is None


def test_events_published_with_no_subscriber_are_replayed_in_scope() -> None:
    """Events published while nobody listens reach a later subscriber resuming from before them, in scope."""
    eng = engine()
    live = attach_live(eng, DISTRICT, lambda: NOW, locator=INDEX)
    start = live.hub.seq
    eng.handle("gw-1", [alert("combustible_gas", AlertState.FIRING, T0, device="near", grid=GRID)])
    eng.handle("gw-1", [alert("combustible_gas", AlertState.FIRING, T0, device="far", grid=FAR_GRID)])
    near = live.hub.take(live.hub.subscribe(WORKER, start))
    assert {m["data"].get("grid") for m in near} == {GRID}
    assert len(near) == 2  # its case and its alert
