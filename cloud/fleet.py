"""Fleet health: heartbeats, Last Wills and device readings in (time injected); liveness events and a view out.

`Liveness` is sans-I/O. Ingest feeds it `heartbeat` (a status-lane heartbeat's `status` object),
`will` (the retained `offline` payload on `gw/{id}/status`) and `device_seen` (each reading's device
and event time); `tick(now)` returns the transitions since the last tick:

- a gateway whose Will arrived after its last heartbeat, or silent past `heartbeat_window_ms`, goes
  OFFLINE: one `gateway_offline` event listing every device bound to it as unreachable via it;
- its next heartbeat brings it ONLINE: one `gateway_online` event (also for a gateway first heard of
  since this process started, so an offline incident left open by a restart can still resolve);
- a device silent past its own window while its gateway is online goes stale: one `device_stale`;
  its next reading brings one `device_fresh`. Silence counts from the later of its last reading and its
  gateway's return, so a gateway coming back gives its devices a full window to catch up. While a
  gateway is offline its devices raise nothing of their own.

Heartbeat and Will order is arrival order (one topic, one broker), never the gateway clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from cloud.registry import Device, Registry

HEARTBEAT_WINDOW_MS: Final = 90_000  # 3 x the agent's default 30 s heartbeat
DEVICE_WINDOW_MS: Final = 300_000


class EventKind(StrEnum):
    """What changed."""

    GATEWAY_OFFLINE = "gateway_offline"
    GATEWAY_ONLINE = "gateway_online"
    DEVICE_STALE = "device_stale"
    DEVICE_FRESH = "device_fresh"


class Link(StrEnum):
    """A gateway's liveness."""

    UNKNOWN = "unknown"
    ONLINE = "online"
    OFFLINE = "offline"


@dataclass(frozen=True, slots=True)
class LivenessEvent:
    """One liveness transition, the hand-off to the incident layer.

    For gateway events `devices` lists the devices bound to the gateway (unreachable via it when
    offline); for device events `device` names the device. `reason` is `will` or `silent` for
    offline, `heartbeat` for online, `silent` / `reading` for device events.
    """

    kind: EventKind
    gateway: str
    ts_ms: int
    reason: str
    device: str | None = None
    devices: tuple[str, ...] = ()
    last_seen_ms: int | None = None


@dataclass(frozen=True, slots=True)
class HeartbeatStatus:
    """What the fleet view reads from a heartbeat's status object (absent or mistyped fields are None)."""

    agent_version: str | None = None
    config_version: str | None = None
    uptime_s: float | None = None
    buffer_items: int | None = None
    buffer_bytes: int | None = None
    buffer_max_bytes: int | None = None
    autonomy_h: float | None = None
    dropped: dict[str, int] = field(default_factory=dict)
    decode_errors: dict[str, dict[str, int]] = field(default_factory=dict)


def _typed(value: object, kind: type | tuple[type, ...]) -> Any:
    # bool is an int; a heartbeat saying `"buffer": {"depth_items": true}` is not a depth.
    return value if isinstance(value, kind) and not isinstance(value, bool) else None


def _counts(value: object) -> dict[str, int]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): v for k, v in value.items() if type(v) is int and v >= 0}


def parse_status(status: Mapping[str, Any]) -> HeartbeatStatus:
    """Read the fields of edge_agent's heartbeat (uplink `_heartbeat_payload` + agent `health()`)."""
    buffer = status.get("buffer")
    buffer = buffer if isinstance(buffer, Mapping) else {}
    errors = status.get("decode_errors")
    decode_errors = (
        {str(d): _counts(c) for d, c in errors.items() if isinstance(c, Mapping)} if isinstance(errors, Mapping) else {}
    )
    return HeartbeatStatus(
        agent_version=_typed(status.get("agent_version"), str),
        config_version=_typed(status.get("config_version"), str),
        uptime_s=_typed(status.get("uptime_s"), (int, float)),
        buffer_items=_typed(buffer.get("depth_items"), int),
        buffer_bytes=_typed(buffer.get("depth_bytes"), int),
        buffer_max_bytes=_typed(buffer.get("max_bytes"), int),
        autonomy_h=_typed(status.get("autonomy_h"), (int, float)),
        dropped=_counts(buffer.get("dropped")),
        decode_errors=decode_errors,
    )


