"""Admission of one MQTT message: topic, payload and the gateway directory in, a Verdict out (sans-I/O).

Checks, cheapest first: the topic is `gw/{gateway}/{telemetry|alerts|status}`; the gateway is active in
the directory (before decoding, so a flood from a revoked gateway costs the writer no JSON parsing; decoder
processes have no directory and the writer applies `gate` to their verdicts instead); on the status
topic the Last Will payload `offline`; the envelope decodes under the contract (oversize, malformed,
schema_version, invalid); it names its topic's gateway (else spoofed) and its topic's lane. A status
envelope with seq 0 is a live heartbeat: liveness only, never deduplicated. Seq 0 elsewhere is invalid.
"""

from __future__ import annotations

from dataclasses import dataclass

from cloud.ingest.ports import GatewayDirectory
from cloud.store.columns import ReadingColumns, columns_of_lists
from gateway import topics
from gateway.contract import ContractError, Envelope, Lane, decode_envelope, decode_envelope_columns

HEARTBEAT_SEQ = 0
_LANE_OF: dict[topics.Kind, Lane] = {
    topics.Kind.TELEMETRY: Lane.TELEMETRY,
    topics.Kind.ALERTS: Lane.ALERTS,
    topics.Kind.STATUS: Lane.STATUS,
}


@dataclass(frozen=True, slots=True)
class Rejected:
    """Refused: `reason` is a counters.REJECT_REASONS value; `gateway` as named by the topic, if any."""

    reason: str
    gateway: str | None
    detail: str


@dataclass(frozen=True, slots=True)
class Offline:
    """The gateway's Last Will (or its own goodbye) on its status topic."""

    gateway: str


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """A live status envelope (seq 0): liveness only."""

    envelope: Envelope


@dataclass(frozen=True, slots=True)
class Batch:
    """A seq-carrying envelope to apply once: telemetry, alerts, or a buffered status event.

    With `columns` (admit(..., columns=True)) the readings are those columns, `envelope.readings` is empty
    and `newest` maps each device to its newest stamp.
    """

    envelope: Envelope
    columns: ReadingColumns | None = None
    newest: dict[str, int] | None = None


Verdict = Rejected | Offline | Heartbeat | Batch


@dataclass(frozen=True, slots=True)
class Message:
    """One received MQTT message, as decoding and the writer thread need it."""

    topic: str
    payload: bytes
    retained: bool


def admit(
    topic: str, payload: bytes, directory: GatewayDirectory | None, *, max_bytes: int, columns: bool = False
) -> Verdict:
    """Classify one message; never raises on bad input; `columns` gives readings as columns (the fast path).

    Without a `directory` (a decoder process has none) the gateway check is left to `gate`.
    """
    try:
        gateway, kind = topics.parse(topic)
    except topics.TopicError as exc:
        return Rejected("topic", None, str(exc))
    lane = _LANE_OF.get(kind)
    if lane is None:
        return Rejected("topic", gateway, f"ingest does not take {kind.value} messages")
    if directory is not None and not directory.is_active(gateway):
        return _unknown(gateway)
    if lane is Lane.STATUS and payload == topics.OFFLINE:
        return Offline(gateway)
    try:
        if columns:
            envelope, lists = decode_envelope_columns(payload, max_bytes=max_bytes)
        else:
            envelope, lists = decode_envelope(payload, max_bytes=max_bytes), None
    except ContractError as exc:
        return Rejected(exc.reason, gateway, str(exc))
    if envelope.gateway != gateway:
        return Rejected("spoofed", gateway, f"envelope of {envelope.gateway!r} on the topic of {gateway!r}")
    if envelope.lane is not lane:
        return Rejected("lane", gateway, f"a {envelope.lane.value} envelope on the {kind.value} topic")
    if envelope.seq == HEARTBEAT_SEQ:
        if lane is Lane.STATUS:
            return Heartbeat(envelope)
        return Rejected("invalid", gateway, f"seq 0 is reserved for heartbeats, got it on {kind.value}")
    if lists is None:
        return Batch(envelope)
    cols = columns_of_lists(lists)
    return Batch(envelope, cols, cols.newest_per_device())


def gate(verdict: Verdict, directory: GatewayDirectory) -> Verdict:
    """Apply the directory check to a verdict of `admit(..., directory=None)`, as `admit` with one would have."""
    if isinstance(verdict, Rejected):
        if verdict.reason == "topic" or verdict.gateway is None:
            return verdict
        gateway = verdict.gateway
    elif isinstance(verdict, Offline):
        gateway = verdict.gateway
    else:
        gateway = verdict.envelope.gateway
    return verdict if directory.is_active(gateway) else _unknown(gateway)


def _unknown(gateway: str) -> Rejected:
    return Rejected("unknown_gateway", gateway, f"gateway {gateway!r} is not registered or is revoked")
