"""End-to-end ingest benchmark: N gateways -> mosquitto -> IngestWorker -> SQLite, beside its ceilings.

Publisher: a separate process with one paho client per simulated gateway, publishing QoS 1 envelopes of
1000 readings (wire bytes built with gateway.contract; `sent_ms` stamped at publish time, so the
worker's lag is publish-to-stored), gateways interleaved, as fast as it can or paced at a set rate.

Measured in the same run:
  ceiling A  a subscriber that only counts messages (aiomqtt, same shared-subscription topics, no decode);
  ceiling B  SQLite bulk-inserting the same rows into the store's own WITHOUT ROWID schema, one
             transaction per batch, the faster of two bare ways: executemany of pre-built tuples, and
             multi-row INSERTs (the store's statement) of pre-built, pre-sorted parameters; beside them
             SqliteSeriesStore.write of the decoded
             readings (its conversion and rollups included), and SqliteSeriesStore.write_columns of
             the decoded columns (ingest's path); the ceiling uses the store's own PRAGMAS;
  parts      decode_envelope and the decode to columns (ingest's path) alone on the same payloads;
  ingest     IngestWorker with SqliteSeriesStore, SqlLedger (SQLite) and cloud.fleet.Liveness, saturated
             (readings/s, from the publisher's go to the last reading applied and acked, and the CPU
             time per reading of this process, event loop + writer thread, and of the decoder processes;
             the publisher runs apart), the same with decoding in the writer thread (decode_processes 0,
             the baseline of the decoder processes), and paced (p50/p99 publish-to-stored lag at an
             offered rate below saturation).
Wall rates move with the machine's load; CPU us per reading and the ratios within one run are steadier.

    .venv/bin/python bench/bench_ingest.py [--gateways 20] [--per-gateway 50] [--batch 1048576] [--paced 0]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import socket
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from cloud.db import Database
from cloud.fleet import Liveness
from cloud.ingest import CountingAlertSink, IngestSettings, IngestWorker, SqlLedger, StaticDirectory
from cloud.store.columns import columns_of_lists, concat
from cloud.store.sqlite import PRAGMAS, ROWS_PER_INSERT, SCHEMA, SqliteSeriesStore, insert_points_sql
from gateway import topics
from gateway.aio import cancel_and_wait
from gateway.contract import Lane, assemble_envelope, decode_envelope, decode_envelope_columns, encode_reading
from gateway.readings import Reading
from gridwatch.broker import Mosquitto

T0 = 1_700_000_000_000
PER_ENVELOPE = 1000
DEVICES = 100  # per gateway; each envelope holds 10 one-second readings of each


def gateway_ids(n: int) -> list[str]:
    """Return the simulated gateway ids."""
    return [f"gw-{g:03d}" for g in range(n)]


def readings(gateway: str, seq: int) -> list[Reading]:
    """Return the 1000 readings of envelope `seq` of `gateway`."""
    base = (seq - 1) * (PER_ENVELOPE // DEVICES)
    return [
        Reading(
            f"{gateway}-d{i % DEVICES:03d}",
            "pm25",
            20.0 + (seq * 7 + i) % 500 / 10,
            "ug/m3",
            T0 + (base + i // DEVICES) * 1000,
        )
        for i in range(PER_ENVELOPE)
    ]


def rows_blob(gateway: str, seq: int) -> bytes:
    """Return the envelope's reading rows already joined, so a publish only wraps them."""
    return b",".join(encode_reading(r) for r in readings(gateway, seq))


def envelope(gateway: str, seq: int, blob: bytes, sent_ms: int) -> bytes:
    """Return envelope bytes around pre-joined rows."""
    return assemble_envelope(gateway=gateway, seq=seq, lane=Lane.TELEMETRY, sent_ms=sent_ms, reading_rows=[blob])


def connected_clients(port: int, gws: list[str], total: int) -> tuple[dict[str, paho.Client], threading.Event]:
    """Connect one QoS 1 paho client per gateway (TCP_NODELAY, 32 in flight); return them and an event set
    once `total` PUBACKs have arrived over all of them."""
    acked = 0
    lock, done = threading.Lock(), threading.Event()

    def on_publish(client: paho.Client, userdata: object, mid: int, rc: object, props: object) -> None:
        nonlocal acked
        with lock:
            acked += 1
            if acked == total:
                done.set()

    clients = {}
    for gw in gws:
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{gw}", protocol=paho.MQTTv5)
        client.max_inflight_messages_set(32)
        client.max_queued_messages_set(0)
        client.on_publish = on_publish
        client.connect("127.0.0.1", port)
        sock = client.socket()
        assert isinstance(sock, socket.socket)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client.loop_start()
        clients[gw] = client
    return clients, done