def _error_rates(
    previous: HeartbeatStatus | None, previous_ms: int | None, current: HeartbeatStatus, now: int
) -> dict[str, float]:
    """Return decode errors per minute per device between two heartbeats (counters reset on restart)."""
    if previous is None or previous_ms is None or now <= previous_ms:
        return {}
    restarted = current.uptime_s is not None and previous.uptime_s is not None and current.uptime_s < previous.uptime_s
    minutes = (now - previous_ms) / 60_000
    rates = {}
    for device, counts in current.decode_errors.items():
        total = sum(counts.values())
        before = 0 if restarted else sum(previous.decode_errors.get(device, {}).values())
        # A counter that went down means the agent restarted between the two heartbeats.
        rates[device] = round((total - before if total >= before else total) / minutes, 3)
    return rates


@dataclass(slots=True)
class _GatewayState:
    link: Link = Link.UNKNOWN
    last_seen_ms: int | None = None
    will_pending: bool = False
    online_since_ms: int | None = None
    status: HeartbeatStatus | None = None
    error_rates: dict[str, float] = field(default_factory=dict)
    devices: set[str] = field(default_factory=set)


@dataclass(slots=True)
class _DeviceState:
    gateway: str
    window_ms: int | None
    last_seen_ms: int | None = None
    stale: bool = False


@dataclass(frozen=True, slots=True)
class GatewayLiveness:
    """A snapshot of one gateway's liveness."""

    gateway: str
    link: Link
    last_seen_ms: int | None
    status: HeartbeatStatus | None
    decode_errors_per_min: dict[str, float]
    devices: tuple[str, ...]
    stale_devices: tuple[str, ...]


class Liveness:
    """Gateway and device liveness with time as input; see the module docstring."""

    def __init__(self, *, heartbeat_window_ms: int = HEARTBEAT_WINDOW_MS, device_window_ms: int = DEVICE_WINDOW_MS):
        self.heartbeat_window_ms = heartbeat_window_ms
        self.device_window_ms = device_window_ms
        self._gateways: dict[str, _GatewayState] = {}
        self._devices: dict[str, _DeviceState] = {}
        self.unknown_devices = 0

    def _gateway(self, gateway: str) -> _GatewayState:
        state = self._gateways.get(gateway)
        if state is None:
            state = self._gateways[gateway] = _GatewayState()
        return state

    def bind(self, device: str, gateway: str, window_ms: int | None = None) -> None:
        """Bind a device to the gateway it is reached through (rebinding moves it)."""
        old = self._devices.get(device)
        if old is not None:
            self._gateway(old.gateway).devices.discard(device)
        state = _DeviceState(gateway, window_ms)
        if old is not None:
            state.last_seen_ms, state.stale = old.last_seen_ms, old.stale
        self._devices[device] = state
        self._gateway(gateway).devices.add(device)

    def bind_devices(self, devices: Iterable[Device]) -> None:
        """Bind registry devices with their own windows."""
        for device in devices:
            self.bind(device.id, device.gateway, device.stale_after_ms)

    def unbind(self, device: str) -> None:
        """Forget a device."""
        state = self._devices.pop(device, None)
        if state is not None:
            self._gateway(state.gateway).devices.discard(device)

    def heartbeat(
        self, gateway: str, status: Mapping[str, Any] | None, now: int, *, sent_ms: int | None = None
    ) -> None:
        """Record a heartbeat received at `now`; pass `sent_ms` for a retained one, whose arrival tells no age."""
        state = self._gateway(gateway)
        seen = now if sent_ms is None else min(now, sent_ms)
        state.will_pending = False
        if status is not None:
            parsed = parse_status(status)
            state.error_rates = _error_rates(state.status, state.last_seen_ms, parsed, seen)
            state.status = parsed
        state.last_seen_ms = max(seen, state.last_seen_ms or seen)

    def will(self, gateway: str, now: int) -> None:
        """Record the gateway's Last Will (or its own `offline` goodbye) received at `now`."""
        self._gateway(gateway).will_pending = True

    def device_seen(self, device: str, ts: int, now: int) -> None:
        """Record a reading of `device` with event time `ts` received at `now` (future times count as now)."""
        state = self._devices.get(device)
        if state is None:
            self.unknown_devices += 1
            return
        seen = min(ts, now)
        if state.last_seen_ms is None or seen > state.last_seen_ms:
            state.last_seen_ms = seen

    def _alive(self, state: _GatewayState, now: int) -> bool:
        return (
            not state.will_pending
            and state.last_seen_ms is not None
            and now - state.last_seen_ms <= self.heartbeat_window_ms
        )

    def tick(self, now: int) -> list[LivenessEvent]:
        """Return the transitions at `now`: gateway events first, then device events, each sorted by id."""
        events: list[LivenessEvent] = []
        device_events: list[LivenessEvent] = []
        for gateway in sorted(self._gateways):
            state = self._gateways[gateway]
            if state.last_seen_ms is None and not state.will_pending:
                continue  # never heard of since start: neither online nor offline
            alive = self._alive(state, now)
            devices = tuple(sorted(state.devices))
            if alive and state.link is not Link.ONLINE:
                state.link, state.online_since_ms = Link.ONLINE, now
                events.append(
                    LivenessEvent(
                        EventKind.GATEWAY_ONLINE,
                        gateway,
                        now,
                        "heartbeat",
                        devices=devices,
                        last_seen_ms=state.last_seen_ms,
                    )
                )
            elif not alive and state.link is not Link.OFFLINE:
                state.link = Link.OFFLINE
                events.append(
                    LivenessEvent(
                        EventKind.GATEWAY_OFFLINE,
                        gateway,
                        now,
                        "will" if state.will_pending else "silent",
                        devices=devices,
                        last_seen_ms=state.last_seen_ms,
                    )
                )
            if state.link is Link.ONLINE:
                device_events.extend(self._device_events(gateway, devices, state, now))
        return events + device_events

    def _device_events(
        self, gateway: str, devices: tuple[str, ...], state: _GatewayState, now: int
    ) -> list[LivenessEvent]:
        events = []
        since = state.online_since_ms if state.online_since_ms is not None else now
        for device in devices:
            dev = self._devices[device]
            window = dev.window_ms if dev.window_ms is not None else self.device_window_ms
            reference = since if dev.last_seen_ms is None else max(dev.last_seen_ms, since)
            silent = now - reference > window
            if silent and not dev.stale:
                dev.stale = True
                events.append(
                    LivenessEvent(
                        EventKind.DEVICE_STALE, gateway, now, "silent", device=device, last_seen_ms=dev.last_seen_ms
                    )
                )
            elif not silent and dev.stale and dev.last_seen_ms is not None and dev.last_seen_ms >= since:
                dev.stale = False
                events.append(
                    LivenessEvent(
                        EventKind.DEVICE_FRESH, gateway, now, "reading", device=device, last_seen_ms=dev.last_seen_ms
                    )
                )
        return events

    def gateway(self, gateway: str) -> GatewayLiveness:
        """Return a snapshot of one gateway (UNKNOWN if never heard of)."""
        state = self._gateways.get(gateway) or _GatewayState()
        devices = tuple(sorted(state.devices))
        return GatewayLiveness(
            gateway=gateway,
            link=state.link,
            last_seen_ms=state.last_seen_ms,
            status=state.status,
            decode_errors_per_min=dict(state.error_rates),
            devices=devices,
            stale_devices=tuple(d for d in devices if self._devices[d].stale),
        )

    def device_last_seen(self, device: str) -> int | None:
        """Return the event time of a device's newest reading, or None."""
        state = self._devices.get(device)
        return None if state is None else state.last_seen_ms


