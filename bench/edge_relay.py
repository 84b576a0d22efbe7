"""The bare paho relay of the bench, as a process: field broker in, upstream broker out, no buffer.

    python bench/edge_relay.py FIELD_PORT UPSTREAM_PORT

Subscribes to `sensors/+/data` QoS 1 on the field broker and republishes each message QoS 1 to
`relay/<topic>` upstream (paho acknowledges the field side at once). Prints `ready` once subscribed.
"""

from __future__ import annotations

import socket
import sys
import threading

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion


def nodelay(client: paho.Client) -> None:
    sock = client.socket()
    assert isinstance(sock, socket.socket)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def main() -> None:
    field_port, upstream_port = int(sys.argv[1]), int(sys.argv[2])
    ready = threading.Event()
    upstream = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-relay-up")
    upstream.max_inflight_messages_set(256)
    upstream.max_queued_messages_set(0)
    upstream.connect("127.0.0.1", upstream_port)
    nodelay(upstream)
    upstream.loop_start()

    def on_message(client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        upstream.publish("relay/" + msg.topic, msg.payload, qos=1)

    def on_connect(client: paho.Client, userdata: object, flags: object, rc: object, props: object) -> None:
        client.subscribe("sensors/+/data", qos=1)

    def on_subscribe(client: paho.Client, userdata: object, mid: int, codes: object, props: object) -> None:
        ready.set()

    field = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-relay-field")
    field.on_message, field.on_connect, field.on_subscribe = on_message, on_connect, on_subscribe
    field.connect("127.0.0.1", field_port)
    nodelay(field)
    field.loop_start()
    ready.wait(30)
    print("ready", flush=True)
    sys.stdin.read()
    field.loop_stop()
    upstream.loop_stop()


if __name__ == "__main__":
    main()
