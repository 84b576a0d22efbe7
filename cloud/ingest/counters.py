"""Ingest counters: outcomes in, Prometheus-style samples (name, labels, value) out."""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Final

# Rejection reasons, each a label value of gridwatch_ingest_rejected_total.
REJECT_REASONS: Final = (
    "malformed",  # not JSON, or not an envelope object (gateway.contract)
    "oversize",  # over max_envelope_bytes
    "schema_version",  # an envelope version this cloud does not speak
    "invalid",  # a field breaks the contract
    "topic",  # not gw/{gateway}/{telemetry|alerts|status}
    "unknown_gateway",  # not registered, or revoked
    "spoofed",  # the envelope names another gateway than its topic
    "lane",  # the envelope's lane is not its topic's kind
)
LAG_WINDOW: Final = 10_000

Sample = tuple[str, dict[str, str], float]


@dataclass(slots=True)
class Lag:
    """Seal-to-stored lag of applied envelopes (now - envelope sent_ms), in ms; quantiles of the recent ones."""

    count: int = 0
    sum_ms: int = 0
    recent: deque[int] = field(default_factory=lambda: deque(maxlen=LAG_WINDOW))

    def observe(self, lag_ms: int) -> None:
        """Add one observation."""
        self.count += 1
        self.sum_ms += lag_ms
        self.recent.append(lag_ms)

    def quantile(self, q: float) -> float | None:
        """Return the q-quantile (nearest rank) of the last LAG_WINDOW observations, or None."""
        if not self.recent:
            return None
        ordered = sorted(self.recent)
        return float(ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))])


@dataclass(slots=True)
class IngestCounters:
    """What one ingest worker did since it started; read by /metrics, written only by the worker."""

    messages: int = 0
    envelopes: int = 0  # applied (first time seen)
    duplicates: int = 0  # envelopes already applied, dropped by the ledger
    readings: int = 0  # readings of applied envelopes, handed to the store
    readings_new: int = 0  # of those, what the store reported new (a replay after a crash adds 0)
    alerts: int = 0
    heartbeats: int = 0
    wills: int = 0
    status_events: int = 0  # buffered status-lane envelopes with a real seq
    batches: int = 0
    apply_errors: int = 0
    connects: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    edge_dropped: Counter[str] = field(default_factory=Counter)  # by lane, as reported by the gateways
    lag: Lag = field(default_factory=Lag)

    def samples(self) -> list[Sample]:
        """Return Prometheus-style samples: counters `_total`, rejections by reason, lag summary."""
        out: list[Sample] = [
            (f"gridwatch_ingest_{name}_total", {}, float(getattr(self, name)))
            for name in (
                "messages",
                "envelopes",
                "duplicates",
                "readings",
                "readings_new",
                "alerts",
                "heartbeats",
                "wills",
                "status_events",
                "batches",
                "apply_errors",
                "connects",
            )
        ]
        out += [("gridwatch_ingest_rejected_total", {"reason": r}, float(self.rejected[r])) for r in REJECT_REASONS]
        out += [
            ("gridwatch_ingest_edge_dropped_total", {"lane": lane}, float(n))
            for lane, n in sorted(self.edge_dropped.items())
        ]
        for q in (0.5, 0.99):
            value = self.lag.quantile(q)
            if value is not None:
                out.append(("gridwatch_ingest_lag_ms", {"quantile": str(q)}, value))
        out.append(("gridwatch_ingest_lag_ms_count", {}, float(self.lag.count)))
        out.append(("gridwatch_ingest_lag_ms_sum", {}, float(self.lag.sum_ms)))
        return out
