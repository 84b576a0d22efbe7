"""The sans-I/O live hub: seq, ring, resume, resync, conflation, bounded queues and the scope filter."""

from __future__ import annotations

from typing import Any, Final

from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.fleet import EventKind, LivenessEvent
from cloud.grid import default_district
from cloud.incidents.model import Case
from cloud.incidents.roles import Actor
from cloud.live.attach import seed_seq
from cloud.live.events import Change, alert_change, case_change, fleet_change
from cloud.live.hub import RESYNC, Hub
from gateway.alerts import AlertEvent, AlertState, Location

DISTRICT: Final = default_district()
GRID: Final = DISTRICT.grids[0].code
FAR_GRID: Final = DISTRICT.grids[-1].code
CENTER: Final = Actor("center", "shift_lead", DISTRICT.code)
WORKER: Final = Actor("worker", "grid_worker", GRID)
FAR: Final = Actor("far", "grid_worker", FAR_GRID)
DEPT: Final = Actor("cg", "dept_handler", "CGJ")
OPS: Final = Actor("ops", "maintenance", DISTRICT.code)
NOW: Final = 1_750_000_000_000


def hub(**kw: Any) -> Hub:
    """A hub on the bundled district seeded like a real one."""
    return Hub(DISTRICT, origin="here", start_seq=seed_seq(NOW), **kw)


def case(case_id: int, state: str = "reported", *, grid: str | None = GRID, department: str | None = None) -> Change:
    """A governance case change in `grid`."""
    c = Case(
        id=case_id,
        kind="governance",
        source="sensor",
        state=state,
        category="manhole_cover",
        urgency="normal",
        reported_ms=NOW,
        updated_ms=NOW,
        grid=grid,
        district=DISTRICT.code,
        department=department,
    )
    return case_change(c, NOW)


def test_seqs_increase_from_the_seed_and_a_restart_never_reuses_one() -> None:
    """Seqs count up by one from the seed; a hub seeded a millisecond later starts above 999 earlier events."""
    first = hub()
    seqs = [first.publish(case(n))[0].seq for n in range(999)]
    assert seqs == list(range(seed_seq(NOW) + 1, seed_seq(NOW) + 1000))
    later = Hub(DISTRICT, origin="again", start_seq=seed_seq(NOW + 1))
    assert later.publish(case(1))[0].seq > seqs[-1]


def test_resume_since_replays_everything_visible_after_it_in_order() -> None:
    """A subscriber resuming after seq S gets exactly the later events it may see, oldest first, then live ones."""
    h = hub()
    events = [h.publish(case(n, grid=GRID if n % 2 else FAR_GRID))[0] for n in range(10)]
    since = events[3].seq
    sub = h.subscribe(WORKER, since)
    h.publish(case(100))
    got = h.take(sub)
    expected = [e.seq for e in events[4:] if e.data["grid"] == GRID] + [h.seq]
    assert [m["seq"] for m in got] == expected
    assert all(m["type"] == "case" and m["data"]["grid"] == GRID for m in got)
    assert h.take(sub) == []


def test_resync_when_since_left_the_ring_is_unknown_or_from_another_hub() -> None:
    """A resume point older than the ring, in the future, or of another hub gets one resync, then live events."""
    h = hub(ring_size=5)
    first = h.publish(case(1))[0]
    for n in range(2, 10):
        h.publish(case(n))
    for since, other in ((first.seq, None), (h.seq + 5, None), (h.seq, "elsewhere")):
        sub = h.subscribe(CENTER, since, hub=other)
        (msg,) = h.take(sub)
        assert (msg["type"], msg["seq"]) == (RESYNC, h.seq)
        h.unsubscribe(sub)
    edge = h.subscribe(CENTER, h.seq - 5)  # the oldest event still in the ring is seq - 4: nothing missed
    assert len(h.take(edge)) == 5


def test_a_slow_subscriber_gets_the_latest_state_per_case_and_conflation_is_counted() -> None:
    """A hundred updates of one case while the client reads nothing arrive as one message with the last state."""
    h = hub()
    sub = h.subscribe(CENTER)
    states = ["reported", "accepted", "registered", "dispatched"] * 25
    for state in states:
        h.publish(case(7, state))
    h.publish(case(8))
    got = h.take(sub)
    assert [(m["data"]["id"], m["data"]["state"]) for m in got] == [(7, "dispatched"), (8, "reported")]
    assert sub.conflated == 99
    assert got[0]["seq"] == h.seq - 1


def test_a_flood_of_distinct_keys_stays_bounded_and_ends_in_a_resync() -> None:
    """Past the queue limit the backlog is dropped (counted) for a resync; pending never exceeds the limit."""
    h = hub(queue_limit=10)
    sub = h.subscribe(CENTER)
    peak = 0
    for n in range(1000):
        h.publish(case(n))
        peak = max(peak, sub.pending)
    assert peak <= 11
    got = h.take(sub)
    assert got[0]["type"] == RESYNC
    assert [m["data"]["id"] for m in got[1:]] == list(range(1000 - len(got) + 1, 1000))
    assert sub.overflowed + len(got) - 1 == 1000


def test_scope_filter_for_cases_alerts_and_fleet() -> None:
    """Cases follow `visible`, alerts go to territory actors whose scope holds their grid, fleet to ops and command."""
    h = hub()
    subs = {a.username: h.subscribe(a) for a in (CENTER, WORKER, FAR, DEPT, OPS)}
    h.publish(case(1, grid=GRID, department="CGJ"))
    alert = AlertEvent("gw-1", "tilt-1", "cover_tilted", AlertState.FIRING, 1, NOW, location=Location(grid=GRID))
    h.publish(alert_change(alert, GRID))
    nowhere = AlertEvent("gw-1", "gas-9", "gas_high", AlertState.FIRING, 2, NOW)
    h.publish(alert_change(nowhere, None))
    h.publish(fleet_change(LivenessEvent(EventKind.GATEWAY_OFFLINE, "gw-1", NOW, "will", devices=("tilt-1",))))
    seen = {name: [(m["type"], m["data"].get("grid")) for m in h.take(s)] for name, s in subs.items()}
    assert seen["center"] == [("case", GRID), ("alert", GRID), ("alert", None), ("fleet", None)]
    assert seen["worker"] == [("case", GRID), ("alert", GRID)]
    assert seen["far"] == []
    assert seen["cg"] == [("case", GRID)]
    assert seen["ops"] == [("alert", GRID), ("alert", None), ("fleet", None)]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.tuples(st.integers(0, 15), st.integers(0, 9)), st.none()), max_size=200))
def test_conflated_delivery_converges_to_the_latest_state_of_every_key(ops: list[tuple[int, int] | None]) -> None:
    """Whatever the interleaving of updates and reads, the client ends with each case's latest state, seqs rising."""
    h = hub(queue_limit=32)
    sub = h.subscribe(CENTER)
    latest: dict[int, str] = {}
    view: dict[int, str] = {}
    last_seq = 0
    for op in [*ops, None]:
        if op is None:
            for m in h.take(sub, limit=1_000):
                assert m["seq"] > last_seq
                last_seq = m["seq"]
                view[m["data"]["id"]] = m["data"]["state"]
        else:
            latest[op[0]] = f"s{op[1]}"
            h.publish(case(op[0], f"s{op[1]}"))
    assert view == latest
