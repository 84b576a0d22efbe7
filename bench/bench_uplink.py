"""Uplink drain benchmark: a prefilled DurableBuffer -> Uplink -> mosquitto -> a counting subscriber process.

Beside it, in the same run, a baseline: a bare paho-mqtt client publishing the same envelope bytes QoS 1
from memory as fast as it can with the same bounded in-flight window (no buffer, no acks to SQLite).

    .venv/bin/python bench/bench_uplink.py [--readings 200000] [--single 20000] [--window 32]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.buffer import DurableBuffer, FsyncPolicy
from edge_agent.uplink import Uplink, UplinkSettings
from gateway import broker_auth, topics
from gateway.readings import Reading
from gridwatch.broker import free_port

GW = "gw-bench"
T0 = 1_700_000_000_000

# The subscriber runs in its own process so it does not steal the uplink's interpreter; it prints "ready"
# once subscribed, then "<readings> <envelopes> <seconds first to last message>" at `expected` readings.
SUBSCRIBER = """
import sys, time, orjson
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
host, port, expected = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
seen, state = set(), {"n": 0, "first": None, "last": None}
def on_message(client, userdata, msg):
    doc = orjson.loads(msg.payload)
    if doc["seq"] in seen:
        return
    seen.add(doc["seq"])
    state["first"] = state["first"] or time.perf_counter()
    state["n"] += len(doc["readings"])
    if state["n"] >= expected:
        state["last"] = time.perf_counter()
        client.disconnect()
def on_connect(client, userdata, flags, rc, props):
    client.subscribe(sys.argv[4], qos=1)
def on_subscribe(client, userdata, mid, codes, props):
    print("ready", flush=True)
c = paho.Client(paho.CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
c.on_message, c.on_connect, c.on_subscribe = on_message, on_connect, on_subscribe
c.connect(host, port)
c.loop_forever()
print(state["n"], len(seen), state["last"] - state["first"], flush=True)
"""


class Health:
    """No agent around the bench."""

    def health(self) -> dict[str, object]:
        return {}


@contextmanager
def broker(tmp: Path) -> Iterator[int]:
    """Run mosquitto from our shipped config (anonymous) on a free port."""
    port = free_port()
    files = broker_auth.render_config(tmp / "mosquitto", port, auth=False, run_as=pwd.getpwuid(os.getuid()).pw_name)
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    proc = subprocess.Popen([mosquitto, "-c", str(files.config)], stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        yield port
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait()


@contextmanager
def subscriber(port: int, expected: int, topic: str) -> Iterator[subprocess.Popen[str]]:
    """Start the counting subscriber and return once its subscription is surely in place."""
    proc = subprocess.Popen(
        [sys.executable, "-c", SUBSCRIBER, "127.0.0.1", str(port), str(expected), topic],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        raise RuntimeError("subscriber did not subscribe")
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def fill(path: Path, n: int, fsync: FsyncPolicy) -> DurableBuffer:
    buf = DurableBuffer(path, gateway=GW, max_bytes=2 * 1024**3, fsync=fsync)
    chunk = 1000
    for start in range(0, n, chunk):
        rows = [
            Reading(f"dev-{i % 50}", "pm25", float(i), "ug/m3", T0 + i) for i in range(start, min(n, start + chunk))
        ]
        buf.put_readings(rows)
    return buf


async def run_uplink(buf: DurableBuffer, port: int, n: int, items: int, window: int) -> float:
    settings = UplinkSettings(port=port, window=window, batch={"max_items": items})
    uplink = Uplink(settings, buf, GW, Health())
    start = time.perf_counter()
    task = asyncio.create_task(uplink.run())
    # Polling a counter keeps the uplink free of bench hooks; 5 ms is noise against seconds of drain.
    while uplink.counters.acked_items < n:  # noqa: ASYNC110
        await asyncio.sleep(0.005)
    elapsed = time.perf_counter() - start
    task.cancel()
    with suppress(asyncio.CancelledError):
        await task
    return elapsed


def bench_uplink(tmp: Path, port: int, n: int, items: int, window: int, fsync: FsyncPolicy) -> float:
    buf = fill(tmp / f"uplink-{items}-{fsync.value}.db", n, fsync)
    try:
        with subscriber(port, n, topics.telemetry(GW)) as sub:
            elapsed = asyncio.run(run_uplink(buf, port, n, items, window))
            out, _ = sub.communicate(timeout=120)
    finally:
        buf.close()
    got = int(out.split()[0])
    assert got == n, f"subscriber saw {got} of {n} readings"
    return n / elapsed


def payloads(tmp: Path, n: int, items: int) -> list[bytes]:
    """Seal the same envelopes the uplink would send, for the baseline to publish from memory."""
    buf = fill(tmp / f"baseline-{items}.db", n, FsyncPolicy.OFF)
    out: list[bytes] = []
    while batches := buf.next_batches(256, max_items=items, max_bytes=256 * 1024, now_ms=T0):
        out.extend(b.payload for b in batches)
        for b in batches:
            buf.ack(b.seq)
    buf.close()
    return out


def bench_paho(port: int, messages: list[bytes], n: int, window: int) -> float:
    done = threading.Event()
    acked = 0

    def on_publish(client: paho.Client, userdata: object, mid: int, rc: object, props: object) -> None:
        nonlocal acked
        acked += 1
        if acked == len(messages):
            done.set()

    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    client.max_inflight_messages_set(window)
    client.max_queued_messages_set(0)
    client.on_publish = on_publish
    client.connect("127.0.0.1", port)
    sock = client.socket()
    assert isinstance(sock, socket.socket)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client.loop_start()
    with subscriber(port, n, topics.telemetry(GW)) as sub:
        start = time.perf_counter()
        for payload in messages:
            client.publish(topics.telemetry(GW), payload, qos=1)
        done.wait(300)
        elapsed = time.perf_counter() - start
        out, _ = sub.communicate(timeout=120)
    client.disconnect()
    client.loop_stop()
    assert int(out.split()[0]) == n
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=200_000, help="readings for the 1000-per-envelope run")
    parser.add_argument("--single", type=int, default=20_000, help="readings for the one-per-message run")
    parser.add_argument("--window", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name, broker(Path(name)) as port:
        tmp = Path(name)
        print(f"window {args.window}, mosquitto from gateway/mosquitto/mosquitto.conf, {os.cpu_count()} CPUs")
        for items, n in ((1000, args.readings), (1, args.single)):
            base = bench_paho(port, payloads(tmp, n, items), n, args.window)
            print(f"{items:>5} readings/message  {'paho baseline (from memory)':<32}{base:>10,.0f} readings/s")
            for fsync in (FsyncPolicy.FULL, FsyncPolicy.NORMAL):
                rate = bench_uplink(tmp, port, n, items, args.window, fsync)
                label = f"uplink, buffer fsync={fsync.value}"
                print(f"{items:>5} readings/message  {label:<32}{rate:>10,.0f} readings/s")


if __name__ == "__main__":
    main()
