"""The seams ingest applies through: gateway directory, alert sink, liveness sink; plus small defaults."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from gateway.alerts import AlertEvent


class GatewayDirectory(Protocol):
    """Which gateways may send; called from the ingest writer thread for every message: keep it cheap."""

    def is_active(self, gateway: str) -> bool:
        """Return True when `gateway` is registered and not revoked."""
        ...


class AlertSink(Protocol):
    """The incident layer's entry; called from the ingest writer thread, never in parallel.

    Called once per applied batch that holds alerts, with every new alerts envelope of the batch in
    arrival order, after their readings are stored and before their seqs are recorded in the ledger. A
    crash between the call and the ledger commit hands the same alerts again, so `handle_batch` must be
    idempotent on (fingerprint, state, ts_ms).
    """

    def handle_batch(self, envelopes: Sequence[tuple[str, Sequence[AlertEvent]]]) -> None:
        """Take the (gateway, alerts) of several envelopes, in order."""
        ...


class LivenessSink(Protocol):
    """Fleet liveness (cloud.fleet.Liveness fits); called on the event loop, never in parallel."""

    def heartbeat(
        self, gateway: str, status: Mapping[str, Any] | None, now: int, *, sent_ms: int | None = None
    ) -> None:
        """Record a status of `gateway` received at `now` (`sent_ms` when the arrival tells no age)."""
        ...

    def will(self, gateway: str, now: int) -> None:
        """Record the gateway's Last Will (`offline`) received at `now`."""
        ...

    def device_seen(self, device: str, ts: int, now: int) -> None:
        """Record the newest reading event time `ts` of `device`, received at `now`."""
        ...


class StaticDirectory:
    """A fixed set of active gateways (tests, benchmarks, single-site setups)."""

    def __init__(self, gateways: Iterable[str]) -> None:
        self.gateways = set(gateways)

    def is_active(self, gateway: str) -> bool:
        """Return True when `gateway` is in the set."""
        return gateway in self.gateways


class CountingAlertSink:
    """The default until the incident layer lands: counts alerts by state, keeps nothing."""

    def __init__(self) -> None:
        self.envelopes = 0
        self.alerts: dict[str, int] = {}

    def handle_batch(self, envelopes: Sequence[tuple[str, Sequence[AlertEvent]]]) -> None:
        """Count the envelopes, and the alerts by state."""
        for _, alerts in envelopes:
            self.envelopes += 1
            for alert in alerts:
                self.alerts[alert.state.value] = self.alerts.get(alert.state.value, 0) + 1


class RecordingAlertSink:
    """Keeps every handed alert in order (tests)."""

    def __init__(self) -> None:
        self.handed: list[tuple[str, AlertEvent]] = []
        self.calls = 0

    def handle_batch(self, envelopes: Sequence[tuple[str, Sequence[AlertEvent]]]) -> None:
        """Append the alerts with their gateway."""
        self.calls += 1
        self.handed.extend((gateway, alert) for gateway, alerts in envelopes for alert in alerts)


class RecordingLiveness:
    """Keeps every liveness call in order (tests; cloud.fleet.Liveness is the real one)."""

    def __init__(self) -> None:
        self.heartbeats: list[tuple[str, Mapping[str, Any] | None, int, int | None]] = []
        self.wills: list[tuple[str, int]] = []
        self.seen: dict[str, int] = {}

    def heartbeat(
        self, gateway: str, status: Mapping[str, Any] | None, now: int, *, sent_ms: int | None = None
    ) -> None:
        """Append the heartbeat."""
        self.heartbeats.append((gateway, status, now, sent_ms))

    def will(self, gateway: str, now: int) -> None:
        """Append the Will."""
        self.wills.append((gateway, now))

    def device_seen(self, device: str, ts: int, now: int) -> None:
        """Keep the newest event time per device."""
        if ts > self.seen.get(device, -1):
            self.seen[device] = ts
