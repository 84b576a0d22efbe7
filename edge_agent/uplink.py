"""The MQTT uplink: sealed buffer batches in, QoS 1 publishes out, each batch acked in the buffer on PUBACK.

Delivery (DESIGN "nothing lost, nothing doubled"):

- Every batch the buffer seals is published QoS 1 to `gw/{gateway}/{lane}` (the lane value is the topic
  kind), never retained. Up to `window` publishes are unacknowledged at once; a batch is acked in the
  buffer only after its PUBACK carries a success reason code. MQTT 5 is used because with 3.1.1 a
  broker that refuses a publish (ACL) still PUBACKs it and the data would be deleted unsent.
- A session is clean (clean start, no session expiry): the durable buffer *is* the session. After a
  reconnect the buffer hands back its sealed-but-unacked batches first, with the same seq and bytes,
  and the cloud drops what it already applied by (gateway, seq). A persistent broker session would
  only duplicate that state in the broker and cost it memory per gateway.
- Liveness is not buffered: on connect and every `heartbeat_s` the uplink publishes a retained STATUS
  envelope with seq 0 (never a buffer seq) whose `status` object is `{"state": "online", ...health}`
  on `gw/{gateway}/status`; the Last Will on the same topic is the retained `b"offline"`. A replayed
  old heartbeat would be a lie, so heartbeats are only ever live. STATUS-lane batches from the buffer
  (events that must not be lost) go to the same topic, not retained, with real seqs.
- Batches are sealed when max_items or max_bytes are pending, or when pending data has waited
  max_age_s, so a trickle still goes out; the producer wakes the sender with `notify()`.
- The link is retried forever with jittered capped backoff; one log line when it goes, one when it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import socket
import struct
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Literal, Protocol, runtime_checkable

import aiomqtt
import orjson
import paho.mqtt.client as paho
from paho.mqtt.enums import LogLevel, MQTTErrorCode
from paho.mqtt.exception import MalformedPacket
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from pydantic import BaseModel, ConfigDict, Field, SecretStr

import edge_agent
from edge_agent.buffer import GROUP_COMMIT_S
from gateway import topics
from gateway.backoff import Backoff
from gateway.contract import Lane, assemble_envelope
from gateway.mqtt import MqttVersion, session_args
from gateway.tls import TlsSettings

log = logging.getLogger(__name__)

# Bytes taken from the socket per recv(): a window of PUBACKs or a burst of sensor messages in one call.
_READ_BYTES = 256 * 1024
# recv() calls per readable event at most, so that a busy broker cannot starve the event loop.
_RECVS_PER_EVENT = 8
# The reason codes a PUBACK may carry, built once (paho builds a ReasonCode and Properties per packet).
_PUBACK_REASONS: dict[int, ReasonCode] = {
    code: ReasonCode(PacketTypes.PUBACK, identifier=code)
    for code, names in ReasonCode(PacketTypes.PUBACK).names.items()
    if any(PacketTypes.PUBACK in packets for packets in names.values())
}
_NO_PROPERTIES = Properties(PacketTypes.PUBACK)  # type: ignore[no-untyped-call]
_U16 = struct.Struct("!H")
# Jobs that may seal at most this many rows run on the event loop's thread (see Uplink._exchange).
_INLINE_ROWS = 256
# Heartbeats are not buffer batches; seq 0 is never issued by the buffer, so ingest cannot confuse them.
HEARTBEAT_SEQ = 0


class UplinkError(Exception):
    """The uplink could not deliver; the run loop reconnects with backoff."""


class PublishRejected(UplinkError):
    """The broker answered a publish with a failure reason code (e.g. 0x87 Not authorized)."""

    def __init__(self, topic: str, reason: ReasonCode) -> None:
        super().__init__(f"broker rejected publish to {topic}: {reason} (0x{reason.value:02x})")
        self.topic = topic
        self.reason = reason


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BatchSettings(_Strict):
    """When a batch is sealed: at max_items, at max_bytes, or when pending data is max_age_s old."""

    max_items: int = Field(default=1000, ge=1)
    max_bytes: int = Field(default=256 * 1024, ge=1024, le=1024 * 1024)
    max_age_s: float = Field(default=2.0, gt=0)


class UplinkSettings(_Strict):
    """How the gateway reaches its broker; embedded in the agent configuration as `uplink`."""

    host: str = "127.0.0.1"
    port: int = Field(default=1883, gt=0, lt=65536)
    # Defaults to the gateway id: a second agent with the same id takes the session over (and is logged).
    client_id: str | None = None
    username: str | None = None
    password: SecretStr | None = None
    tls: TlsSettings | None = None
    # "5" by default: a refused publish comes back as a failed PUBACK instead of being deleted unsent.
    # "3.1.1" only for brokers without MQTT 5 (the demo's embedded amqtt, which refuses nothing).
    protocol: MqttVersion = "5"
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    # Unacknowledged publishes at once. Must not exceed the broker's Receive Maximum (our mosquitto.conf:
    # max_inflight_messages 256; EMQX default 32); paho also keys in-flight messages by a 16-bit mid.
    window: int = Field(default=32, ge=1, le=1024)
    batch: BatchSettings = BatchSettings()
    heartbeat_s: float = Field(default=30.0, gt=0)
    backoff_initial_s: float = Field(default=0.5, gt=0)
    backoff_max_s: float = Field(default=30.0, gt=0)
    # A PUBACK later than this means a dead link that keepalive has not noticed yet: reconnect.
    publish_timeout_s: float = Field(default=30.0, gt=0)
    # CONNACK wait; aiomqtt ignores a socket that dies before CONNACK, so this bounds a stuck connect.
    connect_timeout_s: float = Field(default=10.0, gt=0)


class BatchLike(Protocol):
    """What the uplink reads from a sealed buffer batch."""

    @property
    def seq(self) -> int: ...
    @property
    def lane(self) -> str: ...
    @property
    def payload(self) -> bytes: ...
    @property
    def items(self) -> int: ...
    @property
    def nbytes(self) -> int: ...


class StatsLike(Protocol):
    """What the uplink reads from buffer stats (the whole object also goes into the heartbeat)."""

    @property
    def depth_items(self) -> int: ...
    @property
    def depth_bytes(self) -> int: ...
    @property
    def ingress_bytes(self) -> int: ...
    @property
    def sealed_unacked(self) -> int: ...


class UplinkBuffer(Protocol):
    """The buffer seam as the uplink uses it; edge_agent.buffer.DurableBuffer implements it.

    Called only from the uplink's task, never in parallel.
    """

    def next_batches(self, max_batches: int, *, max_items: int, max_bytes: int, now_ms: int) -> Sequence[BatchLike]: ...
    def ack(self, seq: int) -> Any: ...
    def stats(self) -> StatsLike: ...
    def autonomy_hours(self, ingress_bytes_per_s: float) -> float | None: ...


@runtime_checkable
class BatchAcker(Protocol):
    """Optional buffer capability: forget many PUBACKed batches in one transaction (one fsync)."""

    def ack_many(self, seqs: Sequence[int]) -> Any: ...


@runtime_checkable
class AckSealer(Protocol):
    """Optional buffer capability: ack PUBACKed batches and seal new ones in one transaction (one fsync).

    Returns only newly sealed batches (never the unacked ones the uplink holds) and the items left unsealed.
    """

    def ack_and_seal(
        self, acked: Sequence[int], max_batches: int, *, max_items: int, max_bytes: int, now_ms: int, force: bool
    ) -> tuple[Sequence[BatchLike], int]: ...


class HealthSource(Protocol):
    """Agent-wide health for the heartbeat (e.g. config_version, decode_errors per device)."""

    def health(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict; called once per heartbeat, never in parallel."""
        ...


