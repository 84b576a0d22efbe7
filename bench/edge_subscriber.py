"""The upstream counter of the bench, as a process: a broker and topic filter in; counts on request out.

    python bench/edge_subscriber.py HOST PORT FILTER

Envelopes on `gw/...` topics are applied once per seq (as the cloud does) and every reading row is
keyed (device, quantity, ts); raw messages on `relay/...` are keyed (topic, t). Prints `ready` once
subscribed; each `report` line on stdin prints a JSON line: unique keys, keys seen twice after dedup,
seqs received more than once, and the monotonic time of the last new key.

Counting must never be the bottleneck nor take the CPU of what it counts: the socket is read in large
recv() calls, the PUBACKs of one read go out in one send(), and messages are only kept (with their
arrival time) until a report asks; decoding and dedup happen then.
"""

from __future__ import annotations

import os
import selectors
import sys
import time

import orjson
from edge_wire import PUBLISH, SUBACK, PacketReader, open_session, puback_packets, split_publish, subscribe_packet

GATHER_S = 0.002


class Tally:
    """Arrived messages in; unique keys, doubles and the time of the last new key out."""

    def __init__(self) -> None:
        self.pending: list[tuple[bytes, bytes, float]] = []
        self.seqs: set[int] = set()
        self.keys: set[tuple[object, ...]] = set()
        self.state = {"dup_keys": 0, "dup_seqs": 0, "last": 0.0, "messages": 0}

    def settle(self) -> None:
        """Decode and count every message kept since the last call."""
        pending, self.pending = self.pending, []
        state, keys, seqs = self.state, self.keys, self.seqs
        for topic, payload, arrived in pending:
            doc = orjson.loads(payload)
            state["messages"] += 1
            new: list[tuple[object, ...]]
            if topic.startswith(b"relay/"):
                new = [(topic, doc["t"])]
            else:
                if doc.get("lane") != "telemetry":
                    continue
                if doc["seq"] in seqs:
                    state["dup_seqs"] += 1
                    continue
                seqs.add(doc["seq"])
                new = [(row[0], row[1], row[4]) for row in doc["readings"]]
            for key in new:
                if key in keys:
                    state["dup_keys"] += 1
                else:
                    keys.add(key)
                    state["last"] = arrived

    def report(self) -> bytes:
        """Return the counts as a JSON line."""
        self.settle()
        return orjson.dumps({"unique": len(self.keys), "seqs": len(self.seqs), **self.state}) + b"\n"


def main() -> None:
    host, port, pattern = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    sock = open_session(host, port, "bench-upstream-counter")
    sock.sendall(subscribe_packet(pattern))
    reader = PacketReader()
    tally = Tally()
    selector = selectors.DefaultSelector()
    selector.register(sock, selectors.EVENT_READ, "broker")
    stdin = sys.stdin.fileno()
    lines = b""
    while True:
        for key, _ in selector.select():
            if key.data == "stdin":
                data = os.read(stdin, 4096)
                if not data:
                    sock.close()
                    return
                lines += data
                *whole, lines = lines.split(b"\n")
                for line in whole:
                    if line.strip() == b"report":
                        os.write(sys.stdout.fileno(), tally.report())
                continue
            data = sock.recv(1 << 18)
            if not data:
                raise SystemExit("broker closed the connection")
            arrived = time.monotonic()
            mids: list[int] = []
            for first, body in reader.feed(data):
                kind = first & 0xF0
                if kind == PUBLISH:
                    topic, mid, payload = split_publish(first, body)
                    tally.pending.append((topic, payload, arrived))
                    if mid is not None:
                        mids.append(mid)
                elif kind == SUBACK:
                    if body[2] & 0x80:
                        raise SystemExit(f"subscription to {pattern} refused")
                    print("ready", flush=True)
                    selector.register(stdin, selectors.EVENT_READ, "stdin")
            if mids:
                sock.sendall(puback_packets(mids))
            # Let messages gather for a read: one wake-up per few ms, not per message (arrival times are
            # then late by at most this; the broker keeps sending meanwhile, up to its in-flight window).
            time.sleep(GATHER_S)


if __name__ == "__main__":
    main()
