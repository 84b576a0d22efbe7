"""Alert events of one rule on one device: a transition, event time and value in, an AlertEvent out."""

from __future__ import annotations

from gateway.alerts import AlertEvent, AlertState, Location


class Emitter:
    """The fixed part of every event one rule on one device emits."""

    __slots__ = ("device", "gateway", "location", "quantity", "rule")

    def __init__(self, gateway: str, device: str, rule: str, quantity: str | None, location: Location | None) -> None:
        self.gateway = gateway
        self.device = device
        self.rule = rule
        self.quantity = quantity
        self.location = location

    def event(
        self,
        state: AlertState,
        severity: int,
        ts_ms: int,
        value: float | None,
        threshold: float | None,
        location: Location | None = None,
    ) -> AlertEvent:
        """Build the event for a transition at event time `ts_ms`."""
        return AlertEvent(
            gateway=self.gateway,
            device=self.device,
            rule=self.rule,
            state=state,
            severity=severity,
            ts_ms=ts_ms,
            quantity=self.quantity,
            value=value,
            threshold=threshold,
            location=self.location if location is None else location,
        )
