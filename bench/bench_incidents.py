"""Benchmark the case engine on SQLite and PostgreSQL: alerts/s into cases, alert → API latency, memory.

Scenarios (a WAL SQLite file in a temp dir, and a throwaway PostgreSQL server started in a temp dir from
Debian's binaries by tests/support/postgres.py; the bundled district, routing and standards):

- new: every alert is a new device firing → one new auto-dispatched case per alert (the worst case:
  case row, 4 audit rows, key, alert row, routing), in envelopes of `--batch` alerts, handed as ingest
  hands them at saturation: `--per-call` envelopes per `handle_batch` call (one transaction; default: as
  many as fill one ingest chunk), and also one envelope per call (the shape below saturation);
- storm: devices that keep firing and resolving → alerts join or recover existing cases;
- api: alerts handed to the engine (as ingest does) at a paced `--rate` in envelopes of `--api-batch`,
  each envelope's cases polled through the real API (`GET /api/v1/incidents?from=&to=` over
  httpx.ASGITransport against `create_app(service, run_background=False)`, in process, SQLite) until
  visible: p50/p99 alert → visible;
- memory: RSS and database size with `--open` open cases, and the time of scoped list queries on them.

The intake runs use the engine as a cloud process runs it, with the live tap installed (each committed
case and each alert published to the live stream, no subscriber). Each intake run also prints this
process's CPU time per alert (Python and SQLite) and, on PostgreSQL, the
CPU time of the server backend that served it: the measures to compare on a shared machine. The
PostgreSQL server runs with fsync=off and synchronous_commit=off (tests/support/postgres.py): commits
cost no disk flush there, unlike a production server's. Prints a markdown summary table at the end.
Run: .venv/bin/python bench/bench_incidents.py [--alerts 20000] [--batch 100] [--open 100000] [--no-postgres]
(`--open 0 --api-envelopes 0`: the intake runs only)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import resource
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from cloud.api import create_app
from cloud.db import Database
from cloud.incidents.engine import Incidents
from cloud.incidents.store import CaseFilter
from cloud.ingest import IngestSettings
from cloud.live.attach import attach_live
from cloud.service import CloudService, wall_ms
from cloud.settings import CloudSettings
from gateway.alerts import AlertEvent, AlertState, Location
from gateway.contract import Envelope, Lane, encode_envelope
from tests.incidents.incidents_rig import CENTER, DISTRICT, INDEX, T0, WORKER, engine
from tests.support.postgres import running_postgres

GRIDS = [g.code for g in DISTRICT.grids]


def rss_mib() -> float:
    """Return this process's peak RSS in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def alerts_new(n: int, offset: int = 0) -> list[AlertEvent]:
    """Return `n` firing gas alerts of `n` distinct devices spread over every grid."""
    return [
        AlertEvent(
            "gw-1",
            f"dev-{offset + i:07d}",
            "combustible_gas",
            AlertState.FIRING,
            1,
            T0 + i,
            value=30.0,
            location=Location(grid=GRIDS[(offset + i) % len(GRIDS)]),
        )
        for i in range(n)
    ]