@dataclasses.dataclass(slots=True)
class UplinkCounters:
    """Monotonic counters of the uplink since start."""

    published: int = 0
    acked: int = 0
    acked_items: int = 0
    reconnects: int = 0
    # Sessions that ended in an error, failed connection attempts included.
    failures: int = 0
    publish_errors: int = 0
    heartbeats: int = 0


class LeanPaho(paho.Client):
    """paho with buffered socket reads, every readable packet handled per event, and a lean PUBACK path.

    paho reads a packet with three or more recv() calls (command byte, each length byte, body), and per
    readable event it handles only as many packets as it has messages of its own in flight: one, for a
    subscriber that publishes nothing, so the pipeline would get one chunk (one buffer transaction, one
    fsync) per event-loop turn. Reads here take what the socket holds in one recv() and loop_read
    handles every buffered packet, so nothing is left in the buffer when the socket is drained.
    Packets queued in one event-loop turn (PUBACKs, QoS 1 publishes) go out in one send(); a plain
    PUBACK (no properties) skips paho's per-packet Properties and ReasonCode objects; per-packet debug
    logging is skipped. Install with `use_lean_paho` before the client connects.
    """

    _rsock: object = None
    _rbuf: bytearray
    _recvs_left = 1
    # Packet ids of publish_qos1 messages awaiting their PUBACK (paho's own are in _out_messages).
    _lean_out: set[int] | None = None

    def publish_qos1(self, topic: bytes, payload: bytes, retain: bool) -> tuple[MQTTErrorCode, int]:
        """Queue a QoS 1 PUBLISH without paho's per-message objects; its PUBACK goes to on_publish as usual.

        paho's publish() builds an MQTTMessage, an MQTTMessageInfo with a Condition and takes two locks per
        message; the uplink tracks its publishes itself and needs only the packet id back.
        """
        if self._sock is None:
            return MQTTErrorCode.MQTT_ERR_NO_CONN, 0
        if self._lean_out is None:
            self._lean_out = set()
        mid = self._mid_generate()
        # MQTT 5 adds a properties length (0: none) after the packet id.
        head = _U16.pack(len(topic)) + topic + _U16.pack(mid) + (b"\x00" if self._protocol == paho.MQTTv5 else b"")
        packet = bytes((0x32 | retain,)) + _remaining_length(len(head) + len(payload)) + head + payload
        self._lean_out.add(mid)
        return self._packet_queue(paho.PUBLISH, packet, mid, 1), mid

    def _sock_recv(self, bufsize: int) -> bytes:
        if self._rsock is not self._sock:
            # A new connection: bytes buffered from an old socket must not leak into it.
            self._rsock, self._rbuf = self._sock, bytearray()
        buf = self._rbuf
        if not buf:
            if self._recvs_left <= 0:
                # Enough for one event: the socket stays readable, so the loop calls again next turn.
                raise BlockingIOError
            self._recvs_left -= 1
            data = super()._sock_recv(_READ_BYTES)
            if len(data) <= bufsize:
                return data
            buf += data
        out = bytes(buf[:bufsize])
        # bytearray drops a prefix in O(1) (it moves its start), so this stays linear overall.
        del buf[:bufsize]
        return out

    def _packet_read(self) -> MQTTErrorCode:
        # paho reads a packet byte by byte (command, each length byte, body): a packet already whole in
        # the read buffer is cut out in one go instead. Anything else (a fresh read, a packet split across
        # reads, a malformed length) takes paho's own path, which refills the buffer.
        buf = self._rbuf if self._rsock is not None and self._rsock is self._sock else None
        if not buf or self._in_packet["command"]:
            return super()._packet_read()
        end, length, shift, pos = len(buf), 0, 0, 1
        while True:
            if pos >= end or pos > 4:
                return super()._packet_read()
            byte = buf[pos]
            length |= (byte & 0x7F) << shift
            pos += 1
            if not byte & 0x80:
                break
            shift += 7
        if pos + length > end:
            return super()._packet_read()
        in_packet = self._in_packet
        in_packet["command"] = buf[0]
        in_packet["have_remaining"] = 1
        in_packet["remaining_length"] = length
        in_packet["packet"] = buf[pos : pos + length]
        in_packet["to_process"] = 0
        in_packet["pos"] = 0
        del buf[: pos + length]
        try:
            rc = self._packet_handle()
        except MalformedPacket as exc:
            self._easy_log(LogLevel.MQTT_LOG_DEBUG, "Received malformed packet: %s", exc)
            rc = MQTTErrorCode.MQTT_ERR_PROTOCOL
        self._in_packet = {
            "command": 0,
            "have_remaining": 0,
            "remaining_count": [],
            "remaining_mult": 1,
            "remaining_length": 0,
            "packet": bytearray(),
            "to_process": 0,
            "pos": 0,
        }
        with self._msgtime_mutex:
            self._last_bytes_received = paho.time_func()
        return rc

    def _handle_pubackcomp(self, cmd: Literal["PUBACK", "PUBCOMP"]) -> MQTTErrorCode:
        packet = self._in_packet["packet"]
        lean = self._lean_out
        if lean and cmd == "PUBACK" and len(packet) >= 2 and (mid := packet[0] << 8 | packet[1]) in lean:
            lean.discard(mid)
            code = packet[2] if len(packet) >= 3 else 0
            on_publish = self._on_publish
            if on_publish is not None:
                on_publish(self, self._userdata, mid, _puback_reason(code), _NO_PROPERTIES)  # type: ignore[call-arg]
            return MQTTErrorCode.MQTT_ERR_SUCCESS
        reason = _PUBACK_REASONS.get(packet[2] if len(packet) == 3 else 0)
        if cmd != "PUBACK" or len(packet) not in (2, 3) or reason is None:
            return super()._handle_pubackcomp(cmd)
        mid = packet[0] << 8 | packet[1]
        with self._out_message_mutex:
            if mid in self._out_messages:
                return self._do_on_publish(mid, reason, _NO_PROPERTIES)
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def _packet_write(self) -> MQTTErrorCode:
        # paho sends each queued packet with its own send(); PUBACKs and QoS 1 publishes queued in one
        # event-loop turn go out in one. QoS 0 publishes and DISCONNECT need paho's own bookkeeping.
        out = self._out_packet
        if len(out) < 2 or any(_needs_paho_write(packet) for packet in out):
            return super()._packet_write()
        packets = list(out)
        out.clear()
        try:
            written = self._sock_send(b"".join(packet["packet"][packet["pos"] :] for packet in packets))
        except (AttributeError, ValueError):
            out.extendleft(reversed(packets))
            return MQTTErrorCode.MQTT_ERR_SUCCESS
        except BlockingIOError:
            out.extendleft(reversed(packets))
            return MQTTErrorCode.MQTT_ERR_AGAIN
        except OSError as err:
            out.extendleft(reversed(packets))
            self._easy_log(LogLevel.MQTT_LOG_ERR, "failed to send on socket: %s", err)
            return MQTTErrorCode.MQTT_ERR_CONN_LOST
        for index, packet in enumerate(packets):
            step = min(written, packet["to_process"])
            packet["to_process"] -= step
            packet["pos"] += step
            written -= step
            if packet["to_process"]:
                # A partial send: the rest stays queued and the writer stays registered (want_write).
                out.extendleft(reversed(packets[index:]))
                break
        with self._msgtime_mutex:
            self._last_msg_out = time.monotonic()
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def _easy_log(self, level: LogLevel, fmt: str, *args: Any) -> None:
        if level != LogLevel.MQTT_LOG_DEBUG:
            super()._easy_log(level, fmt, *args)

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        # Read until the socket would block (or _RECVS_PER_EVENT reads are done) and the buffer is empty:
        # then the next bytes come with the next readable event, so nothing waits unseen in the buffer.
        self._recvs_left = _RECVS_PER_EVENT
        while True:
            if self._sock is None:
                return MQTTErrorCode.MQTT_ERR_NO_CONN
            rc = self._packet_read()
            if rc > 0:
                return self._loop_rc_handle(rc)
            if rc == MQTTErrorCode.MQTT_ERR_AGAIN:
                return MQTTErrorCode.MQTT_ERR_SUCCESS


