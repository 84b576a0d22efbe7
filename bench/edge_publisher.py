"""Field sensors for the bench, as a process: rate, seconds and a message offset in; QoS 1 JSON out.

    python bench/edge_publisher.py HOST PORT RATE SECONDS SENSORS OFFSET

Message i (global index OFFSET + k) goes to `sensors/s-{i % SENSORS}/data` as `{"t": T0 + i, "temperature": v}`,
so every (device, event time) is unique across the whole run. Prints one JSON line at the end:
sent, first/last publish and last PUBACK on the shared monotonic clock.
"""

from __future__ import annotations

import socket
import sys
import threading
import time

import orjson
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

T0_MS = 1_700_000_000_000


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    rate, seconds, sensors, offset = float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
    total = int(rate * seconds)
    acked = threading.Event()
    state = {"acks": 0, "last_ack": 0.0}

    def on_publish(client: paho.Client, userdata: object, mid: int, rc: object, props: object) -> None:
        state["acks"] += 1
        if state["acks"] == total:
            state["last_ack"] = time.monotonic()
            acked.set()

    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{offset}")
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.on_publish = on_publish
    client.connect(host, port)
    sock = client.socket()
    assert isinstance(sock, socket.socket)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client.loop_start()
    topics = [f"sensors/s-{k}/data" for k in range(sensors)]
    start = time.monotonic()
    for k in range(total):
        i = offset + k
        payload = orjson.dumps({"t": T0_MS + i, "temperature": 20.0 + (i % 100) / 10})
        client.publish(topics[i % sensors], payload, qos=1)
        # Pace to the clock in ~1 ms steps; a late publisher catches up at once.
        ahead = start + (k + 1) / rate - time.monotonic()
        if ahead > 0.001:
            time.sleep(ahead)
    end = time.monotonic()
    if total:
        acked.wait(300)
    client.disconnect()
    client.loop_stop()
    print(
        orjson.dumps(
            {"sent": total, "acked": state["acks"], "start": start, "end": end, "last_ack": state["last_ack"]}
        ).decode(),
        flush=True,
    )


if __name__ == "__main__":
    main()