def alerts_storm(n: int, devices: int) -> list[AlertEvent]:
    """Return `n` alerts of `devices` devices cycling firing → firing → resolved."""
    states = (AlertState.FIRING, AlertState.FIRING, AlertState.RESOLVED)
    return [
        AlertEvent(
            "gw-1",
            f"storm-{i % devices:05d}",
            "combustible_gas",
            states[(i // devices) % 3],
            1,
            T0 + i,
            value=30.0,
            location=Location(grid=GRIDS[i % len(GRIDS)]),
        )
        for i in range(n)
    ]


def backend_cpu_s(db: Database) -> float | None:
    """Return the CPU seconds used so far by the PostgreSQL backend serving `db` (None for SQLite, or unreadable)."""
    if db.dialect != "postgres":
        return None
    row = db.fetchone("SELECT pg_backend_pid()")
    try:
        # The server runs on this machine (tests/support/postgres.py); schedstat's first field is ns on CPU.
        return int(Path(f"/proc/{row[0] if row else 0}/schedstat").read_text().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        return None


def served(eng: Incidents) -> Incidents:
    """Return the engine with the live tap a cloud process always installs (every committed case and every
    alert is published to the live stream), as the service runs it."""
    attach_live(eng, DISTRICT, wall_ms, locator=INDEX)
    return eng


def ingest_chunk_envelopes(batch: int) -> int:
    """Return how many envelopes of `batch` new-case alerts fill one ingest chunk (`batch_max_bytes`).

    Ingest hands every new alerts envelope of an applied batch to the engine in one `handle_batch` call,
    and an applied batch is every chunk that arrived while the last one was applied. Below saturation that
    is a few envelopes; at saturation calls grow until `receive_maximum` messages are in flight. One full
    chunk (a chunk is cut at `batch_max_bytes`) is the conservative size used here.
    """
    envelope = Envelope(1, "gw-1", 1, Lane.ALERTS, T0, alerts=tuple(alerts_new(batch)))
    return max(1, IngestSettings().batch_max_bytes // len(encode_envelope(envelope)))


def run(label: str, eng_alerts: list[AlertEvent], batch: int, db_url: str | Path, per_call: int = 1) -> float:
    """Feed alerts in envelopes of `batch`, `per_call` envelopes per `handle_batch` call (as ingest hands
    them); print and return alerts/s, print call latency percentiles."""
    db = Database.open(db_url)
    eng = served(engine(db))
    latencies = []
    server0 = backend_cpu_s(db)
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    step = batch * per_call
    for i in range(0, len(eng_alerts), step):
        envelopes = [
            ("gw-1", eng_alerts[j : min(j + batch, i + step)]) for j in range(i, min(i + step, len(eng_alerts)), batch)
        ]
        s = time.perf_counter()
        eng.handle_batch(envelopes)
        latencies.append(time.perf_counter() - s)
    elapsed = time.perf_counter() - t0
    # CPU time of this process (Python and SQLite) and of the PostgreSQL backend serving it: on a shared
    # machine they say more about the code than the wall clock does.
    cpu_us = (time.process_time() - cpu0) / len(eng_alerts) * 1e6
    server1 = backend_cpu_s(db)
    server = (
        f"+ server {(server1 - server0) / len(eng_alerts) * 1e6:.0f} µs  "
        if server0 is not None and server1 is not None
        else ""
    )
    q = statistics.quantiles(latencies, n=100)
    print(
        f"{label:6} {len(eng_alerts):>7} alerts  {len(eng_alerts) / elapsed:>8.0f} alerts/s  "
        f"{cpu_us:.0f} µs CPU/alert {server}"
        f"call of {per_call}×{batch}: p50 {q[49] * 1000:.1f} ms  p99 {q[98] * 1000:.1f} ms  "
        f"cases {eng.count(CENTER)}  {dict(eng.intake.counts)}"
    )
    db.close()
    return len(eng_alerts) / elapsed


async def api_latency(root: Path, rate: float, envelopes: int, batch: int) -> list[float]:
    """Hand paced envelopes of new-case alerts to the engine; return seconds until each is visible via the API."""
    settings = CloudSettings.model_validate(
        {"data_dir": str(root / "cloud"), "ingest_workers": 0, "admin_password": "admin-pw"}
    )
    service = CloudService(settings)
    latencies: list[float] = []
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(service, run_background=False)), base_url="http://gridwatch"
    ) as client:
        token = await client.post("/api/v1/auth/token", data={"username": "admin", "password": "admin-pw"})
        client.headers["Authorization"] = f"Bearer {token.raise_for_status().json()['access_token']}"
        user = {"username": "center", "password": "password-1", "role": "shift_lead", "scope": DISTRICT.code}
        (await client.post("/api/v1/users", json=user)).raise_for_status()
        token = await client.post("/api/v1/auth/token", data={"username": "center", "password": "password-1"})
        client.headers["Authorization"] = f"Bearer {token.raise_for_status().json()['access_token']}"
        t_start = time.perf_counter()
        base = wall_ms() - 60_000
        for n in range(envelopes):
            # Pace on a schedule (not after each envelope), as a steady stream of gateways would arrive.
            await asyncio.sleep(max(0.0, t_start + n * batch / rate - time.perf_counter()))
            alerts = alerts_new(batch, offset=n * batch)
            alerts = [
                AlertEvent(
                    a.gateway,
                    a.device,
                    "cover_tilted",
                    a.state,
                    1,
                    base + n * batch + i,
                    value=a.value,
                    location=a.location,
                )
                for i, a in enumerate(alerts)
            ]
            sent = time.perf_counter()
            service.incidents.handle_batch([("gw-1", alerts)])
            # The envelope is visible when every one of its cases is listed; query its time range.
            params = {"from": base + n * batch, "to": base + (n + 1) * batch, "limit": 1}
            while (await client.get("/api/v1/incidents", params=params)).json()["total"] < batch:
                if time.perf_counter() - sent > 10:
                    raise RuntimeError("cases not visible within 10 s")
            latencies.append(time.perf_counter() - sent)
    service.close()
    return latencies


def memory(open_cases: int, batch: int, db_path: Path) -> tuple[float, float]:
    """Open `open_cases` cases; print RSS, database size, and list-query times; return (peak RSS, db MiB)."""
    before = rss_mib()
    db = Database.open(db_path)
    eng = engine(db)
    t0 = time.perf_counter()
    for i in range(0, open_cases, 1000):
        eng.handle("gw-1", alerts_new(min(1000, open_cases - i), offset=i))
    fill = time.perf_counter() - t0
    size = sum(p.stat().st_size for p in db_path.parent.glob(db_path.name + "*")) / 2**20
    timings = {}
    for name, actor, flt in (
        ("center page", CENTER, CaseFilter(open_only=True)),
        ("grid worker page", WORKER, CaseFilter(open_only=True)),
        ("center count", CENTER, None),
    ):
        s = time.perf_counter()
        for _ in range(20):
            eng.count(actor) if flt is None else eng.cases(actor, flt, limit=50)
        timings[name] = (time.perf_counter() - s) / 20 * 1000
    s = time.perf_counter()
    eng.tick(T0 + 1)
    tick_ms = (time.perf_counter() - s) * 1000
    print(
        f"memory {open_cases} open cases in {fill:.1f} s ({open_cases / fill:.0f}/s): peak RSS {rss_mib():.0f} MiB "
        f"(+{rss_mib() - before:.0f}), db {size:.0f} MiB; "
        + ", ".join(f"{k} {v:.1f} ms" for k, v in timings.items())
        + f"; idle tick {tick_ms:.1f} ms"
    )
    db.close()
    return rss_mib(), size  # peak of the whole process: the runs before may have set it


def pct(values: list[float], q: int) -> float:
    """Return the q-th percentile of `values` in milliseconds."""
    return statistics.quantiles(values, n=100)[q - 1] * 1000


def main() -> None:
    """Parse arguments, run the scenarios and print the summary table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--alerts", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--open", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=500.0, help="paced alerts/s for the API latency run")
    parser.add_argument("--api-batch", type=int, default=10, help="alerts per envelope in the API latency run")
    parser.add_argument("--api-envelopes", type=int, default=300, help="0 skips the API latency run")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument(
        "--per-call",
        type=int,
        default=None,
        help="envelopes per handle_batch call (default: as many as fill one ingest chunk: ingest at saturation)",
    )
    args = parser.parse_args()
    per_call = args.per_call or ingest_chunk_envelopes(args.batch)
    shape = f"{per_call} envelopes of {args.batch} per call"
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="gridwatch-bench-incidents-") as tmp:
        root = Path(tmp)
        print(f"SQLite (WAL, synchronous=NORMAL) in {root}; calls of {shape} (ingest at saturation), and of one")
        sqlite_new = run("new", alerts_new(args.alerts), args.batch, root / "new.db", per_call)
        sqlite_storm = run("storm", alerts_storm(args.alerts, 500), args.batch, root / "storm.db", per_call)
        sqlite_one = run("new", alerts_new(args.alerts), args.batch, root / "one.db")
        rows += [
            (f"alerts/s, new case each (SQLite, {shape})", f"{sqlite_new:,.0f}"),
            (f"alerts/s, storm (SQLite, {shape})", f"{sqlite_storm:,.0f}"),
            (f"alerts/s, new case each (SQLite, one envelope of {args.batch} per call)", f"{sqlite_one:,.0f}"),
        ]
        if not args.no_postgres:
            with running_postgres(root / "pg") as server:
                print(
                    f"PostgreSQL (Debian's server in a temp dir, port {server.port}, fsync=off, synchronous_commit=off)"
                )
                pg_new = run("new", alerts_new(args.alerts), args.batch, server.database(), per_call)
                pg_storm = run("storm", alerts_storm(args.alerts, 500), args.batch, server.database(), per_call)
                pg_one = run("new", alerts_new(args.alerts), args.batch, server.database())
            rows += [
                (f"alerts/s, new case each (PostgreSQL, {shape})", f"{pg_new:,.0f}"),
                (f"alerts/s, storm (PostgreSQL, {shape})", f"{pg_storm:,.0f}"),
                (f"alerts/s, new case each (PostgreSQL, one envelope of {args.batch} per call)", f"{pg_one:,.0f}"),
            ]
        if args.api_envelopes:
            lat = asyncio.run(api_latency(root / "api", args.rate, args.api_envelopes, args.api_batch))
            print(
                f"api    {len(lat)} envelopes of {args.api_batch} at {args.rate:.0f} alerts/s: alert → visible via "
                f"GET /api/v1/incidents (ASGITransport, SQLite) p50 {pct(lat, 50):.1f} ms  p99 {pct(lat, 99):.1f} ms"
            )
            rows.append(
                (
                    f"alert → visible via API at {args.rate:.0f}/s, p50 / p99 (ASGITransport, SQLite)",
                    f"{pct(lat, 50):.1f} / {pct(lat, 99):.1f} ms",
                )
            )
        if args.open:
            peak, size = memory(args.open, args.batch, root / "memory.db")
            rows.append(
                (f"memory with {args.open:,} open cases (SQLite)", f"peak RSS {peak:.0f} MiB, db {size:.0f} MiB")
            )
    print()
    print(
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, SQLite {sqlite_version()}; envelopes of {args.batch} alerts"
    )
    print()
    print("| measure | value |")
    print("| --- | --- |")
    for name, value in rows:
        print(f"| {name} | {value} |")


def sqlite_version() -> str:
    """Return the linked SQLite library version."""
    return sqlite3.sqlite_version


if __name__ == "__main__":
    main()
