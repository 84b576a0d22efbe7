"""The upstream counter of the bench, as a process: a broker and topic filter in; counts on request out.

    python bench/edge_subscriber.py HOST PORT FILTER

Envelopes on `gw/...` topics are applied once per seq (as the cloud does) and every reading row is
keyed (device, quantity, ts); raw messages on `relay/...` are keyed (topic, t). Reads with the agent's
LeanPaho, so that counting is never the bottleneck. Prints `ready` once subscribed; each `report` line on
stdin prints a JSON line: unique keys, keys seen twice after dedup, seqs received more than once, and
the monotonic time of the last new key.
"""

from __future__ import annotations

import sys
import threading
import time

import orjson
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.uplink import LeanPaho


def main() -> None:
    host, port, pattern = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    seqs: set[int] = set()
    keys: set[tuple[object, ...]] = set()
    state = {"dup_keys": 0, "dup_seqs": 0, "last": 0.0, "messages": 0}
    lock = threading.Lock()
    ready = threading.Event()

    def on_message(client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        doc = orjson.loads(msg.payload)
        with lock:
            state["messages"] += 1
            new: list[tuple[object, ...]]
            if msg.topic.startswith("relay/"):
                new = [(msg.topic, doc["t"])]
            else:
                if doc.get("lane") != "telemetry":
                    return
                if doc["seq"] in seqs:
                    state["dup_seqs"] += 1
                    return
                seqs.add(doc["seq"])
                new = [(row[0], row[1], row[4]) for row in doc["readings"]]
            for key in new:
                if key in keys:
                    state["dup_keys"] += 1
                else:
                    keys.add(key)
                    state["last"] = time.monotonic()

    def on_connect(client: paho.Client, userdata: object, flags: object, rc: object, props: object) -> None:
        client.subscribe(pattern, qos=1)

    def on_subscribe(client: paho.Client, userdata: object, mid: int, codes: object, props: object) -> None:
        ready.set()

    # The counter must not be the bottleneck: plain paho handles one message per select() when it has
    # nothing of its own in flight, which caps a subscriber near 2k messages/s on this machine.
    client = LeanPaho(CallbackAPIVersion.VERSION2, client_id="bench-upstream-counter")
    client.on_message, client.on_connect, client.on_subscribe = on_message, on_connect, on_subscribe
    client.connect(host, port)
    client.loop_start()
    ready.wait(30)
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() == "report":
            with lock:
                out = {"unique": len(keys), "seqs": len(seqs), **state}
            print(orjson.dumps(out).decode(), flush=True)
    client.disconnect()
    client.loop_stop()


if __name__ == "__main__":
    main()