def _puback_reason(code: int) -> ReasonCode:
    """Return the ReasonCode of a PUBACK reason byte; an unknown one counts as 0x80 Unspecified error."""
    reason = _PUBACK_REASONS.get(code)
    return reason if reason is not None else _PUBACK_REASONS[0x80]


def _remaining_length(n: int) -> bytes:
    """Encode an MQTT remaining length (variable byte integer)."""
    out = bytearray()
    while True:
        n, byte = n >> 7, n & 0x7F
        out.append(byte | 0x80 if n else byte)
        if not n:
            return bytes(out)


def _needs_paho_write(packet: Any) -> bool:
    """Tell whether paho must write `packet` itself (a QoS 0 publish or a DISCONNECT)."""
    kind = packet["command"] & 0xF0
    return bool(kind == paho.DISCONNECT or (kind == paho.PUBLISH and packet["qos"] == 0))


def use_lean_paho(client: aiomqtt.Client) -> None:
    """Switch the paho client inside `client` to LeanPaho; call before connecting."""
    client._client.__class__ = LeanPaho


class CheckedClient(aiomqtt.Client):
    """aiomqtt.Client with PUBACK reason codes (aiomqtt drops them) and a publish path without a task each.

    paho reports each PUBACK through a callback on the event loop's thread; this private wrapper turns it
    into a completion queue (`completed`, with `wake` set) for publishes the uplink pump tracks itself,
    or resolves the future of an awaited `publish_checked`. Neither path touches aiomqtt's pending-call
    bookkeeping, which is O(pending) per publish.
    """

    def __init__(self, *args: Any, publish_timeout_s: float = 30.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        use_lean_paho(self)
        self.publish_timeout_s = publish_timeout_s
        self.completed: deque[tuple[int, ReasonCode]] = deque()
        self.wake: asyncio.Event | None = None
        self._waiters: dict[int, asyncio.Future[ReasonCode]] = {}

    def _on_publish(
        self, client: paho.Client, userdata: Any, mid: int, reason_code: ReasonCode, properties: Any
    ) -> None:
        waiter = self._waiters.pop(mid, None)
        if waiter is not None:
            if not waiter.done():
                waiter.set_result(reason_code)
            return
        self.completed.append((mid, reason_code))
        if self.wake is not None:
            self.wake.set()

    def publish_nowait(self, topic: str, payload: bytes, *, retain: bool) -> int:
        """Queue a QoS 1 publish and return its mid; its PUBACK shows up in `completed`."""
        # paho writes it on the loop's next write-ready callback, together with every other queued packet.
        lean = self._client
        assert isinstance(lean, LeanPaho)
        rc, mid = lean.publish_qos1(topic.encode(), payload, retain)
        if rc != paho.MQTT_ERR_SUCCESS:
            raise aiomqtt.MqttCodeError(rc, "Could not publish message")
        return mid

    async def publish_checked(self, topic: str, payload: bytes, *, retain: bool) -> None:
        """Publish QoS 1 and return on a successful PUBACK; raise PublishRejected or MqttError otherwise."""
        info = self._client.publish(topic, payload, 1, retain)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise aiomqtt.MqttCodeError(info.rc, "Could not publish message")
        # A PUBACK is read by the loop's reader callback, never inside publish(), so it cannot be missed.
        waiter: asyncio.Future[ReasonCode] = asyncio.get_running_loop().create_future()
        self._waiters[info.mid] = waiter
        try:
            async with asyncio.timeout(self.publish_timeout_s):
                reason = await waiter
        finally:
            self._waiters.pop(info.mid, None)
        if reason.is_failure:
            raise PublishRejected(topic, reason)


@dataclasses.dataclass(frozen=True, slots=True)
class _Request:
    """One worker-thread job of the pump: batches to ack, and how much to fetch."""

    done: list[BatchLike]
    want: int
    free: int
    held_items: int
    held_bytes: int
    more: bool
    age_due: bool


@dataclasses.dataclass(frozen=True, slots=True)
class _Fetched:
    """What a job brought back: batches, whether the buffer may hold more sealed ones, unsealed items seen."""

    batches: list[BatchLike]
    more: bool
    unsealed: int | None


def _plain(obj: object) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, BaseModel):
        return obj.model_dump(mode="json")
    return {k: v for k, v in vars(obj).items() if not k.startswith("_")}


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


