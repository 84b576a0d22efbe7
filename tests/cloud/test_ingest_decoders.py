"""Decoding off the writer: the same verdicts from decoder processes, gated later; a killed decoder loses nothing."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import orjson
import pytest

from cloud.ingest import StaticDirectory
from cloud.ingest.admit import Batch, Message, admit, gate
from cloud.ingest.apply import decode_messages
from cloud.ingest.decoders import DecoderPool
from cloud.store.sqlite import SqliteSeriesStore
from gateway import topics
from gateway.contract import Envelope, Lane, encode_envelope
from tests.cloud.ingest_rig import T0, readings_of, telemetry
from tests.cloud.test_ingest_worker import Rig, publish, running, settled, stored
from tests.support.mosquitto import Mosquitto
from tests.support.waiting import eventually

DIRECTORY = StaticDirectory({"gw-a", "gw-b"})
GOOD = telemetry("gw-a", 1)
MESSAGES = [
    Message(topics.telemetry("gw-a"), GOOD, False),
    Message(topics.telemetry("gw-a"), b"{not json", False),
    Message(topics.telemetry("gw-a"), orjson.dumps({**orjson.loads(GOOD), "v": 2}), False),
    Message(topics.telemetry("gw-a"), GOOD.replace(b'"ug/m3"', b'"furlongs"', 1), False),
    Message(topics.telemetry("gw-a"), telemetry("gw-a", 2, n=400), False),  # oversize at 8 kB
    Message(topics.telemetry("gw-x"), telemetry("gw-x", 1), False),  # not in the directory
    Message(topics.telemetry("gw-x"), b"{not json", False),  # unknown gateway wins over malformed
    Message(topics.telemetry("gw-b"), GOOD, False),  # spoofed
    Message(topics.alerts("gw-a"), GOOD, False),  # wrong lane
    Message(topics.status("gw-a"), topics.OFFLINE, True),
    Message(topics.status("gw-x"), topics.OFFLINE, False),
    Message(topics.status("gw-a"), encode_envelope(Envelope(1, "gw-a", 0, Lane.STATUS, T0, status={})), True),
    Message("gw/gw-a/telemetry/extra", GOOD, False),
    Message(topics.config_ack("gw-a"), b"ack", False),
]


@pytest.mark.parametrize("columns", [False, True])
def test_gating_after_decoding_gives_the_verdict_admit_gives(columns: bool) -> None:
    """Decoding without the directory and gating afterwards yields exactly admit's verdict, reason for reason."""
    for m in MESSAGES:
        late = gate(admit(m.topic, m.payload, None, max_bytes=8192, columns=columns), DIRECTORY)
        assert late == admit(m.topic, m.payload, DIRECTORY, max_bytes=8192, columns=columns), m.topic


def test_columns_carry_the_envelopes_readings() -> None:
    """A telemetry verdict with columns holds the envelope's readings and each device's newest stamp."""
    verdict = admit(MESSAGES[0].topic, GOOD, DIRECTORY, max_bytes=8192, columns=True)
    assert isinstance(verdict, Batch)
    assert verdict.columns is not None
    expected = readings_of("gw-a", 1)
    assert verdict.columns.rows() == [
        [r.device, r.quantity, r.value, r.unit, r.ts_ms, r.quality.value, None] for r in expected
    ]
    assert verdict.newest == {d: max(r.ts_ms for r in expected if r.device == d) for d in {r.device for r in expected}}


@pytest.mark.parametrize("columns", [False, True])
async def test_a_decoder_process_returns_what_the_writer_thread_would(columns: bool) -> None:
    """Verdicts decoded in a real decoder process equal those decoded in this process, in order."""
    pool = DecoderPool(1, max_bytes=8192, columns=columns)
    try:
        await pool.start()
        assert await pool.decode(MESSAGES) == decode_messages(MESSAGES, max_bytes=8192, columns=columns)
    finally:
        pool.close()


@pytest.mark.integration
async def test_a_killed_decoder_process_is_replaced_and_nothing_is_lost(
    mosquitto_broker: Mosquitto, tmp_path: Path
) -> None:
    """SIGKILL of the decoder process fails one batch unacked; a new decoder applies every reading once."""
    store = SqliteSeriesStore(tmp_path / "series.db")
    rig = Rig(mosquitto_broker, store=store, decode_processes=1)
    first = [(topics.telemetry("gw-a"), telemetry("gw-a", s)) for s in range(1, 11)]
    second = [(topics.telemetry("gw-a"), telemetry("gw-a", s)) for s in range(11, 21)]
    async with running(rig):
        await publish(mosquitto_broker, first)
        await settled(rig, len(first))
        (victim,) = rig.worker.decoder_pids
        os.kill(victim, signal.SIGKILL)
        await eventually(lambda: not Path(f"/proc/{victim}").exists(), 10, "the decoder process gone")
        await publish(mosquitto_broker, second)
        await settled(rig, len(first) + len(second))
        assert rig.worker.decoder_pids not in ([], [victim])
    c = rig.worker.counters
    assert (c.apply_errors, c.connects) == (1, 2)
    assert stored(store, "gw-a", range(1, 21)) == sorted(r for s in range(1, 21) for r in readings_of("gw-a", s))
    assert c.envelopes == 20
    assert c.readings_new == c.readings == 20 * 20
    store.close()
