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
import ssl
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import aiomqtt
import orjson
import paho.mqtt.client as paho
from paho.mqtt.reasoncodes import ReasonCode
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

import edge_agent
from gateway import topics
from gateway.backoff import Backoff
from gateway.contract import Lane, assemble_envelope

log = logging.getLogger(__name__)

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


class TlsSettings(_Strict):
    """TLS to the broker: CA bundle, optional client certificate, and a test-rig-only insecure switch."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    # Skips hostname verification (the chain is still verified); for test rigs with IP-only certs.
    insecure: bool = False

    @model_validator(mode="after")
    def _pair(self) -> TlsSettings:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        return self


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


class CheckedClient(aiomqtt.Client):
    """aiomqtt.Client whose publish also fails on a PUBACK failure reason code (aiomqtt drops it)."""

    def __init__(self, *args: Any, publish_timeout_s: float = 30.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.publish_timeout_s = publish_timeout_s
        self._rejected: dict[int, ReasonCode] = {}

    def _on_publish(
        self, client: paho.Client, userdata: Any, mid: int, reason_code: ReasonCode, properties: Any
    ) -> None:
        if reason_code.is_failure:
            self._rejected[mid] = reason_code
        super()._on_publish(client, userdata, mid, reason_code, properties)

    async def publish_checked(self, topic: str, payload: bytes, *, retain: bool) -> None:
        """Publish QoS 1 and return on a successful PUBACK; raise PublishRejected or MqttError otherwise."""
        # Mirrors aiomqtt 2.5 Client.publish, keeping the mid so the PUBACK reason can be looked up;
        # the wait is bounded by publish_timeout_s.
        info = self._client.publish(topic, payload, 1, retain)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise aiomqtt.MqttCodeError(info.rc, "Could not publish message")
        if not info.is_published():
            confirmation = asyncio.Event()
            with self._pending_call(info.mid, confirmation, self._pending_publishes):
                try:
                    # asyncio.timeout, not aiomqtt's wait_for: no extra task per publish on the hot path.
                    async with asyncio.timeout(self.publish_timeout_s):
                        await confirmation.wait()
                finally:
                    reason = self._rejected.pop(info.mid, None)
            if reason is not None:
                raise PublishRejected(topic, reason)


def tls_context(tls: TlsSettings) -> ssl.SSLContext:
    """Return the SSL context for `tls`: verify chain and hostname (unless insecure), client cert if set."""
    context = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
    if tls.cert_file is not None and tls.key_file is not None:
        context.load_cert_chain(tls.cert_file, tls.key_file)
    if tls.insecure:
        context.check_hostname = False
    return context


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
        self._health = health
        self._clock_ms = clock_ms
        self._tls = tls_context(settings.tls) if settings.tls is not None else None
        self._wake = asyncio.Event()
        self._started = time.monotonic()
        self._pending_since: float | None = None
        # Batches published and not yet acked in the buffer; the PUBACKed ones among them.
        self._held: dict[int, BatchLike] = {}
        self._done: list[BatchLike] = []
        self._progress = False
        self._down_since: float | None = None
        self._ever_connected = False
        # (monotonic time, buffer ingress_bytes) at the last heartbeat, for the ingress rate.
        self._rate_mark: tuple[float, int] | None = None

    def notify(self) -> None:
        """Wake the sender: new data is in the buffer. Call from the event loop's thread."""
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
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=True,
            keepalive=s.keepalive_s,
            will=aiomqtt.Will(topics.status(self.gateway), topics.OFFLINE, qos=1, retain=True),
            tls_context=self._tls,
            tls_insecure=s.tls.insecure if s.tls is not None else None,
            max_inflight_messages=s.window,
            timeout=s.connect_timeout_s,
            publish_timeout_s=s.publish_timeout_s,
            # paho leaves Nagle on: small publishes then wait for ACKs of earlier segments (~40 ms stalls).
            socket_options=((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),),
        )

    async def _session(self) -> None:
        client = self._client()
        # aiomqtt warns past this many pending calls; `window` of them is our design, not a leak.
        client.pending_calls_threshold = self.settings.window + 4
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
        """Own every buffer call of the session: ack what was PUBACKed, seal and fetch, launch publishes."""
        window = self.settings.window
        ready: deque[BatchLike] = deque()
        # A fresh session first resends exactly the buffer's sealed-but-unacked batches (same seq, same
        # bytes), without sealing anything new yet: unsealed data still waits for its size or age.
        unacked = (await asyncio.to_thread(self._buffer.stats)).sealed_unacked
        more = False
        if unacked:
            b = self.settings.batch
            ready.extend(
                await asyncio.to_thread(
                    self._buffer.next_batches,
                    unacked,
                    max_items=b.max_items,
                    max_bytes=b.max_bytes,
                    now_ms=self._clock_ms(),
                )
            )
        while True:
            self._wake.clear()
            unconfirmed = len(self._held) - len(self._done)
            free = window - unconfirmed
            # Refill when half the window is free, so one buffer read serves many publishes.
            room = not ready and free > 0 and (not unconfirmed or free >= window // 2)
            fetch = room and (more or self._should_seal(ready))
            # Acks are batched too; a delayed ack only risks a resend, which the cloud deduplicates.
            if self._done and (fetch or not unconfirmed or len(self._done) >= window // 2):
                done, self._done = self._done, []
                for batch in done:
                    del self._held[batch.seq]
                await asyncio.to_thread(self._ack, done)
            if fetch:
                more = await self._fetch(ready, window)
            while ready and len(self._held) - len(self._done) < window:
                batch = ready.popleft()
                self._held[batch.seq] = batch
                tg.create_task(self._send(client, batch))
            await self._wait(self._age_timeout())

    async def _fetch(self, ready: deque[BatchLike], window: int) -> bool:
        """Take up to a window of new batches from the buffer; return whether it may hold more sealed ones."""
        b = self.settings.batch
        # The buffer returns its unacked batches first, including the ones we hold; those are skipped.
        want = len(self._held) + len(ready) + window
        batches = await asyncio.to_thread(
            self._buffer.next_batches,
            want,
            max_items=b.max_items,
            max_bytes=b.max_bytes,
            now_ms=self._clock_ms(),
        )
        known = {batch.seq for batch in ready}
        for batch in batches:
            if batch.seq not in self._held and batch.seq not in known:
                ready.append(batch)
        self._pending_since = None
        return len(batches) >= want

    def _should_seal(self, ready: deque[BatchLike]) -> bool:
        """Tell whether pending (unsealed) data is big enough or old enough to seal now."""
        stats = self._buffer.stats()
        held = [*self._held.values(), *ready]
        unsealed = stats.depth_items - sum(batch.items for batch in held)
        if unsealed <= 0:
            self._pending_since = None
            return False
        unsealed_bytes = stats.depth_bytes - sum(batch.nbytes for batch in held)
        if unsealed >= self.settings.batch.max_items or unsealed_bytes >= self.settings.batch.max_bytes:
            return True
        now = time.monotonic()
        if self._pending_since is None:
            self._pending_since = now
        return now - self._pending_since >= self.settings.batch.max_age_s

    def _age_timeout(self) -> float | None:
        if self._pending_since is None:
            return None
        return max(0.0, self._pending_since + self.settings.batch.max_age_s - time.monotonic())

    async def _wait(self, delay_s: float | None) -> None:
        # The age timer is the only timer; everything else wakes the loop through the event.
        if delay_s is None:
            await self._wake.wait()
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay_s):
                await self._wake.wait()

    async def _send(self, client: CheckedClient, batch: BatchLike) -> None:
        self.counters.published += 1
        try:
            await client.publish_checked(topics.topic(self.gateway, batch.lane), batch.payload, retain=False)
        except (aiomqtt.MqttError, UplinkError):
            self.counters.publish_errors += 1
            raise
        self._done.append(batch)
        self._wake.set()

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
        for batch in done:
            self.counters.acked += 1
            self.counters.acked_items += batch.items
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
