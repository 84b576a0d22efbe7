"""The fleet view: a real agent heartbeat envelope in, per-gateway health with versions, buffer and error rates out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cloud.fleet import Liveness, fleet_view, parse_status
from edge_agent.buffer import DurableBuffer
from edge_agent.uplink import Uplink, UplinkSettings
from gateway.contract import Lane, decode_envelope
from gateway.enrolment import AckStatus, ConfigAck, encode
from gateway.readings import Quality, Reading
from tests.cloud.registry_rig import T0, gnss_device, make_registry


class Health:
    """What the agent's health() reports; decode error counters grow between heartbeats."""

    def __init__(self) -> None:
        self.decode_errors: dict[str, dict[str, int]] = {"gnss-1": {"checksum": 4}}

    def health(self) -> dict[str, Any]:
        """Return the agent-side part of the heartbeat."""
        return {"config_version": "2", "decode_errors": self.decode_errors, "autonomy_h": 12.5}


async def _status(uplink: Uplink) -> dict[str, Any]:
    envelope = decode_envelope(await uplink._heartbeat_payload())
    assert envelope.lane is Lane.STATUS
    assert envelope.status is not None
    return envelope.status


async def test_fleet_view_reads_the_agents_heartbeat(tmp_path: Path) -> None:
    """Versions, buffer depth, autonomy, decode errors and their per-minute rate come from two real heartbeats."""
    registry = make_registry(tmp_path)
    registry.register_gateway("gw-a", "金水区", T0)
    registry.register_gateway("gw-b", "金水区", T0)
    registry.bind_device(gnss_device("gnss-1", "gw-a"), T0)
    registry.bundles.create("gw-a", {}, T0)
    registry.bundles.create("gw-a", {}, T0)
    registry.bundles.record_ack(
        "gw-a", encode(ConfigAck(gateway="gw-a", version=2, status=AckStatus.APPLIED, ts_ms=T0)), T0
    )
    buffer = DurableBuffer(tmp_path / "buffer.db", gateway="gw-a", max_bytes=10**6)
    buffer.put_readings([Reading("gnss-1", "latitude", 34.8, "deg", T0, Quality.GOOD, None)] * 3)
    health = Health()
    uplink = Uplink(UplinkSettings(), buffer, "gw-a", health)
    live = Liveness()
    live.bind_devices(registry.devices())

    live.heartbeat("gw-a", await _status(uplink), T0)
    health.decode_errors = {"gnss-1": {"checksum": 10, "malformed": 4}}
    live.heartbeat("gw-a", await _status(uplink), T0 + 60_000)
    live.tick(T0 + 60_000)
    buffer.close()

    a, b = fleet_view(registry, live)
    assert (a.gateway, a.site, a.link.value, a.last_seen_ms) == ("gw-a", "金水区", "online", T0 + 60_000)
    assert (a.config_version, a.bundle_latest, a.bundle_applied, a.bundle_ack) == ("2", 2, 2, "applied")
    assert a.agent_version is not None
    assert a.buffer_items == 3
    assert a.buffer_bytes is not None
    assert a.buffer_bytes > 0
    assert a.autonomy_h == 12.5
    assert a.decode_errors == {"gnss-1": {"checksum": 10, "malformed": 4}}
    assert a.decode_errors_per_min == {"gnss-1": 10.0}
    assert (a.devices, a.stale_devices) == (1, ())
    assert (b.gateway, b.link.value, b.last_seen_ms, b.buffer_items) == ("gw-b", "unknown", None, None)


def test_parse_status_ignores_mistyped_fields() -> None:
    """A heartbeat with wrong types yields None or empty fields instead of raising."""
    status = parse_status(
        {"agent_version": 3, "buffer": {"depth_items": True, "dropped": {"telemetry": -1}}, "decode_errors": [1]}
    )
    assert (status.agent_version, status.buffer_items, status.dropped, status.decode_errors) == (None, None, {}, {})


def test_error_rate_restarts_with_the_agent() -> None:
    """When uptime goes backwards the new counters are the errors since the restart, not a negative delta."""
    live = Liveness()
    live.heartbeat("gw-a", {"uptime_s": 500.0, "decode_errors": {"d": {"crc": 100}}}, T0)
    live.heartbeat("gw-a", {"uptime_s": 30.0, "decode_errors": {"d": {"crc": 6}}}, T0 + 30_000)
    assert live.gateway("gw-a").decode_errors_per_min == {"d": 12.0}
