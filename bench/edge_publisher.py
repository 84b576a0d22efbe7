"""Field sensors for the bench, as a process: rate, seconds and a message offset in; QoS 1 JSON out.

    python bench/edge_publisher.py HOST PORT RATE SECONDS SENSORS OFFSET

Message i (global index OFFSET + k) goes to `sensors/s-{i % SENSORS}/data` as `{"t": T0 + i, "temperature": v}`,
so every (device, event time) is unique across the whole run. Prints one JSON line at the end:
sent, acked, first/last publish and last PUBACK on the shared monotonic clock.

The load generator must not eat the CPU of what it measures: every PUBLISH is encoded before the clock
starts, and the packets due by each 2 ms tick go out in one send() (a client library costs ~100 µs of
Python per message here). The broker's PUBACKs are only counted.
"""

from __future__ import annotations

import socket
import sys
import time

import orjson
from edge_wire import open_session, publish_packet

T0_MS = 1_700_000_000_000
# Packet ids are 16-bit: never have more than this many publishes unacknowledged.
MAX_UNACKED = 60_000
PUBACK_BYTES = 4
# What is due goes out every 2 ms: bursts of 10 at 5k/s, the load of many sensors, a few syscalls per tick.
TICK_S = 0.002


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    rate, seconds, sensors, offset = float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
    total = int(rate * seconds)
    topics = [f"sensors/s-{k}/data".encode() for k in range(sensors)]
    packets = [
        publish_packet(
            topics[(offset + k) % sensors],
            orjson.dumps({"t": T0_MS + offset + k, "temperature": 20.0 + ((offset + k) % 100) / 10}),
            k % 65535 + 1,
        )
        for k in range(total)
    ]
    sock = open_session(host, port, f"bench-pub-{offset}")
    acked_bytes = 0
    last_ack = 0.0
    sent = 0
    start = time.monotonic()
    while sent < total:
        due = min(total, int((time.monotonic() - start) * rate) + 1, acked_bytes // PUBACK_BYTES + MAX_UNACKED)
        if due > sent:
            sock.sendall(b"".join(packets[sent:due]))
            sent = due
        try:
            while data := sock.recv(1 << 16, socket.MSG_DONTWAIT):
                acked_bytes += len(data)
                last_ack = time.monotonic()
        except BlockingIOError:
            pass
        # Pace to the clock in TICK_S steps; a late publisher catches up at once.
        time.sleep(max(TICK_S, start + (sent + 1) / rate - time.monotonic()))
    end = time.monotonic()
    sock.settimeout(300)
    while acked_bytes < total * PUBACK_BYTES:
        data = sock.recv(1 << 16)
        if not data:
            break
        acked_bytes += len(data)
        last_ack = time.monotonic()
    sock.close()
    print(
        orjson.dumps(
            {"sent": total, "acked": acked_bytes // PUBACK_BYTES, "start": start, "end": end, "last_ack": last_ack}
        ).decode(),
        flush=True,
    )


if __name__ == "__main__":
    main()