@dataclass(frozen=True, slots=True)
class GatewayHealth:
    """One row of the fleet view."""

    gateway: str
    name: str
    site: str
    registry_state: str
    link: Link
    last_seen_ms: int | None
    agent_version: str | None
    config_version: str | None
    bundle_latest: int | None
    bundle_applied: int | None
    bundle_ack: str | None
    bundle_error: str | None
    buffer_items: int | None
    buffer_bytes: int | None
    autonomy_h: float | None
    dropped: dict[str, int]
    decode_errors: dict[str, dict[str, int]]
    decode_errors_per_min: dict[str, float]
    devices: int
    stale_devices: tuple[str, ...]


def fleet_view(registry: Registry, liveness: Liveness) -> list[GatewayHealth]:
    """Return one health row per registered gateway, by id."""
    rows = []
    for gw in registry.gateways():
        live = liveness.gateway(gw.id)
        status = live.status or HeartbeatStatus()
        latest = registry.bundles.latest(gw.id)
        applied = registry.bundles.applied(gw.id)
        rows.append(
            GatewayHealth(
                gateway=gw.id,
                name=gw.name,
                site=gw.site,
                registry_state=gw.state,
                link=live.link,
                last_seen_ms=live.last_seen_ms,
                agent_version=status.agent_version or gw.agent_version,
                config_version=status.config_version,
                bundle_latest=None if latest is None else latest.bundle.version,
                bundle_applied=None if applied is None else applied.bundle.version,
                bundle_ack=None if latest is None or latest.ack_status is None else latest.ack_status.value,
                bundle_error=None if latest is None else latest.ack_error,
                buffer_items=status.buffer_items,
                buffer_bytes=status.buffer_bytes,
                autonomy_h=status.autonomy_h,
                dropped=status.dropped,
                decode_errors=status.decode_errors,
                decode_errors_per_min=live.decode_errors_per_min,
                devices=len(registry.devices(gw.id)),
                stale_devices=live.stale_devices,
            )
        )
    return rows
