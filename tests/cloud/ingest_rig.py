"""Envelopes for the ingest tests on either broker: readings unique to (gateway, seq), as wire bytes."""

from __future__ import annotations

from typing import Final

from gateway.contract import Envelope, Lane, encode_envelope
from gateway.readings import Reading

T0: Final = 1_700_000_000_000
GATEWAYS: Final = ("gw-a", "gw-b")


def readings_of(gateway: str, seq: int, n: int = 20) -> tuple[Reading, ...]:
    """Return `n` readings unique to (gateway, seq): one device per gateway, a time slot per seq."""
    return tuple(
        Reading(f"{gateway}-d{i % 4}", "pm25", seq * 100.0 + i, "ug/m3", T0 + seq * 1000 + i) for i in range(n)
    )


def telemetry(gateway: str, seq: int, n: int = 20) -> bytes:
    """Return the wire bytes of a telemetry envelope."""
    return encode_envelope(Envelope(1, gateway, seq, Lane.TELEMETRY, T0 + seq, readings=readings_of(gateway, seq, n)))
