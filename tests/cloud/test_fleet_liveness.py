"""Liveness with injected time: one event per gateway outage, device staleness only behind a live gateway."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.fleet import EventKind, Link, Liveness, LivenessEvent

T0 = 1_718_000_000_000
HB = 30_000
WINDOW = 3 * HB


def _fleet(devices: int = 50, device_window_ms: int = 300_000) -> Liveness:
    live = Liveness(heartbeat_window_ms=WINDOW, device_window_ms=device_window_ms)
    for n in range(devices):
        live.bind(f"dev-{n:02d}", "gw-a")
    return live


def _kinds(events: list[LivenessEvent]) -> list[tuple[EventKind, str | None]]:
    return [(e.kind, e.device or e.gateway) for e in events]


def test_silent_gateway_with_50_devices_raises_one_offline_event_listing_them() -> None:
    """Past the heartbeat window the gateway goes offline once, its 50 devices unreachable in that one event."""
    live = _fleet()
    live.heartbeat("gw-a", None, T0)
    assert _kinds(live.tick(T0)) == [(EventKind.GATEWAY_ONLINE, "gw-a")]
    assert live.tick(T0 + WINDOW) == []
    events = live.tick(T0 + WINDOW + 1)
    assert len(events) == 1
    (offline,) = events
    assert (offline.kind, offline.reason, offline.last_seen_ms) == (EventKind.GATEWAY_OFFLINE, "silent", T0)
    assert offline.devices == tuple(f"dev-{n:02d}" for n in range(50))
    # Long after, the devices' own windows pass too: still nothing more.
    assert live.tick(T0 + 3_600_000) == []
    live.heartbeat("gw-a", None, T0 + 3_600_001)
    assert _kinds(live.tick(T0 + 3_600_002)) == [(EventKind.GATEWAY_ONLINE, "gw-a")]
    assert live.gateway("gw-a").link is Link.ONLINE


def test_last_will_takes_a_gateway_offline_before_its_window_ends() -> None:
    """The Will (or a goodbye `offline`) flips a fresh gateway at the next tick; the next heartbeat restores it."""
    live = _fleet(devices=2)
    live.heartbeat("gw-a", None, T0)
    live.tick(T0)
    live.will("gw-a", T0 + 1000)
    (event,) = live.tick(T0 + 1001)
    assert (event.kind, event.reason, event.devices) == (EventKind.GATEWAY_OFFLINE, "will", ("dev-00", "dev-01"))
    live.heartbeat("gw-a", None, T0 + 2000)
    assert _kinds(live.tick(T0 + 2001)) == [(EventKind.GATEWAY_ONLINE, "gw-a")]


def test_silent_device_behind_a_live_gateway_goes_stale_once_and_fresh_on_its_next_reading() -> None:
    """A device past its own window raises device_stale once; a new reading raises device_fresh once."""
    live = _fleet(devices=0)
    live.bind("quick", "gw-a", window_ms=10_000)
    live.bind("slow", "gw-a")
    live.heartbeat("gw-a", None, T0)
    live.tick(T0)
    live.device_seen("quick", T0, T0)
    live.device_seen("slow", T0, T0)
    events = []
    for now in (T0 + 5_000, T0 + 10_000, T0 + 15_000, T0 + 20_000):
        live.heartbeat("gw-a", None, now)
        events.append(_kinds(live.tick(now)))
    assert events == [[], [], [(EventKind.DEVICE_STALE, "quick")], []]
    assert live.gateway("gw-a").stale_devices == ("quick",)
    live.device_seen("quick", now + 100, now + 200)
    (fresh,) = live.tick(now + 300)
    assert (fresh.kind, fresh.device, fresh.last_seen_ms) == (EventKind.DEVICE_FRESH, "quick", now + 100)
    assert live.gateway("gw-a").stale_devices == ()


def test_device_stale_event_is_emitted_exactly_once() -> None:
    """Ticking through a device's silence yields one device_stale at the first tick past its window."""
    live = _fleet(devices=1, device_window_ms=10_000)
    live.heartbeat("gw-a", None, T0)
    live.device_seen("dev-00", T0, T0)
    events: list[LivenessEvent] = []
    for now in range(T0, T0 + 60_001, 1_000):
        live.heartbeat("gw-a", None, now)
        events.extend(e for e in live.tick(now) if e.kind is not EventKind.GATEWAY_ONLINE)
    assert [(e.kind, e.device, e.ts_ms) for e in events] == [(EventKind.DEVICE_STALE, "dev-00", T0 + 11_000)]


def test_devices_of_an_offline_gateway_stay_quiet_and_get_a_full_window_after_its_return() -> None:
    """No device events while the gateway is down; after it returns its devices have a whole window to report."""
    live = _fleet(devices=3, device_window_ms=60_000)
    live.heartbeat("gw-a", None, T0)
    live.tick(T0)
    offline_at = T0 + WINDOW + 1
    assert [e.kind for e in live.tick(offline_at)] == [EventKind.GATEWAY_OFFLINE]
    assert live.tick(T0 + 600_000) == []
    back = T0 + 600_000
    live.heartbeat("gw-a", None, back)
    assert [e.kind for e in live.tick(back)] == [EventKind.GATEWAY_ONLINE]
    live.heartbeat("gw-a", None, back + 60_000)
    assert live.tick(back + 60_000) == []
    live.device_seen("dev-00", back + 30_000, back + 60_000)
    live.heartbeat("gw-a", None, back + 60_001)
    stale = live.tick(back + 60_001)
    assert [(e.kind, e.device) for e in stale] == [
        (EventKind.DEVICE_STALE, "dev-01"),
        (EventKind.DEVICE_STALE, "dev-02"),
    ]


def test_retained_heartbeat_counts_from_when_it_was_sent_and_unheard_gateways_are_silent() -> None:
    """An old retained heartbeat does not make a dead gateway look alive; a gateway never heard of raises nothing."""
    live = _fleet(devices=1)
    live.bind("other", "gw-never")
    live.heartbeat("gw-a", None, T0 + 3_600_000, sent_ms=T0)
    (event,) = live.tick(T0 + 3_600_000)
    assert (event.kind, event.gateway, event.last_seen_ms) == (EventKind.GATEWAY_OFFLINE, "gw-a", T0)
    assert live.gateway("gw-never").link is Link.UNKNOWN


def test_unknown_devices_are_counted_and_future_timestamps_clamped() -> None:
    """A reading of an unbound device is counted, not tracked; an event time in the future counts as now."""
    live = _fleet(devices=1)
    live.device_seen("stranger", T0, T0)
    live.device_seen("dev-00", T0 + 10_000_000, T0)
    assert live.unknown_devices == 1
    assert live.device_last_seen("dev-00") == T0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["hb", "will", "tick"]), st.integers(0, 200_000)), max_size=60))
def test_gateway_events_alternate_and_match_the_link(script: list[tuple[str, int]]) -> None:
    """Whatever arrives, a gateway's events alternate online/offline and the last one matches its link."""
    live = _fleet(devices=5)
    now = T0
    seen: list[EventKind] = []
    for action, step in script:
        now += step
        if action == "hb":
            live.heartbeat("gw-a", None, now)
        elif action == "will":
            live.will("gw-a", now)
        seen.extend(e.kind for e in live.tick(now) if e.device is None)
    assert all(a != b for a, b in itertools.pairwise(seen))
    if seen:
        expected = Link.ONLINE if seen[-1] is EventKind.GATEWAY_ONLINE else Link.OFFLINE
        assert live.gateway("gw-a").link is expected
