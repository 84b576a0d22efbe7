"""End to end: alert envelopes → mosquitto → IngestWorker → case engine, on SQLite and on PostgreSQL.

A publisher process (one paho client per gateway, QoS 1) sends envelopes of `--batch` firing alerts of
new devices (one new auto-dispatched case each, the worst case), gateways interleaved, as fast as it can.
One IngestWorker with the default settings (decoder processes, 1 MiB / 50 ms chunks, receive maximum
256) applies them and hands each applied batch's alerts envelopes to the engine (with the live tap, as
a cloud process runs it) in one `handle_batch` call. Measured: alerts/s from the publisher's go to the
last case committed and its messages acknowledged, the alerts per `handle_batch` call (how far ingest's
batches grow at saturation), and CPU per alert of this process (event loop, writer thread), of the
decoder processes and, on PostgreSQL, of the server backend that served the engine. mosquitto, the
publisher, the decoder processes and PostgreSQL share the machine's cores with the worker.

    .venv/bin/python bench/bench_incidents_ingest.py [--gateways 10] [--per-gateway 40] [--batch 100]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


from bench.bench_incidents import GRIDS, backend_cpu_s, served
from bench.bench_ingest import connected_clients, cpu_of, disconnect_all, gateway_ids, go, publishing, running
from cloud.db import Database
from cloud.fleet import Liveness
from cloud.incidents.engine import Incidents
from cloud.ingest import IngestSettings, IngestWorker, SqlLedger, StaticDirectory
from cloud.store.sqlite import SqliteSeriesStore
from gateway import topics
from gateway.alerts import AlertEvent, AlertState, Location
from gateway.contract import Envelope, Lane, encode_envelope
from gridwatch.broker import Mosquitto
from tests.incidents.incidents_rig import CENTER, T0, engine
from tests.support.postgres import running_postgres


def alert_envelope(gateway: str, seq: int, batch: int, sent_ms: int) -> bytes:
    """Return the bytes of envelope `seq` of `gateway`: `batch` firing gas alerts of new devices."""
    first = (seq - 1) * batch
    alerts = tuple(
        AlertEvent(
            gateway,
            f"{gateway}-dev-{first + i:06d}",
            "combustible_gas",
            AlertState.FIRING,
            1,
            T0 + first + i,
            value=30.0,
            location=Location(grid=GRIDS[(first + i) % len(GRIDS)]),
        )
        for i in range(batch)
    )
    return encode_envelope(Envelope(1, gateway, seq, Lane.ALERTS, sent_ms, alerts=alerts))


def publisher(port: int, n_gateways: int, per_gateway: int) -> None:
    """Subprocess body: connect one client per gateway, wait for `go`, publish, print seconds to all PUBACKs."""
    gws = gateway_ids(n_gateways)
    batch = int(os.environ["BENCH_ALERTS_PER_ENVELOPE"])
    payloads = {(gw, s): alert_envelope(gw, s, batch, 0) for gw in gws for s in range(1, per_gateway + 1)}
    clients, done = connected_clients(port, gws, len(payloads))
    print("ready", flush=True)
    sys.stdin.readline()
    start = time.perf_counter()
    for s in range(1, per_gateway + 1):
        for gw in gws:
            clients[gw].publish(topics.alerts(gw), payloads[gw, s], qos=1)
    done.wait(600)
    print(f"{time.perf_counter() - start:.6f}", flush=True)
    disconnect_all(clients)


class SizedSink:
    """The engine as ingest's AlertSink, noting how many alerts each call carries."""

    def __init__(self, incidents: Incidents) -> None:
        self.incidents = incidents
        self.sizes: list[int] = []

    def handle_batch(self, envelopes: Sequence[tuple[str, Sequence[AlertEvent]]]) -> None:
        """Hand the envelopes to the engine; note the call's size once it is committed."""
        self.incidents.handle_batch(envelopes)
        self.sizes.append(sum(len(alerts) for _, alerts in envelopes))


async def run(port: int, folder: Path, label: str, db_url: str | Path, args: argparse.Namespace) -> float:
    """Run one IngestWorker feeding a fresh engine on `db_url`; print and return alerts/s."""
    total = args.gateways * args.per_gateway * args.batch
    gws = gateway_ids(args.gateways)
    db = Database.open(db_url)
    sink = SizedSink(served(engine(db)))
    store = SqliteSeriesStore(folder / f"{label}-series.db")
    ledger_db = Database.open(folder / f"{label}-ledger.db")
    settings = IngestSettings(port=port, group=f"bench-{label}", client_id=f"bench-{label}")
    worker = IngestWorker(settings, store, StaticDirectory(gws), sink, Liveness(), SqlLedger(ledger_db))
    os.environ["BENCH_ALERTS_PER_ENVELOPE"] = str(args.batch)  # the publisher process inherits it
    try:
        async with running(worker), publishing(port, args.gateways, args.per_gateway, script=__file__) as pub:
            decoders = worker.decoder_pids
            cpu, decode_cpu, server = time.process_time(), cpu_of(decoders), backend_cpu_s(db)
            start = await go(pub)
            # Polling a counter keeps the worker free of bench hooks; 2 ms is noise against seconds.
            while not (sum(sink.sizes) >= total and worker.idle):  # noqa: ASYNC110
                await asyncio.sleep(0.002)
            elapsed = time.perf_counter() - start
            cpu, decode_cpu = time.process_time() - cpu, cpu_of(decoders) - decode_cpu
            server_after = backend_cpu_s(db)
    finally:
        store.close()
        ledger_db.close()
    cases = sink.incidents.count(CENTER)
    db.close()
    assert cases == total, (cases, total)
    per = f"{cpu / total * 1e6:.0f} µs CPU/alert + decoders {decode_cpu / total * 1e6:.0f} µs"
    if server is not None and server_after is not None:
        per += f" + server {(server_after - server) / total * 1e6:.0f} µs"
    sizes = sink.sizes
    print(
        f"{label:10} {total} alerts → {cases} cases  {total / elapsed:>7.0f} alerts/s  {per}  "
        f"alerts per call: {len(sizes)} calls, median {statistics.median(sizes):.0f}, max {max(sizes)}"
    )
    return total / elapsed


async def main(args: argparse.Namespace) -> None:
    """Start mosquitto; run SQLite then PostgreSQL; print the summary table."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="gridwatch-bench-incidents-ingest-") as tmp:
        folder = Path(tmp)
        async with Mosquitto(folder / "mosquitto") as broker:
            rows.append(("SQLite", await run(broker.port, folder, "sqlite", folder / "cases.db", args)))
            if not args.no_postgres:
                with running_postgres(folder / "pg") as server:
                    rows.append(("PostgreSQL", await run(broker.port, folder, "postgres", server.database(), args)))
    print()
    print(f"{args.gateways} gateways × {args.per_gateway} envelopes of {args.batch} new-case alerts")
    print()
    print("| engine | alerts/s end to end |")
    print("| --- | --- |")
    for name, rate in rows:
        print(f"| {name} | {rate:,.0f} |")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--publisher":
        publisher(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
    else:
        parser = argparse.ArgumentParser(description=__doc__)
        parser.add_argument("--gateways", type=int, default=10)
        parser.add_argument("--per-gateway", type=int, default=40)
        parser.add_argument("--batch", type=int, default=100)
        parser.add_argument("--no-postgres", action="store_true")
        asyncio.run(main(parser.parse_args()))
