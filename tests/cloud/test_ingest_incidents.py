"""Ingest hands a backlog of alert envelopes to the real case engine in few calls: each alert counted once."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from cloud.incidents.engine import Incidents
from cloud.ingest import MemoryLedger
from gateway import topics
from gateway.alerts import AlertEvent, AlertState, Location
from gateway.contract import Envelope, Lane, encode_envelope
from tests.cloud.ingest_rig import GATEWAYS
from tests.cloud.test_ingest_worker import Rig, publish, running, settled
from tests.incidents.incidents_rig import CENTER, DISTRICT, T0, engine
from tests.support.mosquitto import Mosquitto

pytestmark = pytest.mark.integration

GRIDS = [g.code for g in DISTRICT.grids]


class Sized:
    """The engine as ingest's AlertSink, noting how many envelopes each call carried."""

    def __init__(self, incidents: Incidents) -> None:
        self.incidents = incidents
        self.calls: list[int] = []

    def handle_batch(self, envelopes: Sequence[tuple[str, Sequence[AlertEvent]]]) -> None:
        """Hand the envelopes on; note the call."""
        self.incidents.handle_batch(envelopes)
        self.calls.append(len(envelopes))


def alerts_of(gateway: str, seq: int) -> list[AlertEvent]:
    """Return envelope `seq` of `gateway`: its devices fire, fire again or resolve as seq goes on."""
    state = (AlertState.FIRING, AlertState.FIRING, AlertState.RESOLVED)[seq % 3]
    return [
        AlertEvent(
            gateway,
            f"{gateway}-gas-{d}",
            "combustible_gas",
            state,
            1,
            T0 + seq * 60_000 + d,
            value=30.0,
            location=Location(grid=GRIDS[d]),
        )
        for d in range(4)
    ]


def wire(gateway: str, seq: int) -> tuple[str, bytes]:
    """Return the topic and bytes of envelope `seq` of `gateway`."""
    envelope = Envelope(1, gateway, seq, Lane.ALERTS, T0 + seq, alerts=tuple(alerts_of(gateway, seq)))
    return topics.alerts(gateway), encode_envelope(envelope)


async def test_a_backlog_becomes_cases_in_few_calls_and_replays_change_nothing(mosquitto_broker: Mosquitto) -> None:
    """A backlog queued for the persistent session is applied in calls of many envelopes, with the cases,
    trails and counts of handing each envelope alone, and its replay after a restart changes nothing."""
    seqs = range(1, 16)
    messages = [wire(gw, s) for s in seqs for gw in GATEWAYS]
    sink = Sized(engine())
    rig = Rig(mosquitto_broker, "ingest-incidents", ledger=MemoryLedger(), alerts=sink, batch_max_bytes=1 << 20)
    async with running(rig):
        pass  # subscribed once: the broker now queues for this persistent session while it is away
    await publish(mosquitto_broker, messages)
    async with running(rig):
        await settled(rig, len(messages))
    reference = engine()
    for gw in GATEWAYS:  # gateways touch disjoint devices and groups: their order between them is free
        for s in seqs:
            reference.handle(gw, alerts_of(gw, s))
    assert outcome(sink.incidents) == outcome(reference)
    # Gas needs a person to close its case: each device has one case, joined by its 10 firings.
    assert [c[3] for c in outcome(reference)] == [10] * len(GATEWAYS) * 4
    assert sink.incidents.intake.counts == reference.intake.counts
    assert max(sink.calls) > 1  # the backlog came in calls of several envelopes
    assert sum(sink.calls) == len(messages)
    await publish(mosquitto_broker, messages)  # a replay: the ledger drops every envelope
    async with running(rig):
        await settled(rig, 2 * len(messages))
    assert outcome(sink.incidents) == outcome(reference)
    assert sum(sink.calls) == len(messages)


def outcome(incidents: Incidents) -> list[tuple[object, ...]]:
    """Return every case's device, times, alert count, state and recovery, sorted (ids differ by order)."""
    return sorted(
        (c.device, c.reported_ms, c.last_alert_ms, c.alert_count, c.state, c.recovered_ms)
        for c in incidents.cases(CENTER, limit=1000)
    )
