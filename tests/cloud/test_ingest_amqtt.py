"""IngestWorker on MQTT 3.1.1 against the embedded amqtt broker: one worker, a plain subscription, exactly once."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Iterable, Sequence
from pathlib import Path

import aiomqtt
import pytest
from pydantic import ValidationError

from cloud.ingest import IngestSettings, IngestWorker, MemoryLedger, RecordingAlertSink, RecordingLiveness
from cloud.ingest import StaticDirectory as Directory
from cloud.store import SeriesStore
from cloud.store.sqlite import SqliteSeriesStore
from gateway import topics
from gateway.aio import cancel_and_wait
from gateway.readings import Reading
from tests.cloud.ingest_rig import GATEWAYS, readings_of, telemetry
from tests.support.mosquitto import Amqtt
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


def settings(broker: Amqtt, **over: object) -> IngestSettings:
    """Return fast-reacting 3.1.1 ingest settings for `broker` (no group: a plain subscription)."""
    base: dict[str, object] = {
        "port": broker.port,
        "protocol": "3.1.1",
        "group": None,
        "username": "ingest",
        "password": "any password: amqtt accepts every client",
        "client_id": "ingest-amqtt",
        "batch_max_delay_s": 0.02,
        "batch_max_bytes": 8000,
        "backoff_initial_s": 0.05,
        "backoff_max_s": 0.5,
    }
    return IngestSettings.model_validate(base | over)


@pytest.fixture
async def amqtt(tmp_path: Path) -> AsyncIterator[Amqtt]:
    """A running embedded amqtt broker on a free loopback port, as the demo runs it: named clients, any password."""
    async with Amqtt(tmp_path / "amqtt", anonymous=False) as broker:
        yield broker


@contextlib.asynccontextmanager
async def running(worker: IngestWorker) -> AsyncIterator[IngestWorker]:
    """Run `worker` for the block, returning once it is subscribed."""
    task = asyncio.create_task(worker.run())
    try:
        async with asyncio.timeout(15):
            await worker.subscribed.wait()
        yield worker
    finally:
        await cancel_and_wait(task)


async def publish(broker: Amqtt, messages: Sequence[tuple[str, bytes]]) -> None:
    """Publish raw payloads QoS 1 over MQTT 3.1.1 from one client, in order."""
    v311 = aiomqtt.ProtocolVersion.V311
    async with aiomqtt.Client(broker.host, broker.port, username="gw-a", protocol=v311, timeout=5) as client:
        for topic, payload in messages:
            await client.publish(topic, payload, qos=1)


async def settled(worker: IngestWorker, messages: int, within_s: float = 20.0) -> None:
    """Wait until the worker has received `messages` messages and applied and acked them all."""
    c = worker.counters
    await eventually(lambda: c.messages >= messages and worker.idle, within_s, f"{messages} messages applied")


def stored(store: SeriesStore, gateway: str, seqs: Iterable[int]) -> list[Reading]:
    """Return what the store holds for the readings of the given envelopes."""
    out: list[Reading] = []
    for device in {r.device for seq in seqs for r in readings_of(gateway, seq)}:
        out += store.readings(device, "pm25", 0, 2**62)
    return sorted(out)


def test_defaults_stay_mqtt5_with_a_shared_group() -> None:
    """Without settings ingest still speaks MQTT 5 in the `ingest` share group, and `protocol: 5` reads as "5"."""
    s = IngestSettings()
    assert (s.protocol, s.group) == ("5", "ingest")
    assert IngestSettings.model_validate({"protocol": 5}).protocol == "5"


def test_a_shared_group_on_mqtt311_is_a_configuration_error_naming_the_key() -> None:
    """3.1.1 has no `$share`: a group with protocol 3.1.1 is refused at load, and the message names `group`."""
    with pytest.raises(ValidationError, match=r"group: shared subscriptions .* need MQTT 5"):
        IngestSettings.model_validate({"protocol": "3.1.1"})
    with pytest.raises(ValidationError, match="group: shared"):
        IngestSettings.model_validate({"protocol": "3.1.1", "group": "ingest"})
    assert IngestSettings.model_validate({"protocol": "3.1.1", "group": None}).group is None


def test_no_group_means_plain_subscriptions() -> None:
    """A worker without a group subscribes `gw/+/...` itself; with one it subscribes `$share/{group}/gw/+/...`."""
    plain = IngestWorker(
        IngestSettings(protocol="3.1.1", group=None),
        SqliteSeriesStore(":memory:"),
        Directory(GATEWAYS),
        RecordingAlertSink(),
        RecordingLiveness(),
        MemoryLedger(),
    )
    assert plain.subscriptions == ["gw/+/alerts", "gw/+/status", "gw/+/telemetry"]
    shared = IngestWorker(
        IngestSettings(),
        SqliteSeriesStore(":memory:"),
        Directory(GATEWAYS),
        RecordingAlertSink(),
        RecordingLiveness(),
        MemoryLedger(),
    )
    assert shared.subscriptions == [
        "$share/ingest/gw/+/alerts",
        "$share/ingest/gw/+/status",
        "$share/ingest/gw/+/telemetry",
    ]


async def test_replays_and_duplicates_apply_once_on_amqtt(amqtt: Amqtt, tmp_path: Path) -> None:
    """Every envelope once, then a shuffled replay with duplicates: each reading is stored once, replays counted."""
    store = SqliteSeriesStore(tmp_path / "series.db")
    worker = IngestWorker(
        settings(amqtt), store, Directory(GATEWAYS), RecordingAlertSink(), RecordingLiveness(), MemoryLedger()
    )
    seqs = list(range(1, 21))
    original = [(topics.telemetry(gw), telemetry(gw, s)) for gw in GATEWAYS for s in seqs]
    replay = original[::2] + original[::3]
    random.Random(11).shuffle(replay)
    async with running(worker):
        await publish(amqtt, original)
        await settled(worker, len(original))
        await publish(amqtt, replay)
        await settled(worker, len(original) + len(replay))
    c = worker.counters
    assert {gw: stored(store, gw, seqs) for gw in GATEWAYS} == {
        gw: sorted(r for s in seqs for r in readings_of(gw, s)) for gw in GATEWAYS
    }
    assert c.envelopes == len(original)
    assert c.duplicates == len(replay)
    assert c.readings == c.readings_new == len(original) * 20
    assert sum(c.rejected.values()) == 0
    store.close()


async def test_persistent_session_keeps_what_arrived_while_the_worker_was_down(amqtt: Amqtt, tmp_path: Path) -> None:
    """With clean_session off, envelopes published while the worker is stopped reach it when it comes back."""
    store = SqliteSeriesStore(tmp_path / "series.db")
    ledger = MemoryLedger()

    def worker() -> IngestWorker:
        return IngestWorker(
            settings(amqtt), store, Directory(GATEWAYS), RecordingAlertSink(), RecordingLiveness(), ledger
        )

    first = worker()
    async with running(first):
        await publish(amqtt, [(topics.telemetry("gw-a"), telemetry("gw-a", s)) for s in range(1, 6)])
        await settled(first, 5)
    await publish(amqtt, [(topics.telemetry("gw-a"), telemetry("gw-a", s)) for s in range(6, 16)])
    second = worker()
    async with running(second):
        await settled(second, 10)
    assert stored(store, "gw-a", range(1, 16)) == sorted(r for s in range(1, 16) for r in readings_of("gw-a", s))
    assert second.counters.envelopes == 10
    store.close()
