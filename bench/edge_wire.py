"""Just enough MQTT 3.1.1 for the bench's load generator and counter: packets in bytes, packets out of bytes.

The publisher and the counting subscriber share two cores with the brokers and the agent they measure, so
they must cost next to nothing per message: they pre-encode QoS 1 PUBLISH packets, send many per
send(), and split whatever one recv() returns into packets without a client library's per-packet work.
Only what the bench needs: CONNECT (clean session), CONNACK, SUBSCRIBE/SUBACK, PUBLISH QoS 0/1, PUBACK.
"""

from __future__ import annotations

import socket
import struct

CONNACK, PUBLISH, PUBACK, SUBACK = 0x20, 0x30, 0x40, 0x90


class WireError(Exception):
    """The broker refused us or sent something the bench does not expect."""


def _remaining(n: int) -> bytes:
    """Encode an MQTT remaining length."""
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _utf8(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("!H", len(raw)) + raw


def connect_packet(client_id: str, keepalive_s: int = 600) -> bytes:
    """Return a CONNECT with a clean session."""
    body = _utf8("MQTT") + bytes([4, 0x02]) + struct.pack("!H", keepalive_s) + _utf8(client_id)
    return bytes([0x10]) + _remaining(len(body)) + body


def publish_packet(topic: str | bytes, payload: bytes, mid: int) -> bytes:
    """Return a QoS 1 PUBLISH with packet id `mid` (1..65535)."""
    raw = topic.encode() if isinstance(topic, str) else topic
    body = struct.pack("!H", len(raw)) + raw + struct.pack("!H", mid) + payload
    return bytes([PUBLISH | 0x02]) + _remaining(len(body)) + body


def subscribe_packet(pattern: str, mid: int = 1) -> bytes:
    """Return a SUBSCRIBE of `pattern` at QoS 1."""
    body = struct.pack("!H", mid) + _utf8(pattern) + b"\x01"
    return bytes([0x82]) + _remaining(len(body)) + body


def puback_packets(mids: list[int]) -> bytes:
    """Return one PUBACK per packet id, concatenated."""
    return b"".join(struct.pack("!BBH", PUBACK, 2, mid) for mid in mids)


def open_session(host: str, port: int, client_id: str) -> socket.socket:
    """Connect, send CONNECT and return the socket once a successful CONNACK came back."""
    sock = socket.create_connection((host, port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(connect_packet(client_id))
    ack = _read_exactly(sock, 4)
    if ack[0] != CONNACK or ack[3] != 0:
        raise WireError(f"connection refused: {ack.hex()}")
    return sock


def _read_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        more = sock.recv(n - len(data))
        if not more:
            raise WireError("broker closed the connection")
        data += more
    return data


class PacketReader:
    """Bytes from recv() in (in any split), whole packets out as (first byte, body)."""

    def __init__(self) -> None:
        self._rest = b""

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """Add `data` and return every packet now complete; a partial one waits for the next feed."""
        buf = self._rest + data if self._rest else data
        out: list[tuple[int, bytes]] = []
        pos, end = 0, len(buf)
        while pos + 2 <= end:
            length, shift, i = 0, 0, pos + 1
            while i < end:
                byte = buf[i]
                length |= (byte & 0x7F) << shift
                i += 1
                if not byte & 0x80:
                    break
                shift += 7
            else:
                break
            if i + length > end:
                break
            out.append((buf[pos], buf[i : i + length]))
            pos = i + length
        self._rest = buf[pos:]
        return out


def split_publish(first: int, body: bytes) -> tuple[bytes, int | None, bytes]:
    """Return (topic, packet id or None for QoS 0, payload) of a PUBLISH body."""
    n = body[0] << 8 | body[1]
    topic = body[2 : 2 + n]
    pos = 2 + n
    mid = None
    if first & 0x06:
        mid = body[pos] << 8 | body[pos + 1]
        pos += 2
    return topic, mid, body[pos:]
