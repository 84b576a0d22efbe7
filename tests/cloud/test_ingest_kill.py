"""A SIGKILLed ingest worker process, restarted with its client id, loses nothing, doubles nothing, orphans nothing."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import sys
from pathlib import Path

import aiomqtt
import pytest

from cloud.store.sqlite import SqliteSeriesStore
from gateway import topics
from gateway.alerts import AlertEvent, AlertState
from gateway.contract import Envelope, Lane, encode_envelope
from gateway.readings import Reading
from tests.support.mosquitto import Mosquitto
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

T0 = 1_700_000_000_000
ENVELOPES = 150
PER_ENVELOPE = 20
IN_FLIGHT = 4

# The worker process: real SQLite series store and SQL ledger on files, an idempotent alert table that
# counts how often each alert was handed. Its store write is throttled so the kill lands mid-stream.
CHILD = """
import asyncio, sys, time
from cloud.db import Database
from cloud.ingest import IngestSettings, IngestWorker, RecordingLiveness, SqlLedger, StaticDirectory
from cloud.store.sqlite import SqliteSeriesStore

port, folder, in_flight = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])

class SlowStore(SqliteSeriesStore):
    def write_columns(self, cols):
        time.sleep(0.01)
        return super().write_columns(cols)

class TableAlerts:
    def __init__(self, db):
        self.db = db
        db.execute("CREATE TABLE IF NOT EXISTS alerts (fp TEXT, state TEXT, ts INTEGER, handed INTEGER,"
                   " PRIMARY KEY (fp, state, ts))")
    def handle_batch(self, envelopes):
        with self.db.transaction() as db:
            for a in (a for _, alerts in envelopes for a in alerts):
                db.execute("INSERT INTO alerts VALUES (?, ?, ?, 1) ON CONFLICT DO UPDATE SET handed = handed + 1",
                           (a.fingerprint, a.state.value, a.ts_ms))

async def main():
    db = Database.open(folder + "/cloud.db")
    settings = IngestSettings(port=port, client_id="ingest-k", batch_max_bytes=3000, batch_max_delay_s=0.01,
                              receive_maximum=in_flight, backoff_initial_s=0.05, backoff_max_s=0.5)
    worker = IngestWorker(settings, SlowStore(folder + "/series.db"), StaticDirectory({"gw-a"}),
                          TableAlerts(db), RecordingLiveness(), SqlLedger(db))
    task = asyncio.create_task(worker.run())
    await worker.subscribed.wait()
    print("ready", flush=True)
    await task

asyncio.run(main())
"""


def envelope(seq: int) -> tuple[str, bytes]:
    """Return (topic, bytes) of envelope `seq`: every fifth an alert, the rest telemetry."""
    if seq % 5 == 0:
        alert = AlertEvent("gw-a", "dev-0", "high", AlertState.FIRING, 1, T0 + seq, "pm25", 90.0, 75.0)
        return topics.alerts("gw-a"), encode_envelope(Envelope(1, "gw-a", seq, Lane.ALERTS, T0, alerts=(alert,)))
    rows = tuple(
        Reading(f"dev-{i % 5}", "pm25", seq + i / 100, "ug/m3", T0 + seq * 1000 + i) for i in range(PER_ENVELOPE)
    )
    return topics.telemetry("gw-a"), encode_envelope(Envelope(1, "gw-a", seq, Lane.TELEMETRY, T0, readings=rows))


async def start_child(broker: Mosquitto, folder: Path) -> asyncio.subprocess.Process:
    """Start the worker process and return once it is subscribed."""
    with (folder / "child.log").open("ab") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            CHILD,
            str(broker.port),
            str(folder),
            str(IN_FLIGHT),
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
        )
    assert proc.stdout is not None
    async with asyncio.timeout(20):
        line = await proc.stdout.readline()
    assert line.strip() == b"ready", (folder / "child.log").read_text()
    return proc


def descendants(pid: int) -> set[int]:
    """Return the ids of every living process below `pid` (its fork server and decoder processes)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended while we looked
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier}
        found |= frontier
    return found


def count(folder: Path, sql: str) -> int:
    """Run a count query on the child's database files (0 while the table does not exist yet)."""
    name = "series.db" if "points" in sql else "cloud.db"
    try:
        with sqlite3.connect(folder / name, timeout=5) as db:
            return int(db.execute(sql).fetchone()[0] or 0)
    except sqlite3.OperationalError:
        return 0


async def test_killed_worker_restarts_and_applies_everything_exactly_once(
    mosquitto_broker: Mosquitto, tmp_path: Path
) -> None:
    """SIGKILL while applying, restart with the same client id: every reading stored once, every alert kept once."""
    messages = [envelope(seq) for seq in range(1, ENVELOPES + 1)]
    total = sum(1 for seq in range(1, ENVELOPES + 1) if seq % 5) * PER_ENVELOPE
    first = await start_child(mosquitto_broker, tmp_path)
    async with aiomqtt.Client(mosquitto_broker.host, mosquitto_broker.port, protocol=aiomqtt.ProtocolVersion.V5) as pub:
        for topic, payload in messages:
            await pub.publish(topic, payload, qos=1)
    points = "SELECT count(*) FROM points"
    await eventually(lambda: count(tmp_path, points) >= total // 5, 30, "a fifth of the readings stored")
    helpers = descendants(first.pid)
    assert helpers, "the worker runs decoder processes"
    first.send_signal(signal.SIGKILL)
    await first.wait()
    # Its decoder processes (and their fork server) end with it rather than wait forever for work.
    await eventually(lambda: not any(Path(f"/proc/{pid}").exists() for pid in helpers), 10, "no orphaned decoders")
    at_kill = count(tmp_path, points)
    assert at_kill < total, "the kill landed mid-stream"
    second = await start_child(mosquitto_broker, tmp_path)
    try:
        watermark = "SELECT max(watermark) FROM ingest_watermark"
        await eventually(lambda: count(tmp_path, watermark) == ENVELOPES, 60, "every seq recorded")
    finally:
        second.send_signal(signal.SIGKILL)
        await second.wait()
    with SqliteSeriesStore(tmp_path / "series.db") as store:
        got = sorted(r for d in range(5) for r in store.readings(f"dev-{d}", "pm25", 0, 2**62))
    expected = sorted(
        Reading(f"dev-{i % 5}", "pm25", seq + i / 100, "ug/m3", T0 + seq * 1000 + i)
        for seq in range(1, ENVELOPES + 1)
        if seq % 5
        for i in range(PER_ENVELOPE)
    )
    assert got == expected
    assert count(tmp_path, "SELECT count(*) FROM alerts") == ENVELOPES // 5
    # Only what was in flight at the kill (at most the broker's window of unacked messages) is handed twice.
    assert count(tmp_path, "SELECT sum(handed) - count(*) FROM alerts") <= IN_FLIGHT
    assert count(tmp_path, "SELECT count(*) FROM ingest_applied") == 0