class Uplink:
    """Drain the buffer to the broker: `run()` inside the agent's TaskGroup, `notify()` on new data."""

    def __init__(
        self,
        settings: UplinkSettings,
        buffer: UplinkBuffer,
        gateway: str,
        health: HealthSource,
        *,
        clock_ms: Callable[[], int] = _wall_ms,
    ) -> None:
        self.settings = settings
        self.gateway = topics.validate_gateway(gateway)
        self.counters = UplinkCounters()
        self.connected = False
        self._buffer = buffer
        self._sealer = buffer if isinstance(buffer, AckSealer) else None
        self._health = health
        self._clock_ms = clock_ms
        self._tls = settings.tls.context() if settings.tls is not None else None
        self._wake = asyncio.Event()
        self._started = time.monotonic()
        self._last_exchange = -math.inf
        self._pending_since: float | None = None
        # Batches published and not yet acked in the buffer; the PUBACKed ones among them.
        self._held: dict[int, BatchLike] = {}
        self._done: list[BatchLike] = []
        # Set by notify(): the buffer may hold unsealed data the pump has not looked at yet.
        self._dirty = True
        self._topics: dict[str, str] = {}
        self._progress = False
        self._down_since: float | None = None
        self._ever_connected = False
        # (monotonic time, buffer ingress_bytes) at the last heartbeat, for the ingress rate.
        self._rate_mark: tuple[float, int] | None = None

    def notify(self) -> None:
        """Wake the sender: new data is in the buffer. Call from the event loop's thread."""
        self._dirty = True
        self._wake.set()

    def health(self) -> dict[str, Any]:
        """Return the uplink's own counters for the agent's health report."""
        return {"connected": self.connected, **dataclasses.asdict(self.counters)}

    async def run(self) -> None:
        """Connect, drain and heartbeat until cancelled; reconnect with jittered capped backoff."""
        backoff = Backoff(self.settings.backoff_initial_s, self.settings.backoff_max_s)
        while True:
            started = time.monotonic()
            self._progress = False
            try:
                await self._session()
            except* (aiomqtt.MqttError, UplinkError, OSError, TimeoutError) as group:
                self._link_lost(group.exceptions[0])
            # Reset the backoff only after real progress, so a broker that accepts the connection but
            # rejects every publish (wrong ACL) is retried at the capped pace, not hammered.
            if self._progress or time.monotonic() - started >= self.settings.backoff_max_s:
                backoff.reset()
            await asyncio.sleep(backoff.next())

    def _client(self) -> CheckedClient:
        s = self.settings
        return CheckedClient(
            s.host,
            s.port,
            username=s.username,
            password=s.password.get_secret_value() if s.password is not None else None,
            identifier=s.client_id or self.gateway,
            **session_args(s.protocol),
            keepalive=s.keepalive_s,
            will=aiomqtt.Will(topics.status(self.gateway), topics.OFFLINE, qos=1, retain=True),
            tls_context=self._tls,
            tls_insecure=s.tls.insecure if s.tls is not None else None,
            # The pump keeps at most `window` publishes unacknowledged. paho's own limit (0 = none) would
            # scan every in-flight message on each PUBACK, O(window) per message.
            max_inflight_messages=0,
            timeout=s.connect_timeout_s,
            publish_timeout_s=s.publish_timeout_s,
            # paho leaves Nagle on: small publishes then wait for ACKs of earlier segments (~40 ms stalls).
            socket_options=((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),),
        )

    async def _session(self) -> None:
        client = self._client()
        client.wake = self._wake
        self._held.clear()
        self._done.clear()
        async with client:
            try:
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(self._watch(client))
                    tg.create_task(self._heartbeat(client))
                    await self._pump(client, tg)
            except asyncio.CancelledError:
                await self._say_offline(client)
                raise
            finally:
                self.connected = False
                # Batches PUBACKed before the link broke are delivered: ack them so they are not resent.
                done, self._done = self._done, []
                self._ack(done)
                self._held.clear()

    async def _watch(self, client: CheckedClient) -> None:
        # The message iterator is aiomqtt's public way to learn of a disconnect: it raises MqttError.
        async for message in client.messages:
            log.debug("uplink ignores unexpected message on %s", message.topic)

    async def _pump(self, client: CheckedClient, tg: asyncio.TaskGroup) -> None:
        """Publish within the window; ack and fetch in one job at a time.

        Every buffer call of the session goes through here. While one job (ack what was PUBACKed, then
        seal and fetch what comes next) runs in a worker thread, PUBACKs keep arriving; the next job
        takes all of them at once, so the number of buffer transactions adapts to their cost (fsync).
        Jobs start at most once per GROUP_COMMIT_S; small ones run on the loop's thread.
        """
        window = self.settings.window
        inflight: dict[int, tuple[BatchLike, float]] = {}
        ready: deque[BatchLike] = deque()
        # A fresh session first resends exactly the buffer's sealed-but-unacked batches (same seq, same
        # bytes), without sealing anything new yet: unsealed data still waits for its size or age.
        unacked = (await asyncio.to_thread(self._buffer.stats)).sealed_unacked
        if unacked:
            b = self.settings.batch
            resend = await asyncio.to_thread(
                self._buffer.next_batches,
                unacked,
                max_items=b.max_items,
                max_bytes=b.max_bytes,
                now_ms=self._clock_ms(),
            )
            for batch in resend:
                self._held[batch.seq] = batch
                ready.append(batch)
        more = False
        job: asyncio.Task[_Fetched] | None = None
        while True:
            self._wake.clear()
            while client.completed:
                mid, reason = client.completed.popleft()
                entry = inflight.pop(mid, None)
                if entry is None:
                    continue
                if reason.is_failure:
                    self.counters.publish_errors += 1
                    raise PublishRejected(self._topic(entry[0].lane), reason)
                self._done.append(entry[0])
            if job is not None and job.done():
                fetched = job.result()
                job = None
                more = fetched.more
                for batch in fetched.batches:
                    # The buffer returns its unacked batches first, including the ones we hold.
                    if batch.seq not in self._held:
                        self._held[batch.seq] = batch
                        ready.append(batch)
                self._note_unsealed(fetched)
            now = time.monotonic()
            while ready and len(inflight) < window:
                batch = ready.popleft()
                mid = client.publish_nowait(self._topic(batch.lane), batch.payload, retain=False)
                inflight[mid] = (batch, now)
                self.counters.published += 1
            room = job is None and not ready and len(inflight) < window
            fetch = room and (more or self._dirty or self._age_due(now))
            if job is None and (fetch or self._done):
                job = tg.create_task(self._exchange(fetch, more, window - len(inflight), now))
            await self._wait(self._next_deadline(inflight, room and not fetch, now))

    def _topic(self, lane: str) -> str:
        topic = self._topics.get(lane)
        if topic is None:
            topic = self._topics[lane] = topics.topic(self.gateway, lane)
        return topic

    async def _exchange(self, fetch: bool, more: bool, free: int, now: float) -> _Fetched:
        """Hand the PUBACKed batches and, if `fetch`, a fetch of up to `free` new batches to a worker thread."""
        wait = self._last_exchange + GROUP_COMMIT_S - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
            now = time.monotonic()
        self._last_exchange = now
        done, self._done = self._done, []
        for batch in done:
            del self._held[batch.seq]
        self._dirty = self._dirty and not fetch
        # An AckSealer returns only new batches; otherwise the buffer returns its unacked batches first,
        # including the ones still held: ask for those too, and tell their size.
        held = [] if self._sealer is not None else list(self._held.values())
        request = _Request(
            done=done,
            want=len(held) + free if fetch else 0,
            free=free if fetch else 0,
            held_items=sum(batch.items for batch in held),
            held_bytes=sum(batch.nbytes for batch in held),
            more=more,
            age_due=self._age_due(now),
        )
        try:
            if request.free * self.settings.batch.max_items <= _INLINE_ROWS:
                # A small job costs less than handing it to a thread: the worker releases the GIL on every
                # SQLite step and each handoff to the busy event loop is a futex round trip.
                return self._exchange_sync(request)
            return await asyncio.to_thread(self._exchange_sync, request)
        finally:
            self._wake.set()

    def _exchange_sync(self, request: _Request) -> _Fetched:
        """Ack, then seal and fetch when enough (or old enough) data waits. Runs in a worker thread."""
        if self._sealer is not None:
            return self._ack_and_seal(self._sealer, request)
        self._ack(request.done)
        if not request.want:
            return _Fetched([], request.more, None)
        stats = self._buffer.stats()
        unsealed = stats.depth_items - request.held_items
        unsealed_bytes = stats.depth_bytes - request.held_bytes
        b = self.settings.batch
        full = unsealed >= b.max_items or unsealed_bytes >= b.max_bytes
        if not (request.more or (unsealed > 0 and (full or request.age_due))):
            return _Fetched([], False, max(unsealed, 0))
        batches = self._buffer.next_batches(
            request.want, max_items=b.max_items, max_bytes=b.max_bytes, now_ms=self._clock_ms()
        )
        return _Fetched(list(batches), len(batches) >= request.want, 0)

    def _ack_and_seal(self, sealer: AckSealer, request: _Request) -> _Fetched:
        """Ack and seal in one buffer transaction, fetching only new batches. Runs in a worker thread."""
        b = self.settings.batch
        batches, unsealed = sealer.ack_and_seal(
            [batch.seq for batch in request.done],
            request.free,
            max_items=b.max_items,
            max_bytes=b.max_bytes,
            now_ms=self._clock_ms(),
            force=request.more or request.age_due,
        )
        self._count_acked(request.done)
        if not request.free:
            return _Fetched([], request.more, None)
        if not batches:
            return _Fetched([], False, unsealed)
        return _Fetched(list(batches), len(batches) >= request.free, 0)

    def _note_unsealed(self, fetched: _Fetched) -> None:
        """Start the age clock when unsealed data was seen and left waiting; stop it once sealed."""
        if fetched.unsealed is None:
            return
        if fetched.unsealed <= 0:
            self._pending_since = None
        elif self._pending_since is None:
            self._pending_since = time.monotonic()

    def _age_due(self, now: float) -> bool:
        return self._pending_since is not None and now - self._pending_since >= self.settings.batch.max_age_s

    def _next_deadline(self, inflight: dict[int, tuple[BatchLike, float]], aging: bool, now: float) -> float | None:
        """Return seconds until the age timer or the oldest publish's PUBACK deadline; raise if that passed."""
        delays = []
        if inflight:
            _, sent = next(iter(inflight.values()))
            left = sent + self.settings.publish_timeout_s - now
            if left <= 0:
                # A PUBACK this late means a dead link that keepalive has not noticed yet: reconnect.
                raise UplinkError(f"no PUBACK within {self.settings.publish_timeout_s:g} s")
            delays.append(left)
        if aging and self._pending_since is not None:
            delays.append(max(0.0, self._pending_since + self.settings.batch.max_age_s - now))
        return min(delays) if delays else None

    async def _wait(self, delay_s: float | None) -> None:
        # Timers (age, PUBACK deadline) bound the wait; everything else wakes the loop through the event.
        if delay_s is None:
            await self._wake.wait()
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay_s):
                await self._wake.wait()

    def _ack(self, done: Sequence[BatchLike]) -> None:
        """Delete PUBACKed batches from the buffer (one transaction if it offers ack_many), then count them.

        Runs in a worker thread; touches only the buffer and the counters.
        """
        if not done:
            return
        if isinstance(self._buffer, BatchAcker):
            self._buffer.ack_many([batch.seq for batch in done])
        else:
            for batch in done:
                self._buffer.ack(batch.seq)
        self._count_acked(done)

    def _count_acked(self, done: Sequence[BatchLike]) -> None:
        for batch in done:
            self.counters.acked += 1
            self.counters.acked_items += batch.items
        if done:
            self._progress = True

    async def _heartbeat(self, client: CheckedClient) -> None:
        while True:
            payload = await self._heartbeat_payload()
            await client.publish_checked(topics.status(self.gateway), payload, retain=True)
            self.counters.heartbeats += 1
            # The link counts as up once the broker accepted a publish, not at CONNACK: a session the
            # broker accepts but whose publishes it refuses must not log up/down on every retry.
            if not self.connected:
                self._link_up()
            await asyncio.sleep(self.settings.heartbeat_s)

    async def _heartbeat_payload(self) -> bytes:
        """Return the retained STATUS envelope: online, buffer depth, autonomy, drops, counters, health."""
        # Buffer calls go to a thread: the pump may be sealing in one, holding the buffer's lock.
        stats = await asyncio.to_thread(self._buffer.stats)
        now = time.monotonic()
        ingress = 0.0
        if self._rate_mark is not None and now > self._rate_mark[0]:
            ingress = max(0.0, (stats.ingress_bytes - self._rate_mark[1]) / (now - self._rate_mark[0]))
        self._rate_mark = (now, stats.ingress_bytes)
        autonomy = await asyncio.to_thread(self._buffer.autonomy_hours, ingress)
        # The uplink's own view is the default; the agent's health() (richer: pipeline ingress rate,
        # decode errors, config version) overrides it key by key. state and uplink are always ours.
        status: dict[str, Any] = {
            "agent_version": edge_agent.__version__,
            "uptime_s": round(now - self._started, 3),
            "buffer": _plain(stats),
            "ingress_bytes_per_s": round(ingress, 1),
            # None means "unbounded": nothing is coming in (JSON has no infinity).
            "autonomy_h": round(autonomy, 3) if autonomy is not None and math.isfinite(autonomy) else None,
            **self._health.health(),
            "state": "online",
            "uplink": self.health(),
        }
        return assemble_envelope(
            gateway=self.gateway,
            seq=HEARTBEAT_SEQ,
            lane=Lane.STATUS,
            sent_ms=self._clock_ms(),
            status=orjson.Fragment(orjson.dumps(status, default=str)),
        )

    async def _say_offline(self, client: CheckedClient) -> None:
        # A clean DISCONNECT suppresses the Last Will, so a graceful stop says offline itself.
        with contextlib.suppress(aiomqtt.MqttError, UplinkError, TimeoutError):
            async with asyncio.timeout(2.0):
                await client.publish_checked(topics.status(self.gateway), topics.OFFLINE, retain=True)

    def _link_up(self) -> None:
        self.connected = True
        where = f"{self.settings.host}:{self.settings.port}"
        if not self._ever_connected:
            log.info("uplink connected to %s as %s", where, self.settings.client_id or self.gateway)
        elif self._down_since is not None:
            log.info("uplink to %s restored after %.1f s", where, time.monotonic() - self._down_since)
            self.counters.reconnects += 1
        self._ever_connected = True
        self._down_since = None

    def _link_lost(self, exc: BaseException) -> None:
        self.connected = False
        self.counters.failures += 1
        if self._down_since is None:
            self._down_since = time.monotonic()
            where = f"{self.settings.host}:{self.settings.port}"
            state = "lost" if self._ever_connected else "not established"
            log.warning("uplink to %s %s (%s); retrying with backoff", where, state, exc)
        else:
            log.debug("uplink retry failed: %s", exc)