def disconnect_all(clients: dict[str, paho.Client]) -> None:
    """Disconnect the clients and stop their network threads."""
    for client in clients.values():
        client.disconnect()
        client.loop_stop()


def publisher(port: int, n_gateways: int, per_gateway: int, rate: float) -> None:
    """Subprocess body: connect one client per gateway, wait for `go`, publish, print seconds to all PUBACKs."""
    gws = gateway_ids(n_gateways)
    blobs = {(gw, s): rows_blob(gw, s) for gw in gws for s in range(1, per_gateway + 1)}
    clients, done = connected_clients(port, gws, len(blobs))
    print("ready", flush=True)
    sys.stdin.readline()
    start = time.perf_counter()
    k = 0
    for s in range(1, per_gateway + 1):
        for gw in gws:
            if rate:
                # Paced: envelope k leaves at k * 1000 / rate seconds (a bench, so sleeping is the point).
                delay = start + k * PER_ENVELOPE / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            clients[gw].publish(topics.telemetry(gw), envelope(gw, s, blobs[gw, s], time.time_ns() // 1_000_000), qos=1)
            k += 1
    done.wait(600)
    print(f"{time.perf_counter() - start:.6f}", flush=True)
    disconnect_all(clients)


@contextlib.asynccontextmanager
async def publishing(
    port: int, n_gateways: int, per_gateway: int, rate: float = 0.0, *, script: str = __file__
) -> AsyncIterator[asyncio.subprocess.Process]:
    """Start a connected publisher process (`script --publisher port gateways per-gateway rate`); the caller
    writes `go` to start it."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        script,
        "--publisher",
        str(port),
        str(n_gateways),
        str(per_gateway),
        str(rate),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    assert proc.stdin is not None
    if (await proc.stdout.readline()).strip() != b"ready":
        raise RuntimeError("publisher did not start")
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def go(proc: asyncio.subprocess.Process) -> float:
    """Tell the publisher to start; return the perf_counter at that moment."""
    assert proc.stdin is not None
    proc.stdin.write(b"go\n")
    await proc.stdin.drain()
    return time.perf_counter()


async def count_ceiling(port: int, n_gateways: int, per_gateway: int) -> float:
    """Return readings/s of a subscriber that only counts messages (1000 readings each)."""
    total = n_gateways * per_gateway
    async with aiomqtt.Client("127.0.0.1", port, identifier="bench-count", protocol=aiomqtt.ProtocolVersion.V5) as sub:
        for kind in (topics.Kind.TELEMETRY, topics.Kind.ALERTS, topics.Kind.STATUS):
            await sub.subscribe(topics.shared("count", topics.any_gateway(kind)), qos=1)
        async with publishing(port, n_gateways, per_gateway) as pub:
            start = await go(pub)
            seen = 0
            async for _ in sub.messages:
                seen += 1
                if seen == total:
                    break
            return total * PER_ENVELOPE / (time.perf_counter() - start)


async def ingest_run(
    port: int,
    folder: Path,
    label: str,
    n_gateways: int,
    per_gateway: int,
    batch: int,
    delay: float,
    rate: float,
    decoders: int | None = None,
) -> tuple[float, float, float, IngestWorker]:
    """Run one IngestWorker over a fresh SQLite store and ledger.

    Return readings/s, CPU us/reading in this process and in the decoder processes, and the worker.
    """
    total = n_gateways * per_gateway * PER_ENVELOPE
    gws = gateway_ids(n_gateways)
    liveness = Liveness()
    for gw in gws:
        for d in range(DEVICES):
            liveness.bind(f"{gw}-d{d:03d}", gw)
    store = SqliteSeriesStore(folder / f"{label}-series.db")
    db = Database.open(folder / f"{label}-cloud.db")
    # One share group per run: mosquitto keeps sharing to a disconnected persistent member of a group.
    settings = IngestSettings(
        port=port,
        group=f"bench-{label}",
        client_id=f"bench-{label}",
        batch_max_bytes=batch,
        batch_max_delay_s=delay,
        decode_processes=decoders,
    )
    worker = IngestWorker(settings, store, StaticDirectory(gws), CountingAlertSink(), liveness, SqlLedger(db))
    try:
        async with running(worker), publishing(port, n_gateways, per_gateway, rate) as pub:
            decoders = worker.decoder_pids
            cpu, decode_cpu = time.process_time(), cpu_of(decoders)
            start = await go(pub)
            # Polling a counter keeps the worker free of bench hooks; 2 ms is noise against seconds.
            while not (worker.counters.readings >= total and worker.idle):  # noqa: ASYNC110
                await asyncio.sleep(0.002)
            store.flush()  # the worker is idle; its deferred rollup work counts too
            elapsed = time.perf_counter() - start
            cpu, decode_cpu = time.process_time() - cpu, cpu_of(decoders) - decode_cpu
    finally:
        store.close()
        db.close()
    assert worker.counters.readings_new == total, worker.counters
    return total / elapsed, cpu / total * 1e6, decode_cpu / total * 1e6, worker


@contextlib.asynccontextmanager
async def running(worker: IngestWorker) -> AsyncIterator[IngestWorker]:
    """Run `worker` as a task for the block, from its first subscription; stop it for sure after."""
    task = asyncio.create_task(worker.run())
    try:
        await worker.subscribed.wait()
        yield worker
    finally:
        await cancel_and_wait(task)


def cpu_of(pids: list[int]) -> float:
    """Return the CPU seconds (user + system) the processes have used so far."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of proc(5))
    return total / tick


def multi_row_ceiling(path: Path, rows: list[tuple[int, int, float, int]], batch: int) -> tuple[float, float]:
    """Return readings/s and CPU us/row of bare multi-row INSERTs (the store's statement) of pre-sorted rows."""
    db = sqlite3.connect(path, isolation_level=None)
    for pragma in PRAGMAS:
        db.execute(pragma)
    db.executescript(SCHEMA)
    # Parameters built, sorted by (series, ts) and cut beforehand: only SQLite's work is timed.
    flats = [
        list(itertools.chain.from_iterable((sid, ts, value) for sid, ts, value, _ in sorted(rows[i : i + batch])))
        for i in range(0, len(rows), batch)
    ]
    step = ROWS_PER_INSERT * 3
    t, cpu = time.perf_counter(), time.process_time()
    for flat in flats:
        db.execute("BEGIN IMMEDIATE")
        full = len(flat) - len(flat) % step
        for at in range(0, full, step):
            db.execute(insert_points_sql(ROWS_PER_INSERT, 3), flat[at : at + step])
        if full < len(flat):
            db.execute(insert_points_sql((len(flat) - full) // 3, 3), flat[full:])
        db.execute("COMMIT")
    rate = len(rows) / (time.perf_counter() - t)
    cpu_us = (time.process_time() - cpu) / len(rows) * 1e6
    db.close()
    return rate, cpu_us


def sqlite_ceiling(folder: Path, n_gateways: int, per_gateway: int, batch: int) -> dict[str, float]:
    # `batch` is in readings here: the saturated worker's mean batch.
    """Return readings/s of the decoders alone, of bare executemany of the same rows, and of the store writes."""
    gws = gateway_ids(n_gateways)
    payloads = [envelope(gw, s, rows_blob(gw, s), T0) for s in range(1, per_gateway + 1) for gw in gws]
    total = len(payloads) * PER_ENVELOPE
    t = time.perf_counter()
    decoded = [r for p in payloads for r in decode_envelope(p).readings]
    decode_rate = total / (time.perf_counter() - t)
    t = time.perf_counter()
    columns = [columns_of_lists(decode_envelope_columns(p)[1]) for p in payloads]
    columns_rate = total / (time.perf_counter() - t)
    series: dict[tuple[str, str], int] = {}
    rows = [(series.setdefault((r.device, r.quantity), len(series) + 1), r.ts_ms, r.value, 0) for r in decoded]
    db = sqlite3.connect(folder / "ceiling.db", isolation_level=None)
    for pragma in PRAGMAS:  # the store's own settings, so the ceiling moves with them
        db.execute(pragma)
    db.executescript(SCHEMA)
    t, cpu = time.perf_counter(), time.process_time()
    for i in range(0, total, batch):
        db.execute("BEGIN IMMEDIATE")
        db.executemany(insert_points_sql(1, 4), rows[i : i + batch])
        db.execute("COMMIT")
    raw_rate = total / (time.perf_counter() - t)
    raw_cpu = (time.process_time() - cpu) / total * 1e6
    db.close()
    multi_rate, multi_cpu = multi_row_ceiling(folder / "ceiling-multi.db", rows, batch)
    with SqliteSeriesStore(folder / "store-ceiling.db") as store:
        t = time.perf_counter()
        for i in range(0, total, batch):
            store.write(decoded[i : i + batch])
        store.flush()  # the rollup work the writes deferred is part of their cost
        store_rate = total / (time.perf_counter() - t)
    with SqliteSeriesStore(folder / "store-rows-ceiling.db") as store:
        t = time.perf_counter()
        per_batch = max(1, batch // PER_ENVELOPE)
        for i in range(0, len(columns), per_batch):
            store.write_columns(concat(columns[i : i + per_batch]))
        store.flush()
        store_columns_rate = total / (time.perf_counter() - t)
    return {
        "decode": decode_rate,
        "decode_columns": columns_rate,
        "raw": raw_rate,
        "raw_cpu_us": raw_cpu,
        "multi": multi_rate,
        "multi_cpu_us": multi_cpu,
        "store": store_rate,
        "store_columns": store_columns_rate,
    }


async def main(args: argparse.Namespace) -> None:
    n, per, batch, delay = args.gateways, args.per_gateway, args.batch, args.delay
    total = n * per * PER_ENVELOPE
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        folder = Path(tmp)
        async with Mosquitto(folder / "mosquitto") as broker:
            count_rate = await count_ceiling(broker.port, n, per)
            inline = await ingest_run(broker.port, folder, "inline", n, per, batch, delay, 0.0, decoders=0)
            rate, cpu_us, decode_us, worker = await ingest_run(
                broker.port, folder, "saturated", n, per, batch, delay, 0.0, decoders=args.decoders
            )
            saturated_lag = (worker.counters.lag.quantile(0.5), worker.counters.lag.quantile(0.99))
            batches = worker.counters.batches
            # Latency is only meaningful below saturation: offer half of what the saturated run achieved.
            offered = args.paced or rate / 2
            paced_rate, _, _, paced = await ingest_run(
                broker.port, folder, "paced", n, per, batch, delay, offered, decoders=args.decoders
            )
        # The ceiling writes batches as large as the saturated worker's were on average (the byte limit is
        # only checked between flushes, so under a backlog a batch grows up to receive_maximum envelopes).
        per_batch = max(PER_ENVELOPE, total // max(1, batches) // PER_ENVELOPE * PER_ENVELOPE)
        parts = sqlite_ceiling(folder, n, per, per_batch)
    # Ceiling B is the faster of the two bare ways to bulk-insert the same rows.
    raw_rate = max(parts["raw"], parts["multi"])
    print(
        f"{n} gateways x {per} envelopes x {PER_ENVELOPE} readings = {total} readings; "
        f"batch {batch} bytes, delay {delay}s; ceiling batches of {per_batch} readings"
    )
    print(
        f"ceiling A  counting subscriber      {count_rate:>10,.0f} readings/s  ({count_rate / PER_ENVELOPE:,.0f} msg/s)"
    )
    for label, key in (("SQLite bare executemany  ", "raw"), ("multi-row INSERTs, sorted", "multi")):
        head = "ceiling B " if key == "raw" else " " * 10
        print(f"{head} {label} {parts[key]:>10,.0f} readings/s  ({parts[key + '_cpu_us']:.2f} us CPU/row)")
    print(f"           SqliteSeriesStore.write   {parts['store']:>10,.0f} readings/s  (Reading objects)")
    print(f"           .write_columns            {parts['store_columns']:>10,.0f} readings/s  (ingest's path)")
    print(f"parts      decode_envelope           {parts['decode']:>10,.0f} readings/s")
    print(f"           decode to columns         {parts['decode_columns']:>10,.0f} readings/s  (ingest's path)")
    print(
        f"ingest     saturated                 {rate:>10,.0f} readings/s  "
        f"= {rate / raw_rate:.0%} of SQLite, "
        f"{rate / count_rate:.0%} of counting; "
        f"CPU/reading {cpu_us:.2f} us in the writer's process + {decode_us:.2f} us in decoder processes; "
        f"{batches} batches; "
        f"lag p50 {saturated_lag[0]} ms, p99 {saturated_lag[1]} ms (backlog)"
    )
    print(
        f"ingest     decoding in the writer    {inline[0]:>10,.0f} readings/s  "
        f"(decode_processes 0; decoder processes give {rate / inline[0]:.2f}x); CPU/reading {inline[1]:.2f} us"
    )
    print(
        f"ingest     paced at {offered:,.0f}/s         {paced_rate:>10,.0f} readings/s  "
        f"lag p50 {paced.counters.lag.quantile(0.5)} ms, p99 {paced.counters.lag.quantile(0.99)} ms"
    )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--publisher":
        publisher(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]))
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gateways", type=int, default=20)
    parser.add_argument("--per-gateway", type=int, default=50, help="envelopes per gateway")
    parser.add_argument("--batch", type=int, default=1024 * 1024, help="ingest batch_max_bytes")
    parser.add_argument("--delay", type=float, default=0.05, help="ingest batch_max_delay_s")
    parser.add_argument("--decoders", type=int, default=None, help="decode_processes (default: the worker's auto)")
    parser.add_argument(
        "--paced", type=float, default=0, help="offered readings/s of the latency run (0: half the saturated rate)"
    )
    asyncio.run(main(parser.parse_args()))
