"""The ingest worker: shared-subscription MQTT messages in; series, alerts, liveness and acks out.

One worker is one MQTT 5 client with a stable client id and a persistent session (clean_start off,
session expiry set), subscribed QoS 1 to `$share/{group}/gw/+/{telemetry,alerts,status}`, so several
workers (processes or machines) split the gateways' messages and a restarted worker gets back what it
had not acknowledged. aiomqtt acknowledges QoS 1 on receipt; we switch its paho client to manual
acknowledgement and send each PUBACK only after the message's batch is durably applied
(cloud.ingest.apply explains why that is exactly once).

A pipeline of three tasks per session: the reader only appends each raw message to the pending chunk;
the cutter closes the chunk when its payloads reach `batch_max_bytes` or its first message is
`batch_max_delay_s` old and sends it to the decoder processes (cloud.ingest.decoders); the applier takes
the oldest chunks once decoded, in arrival order, and hands them as one batch to the single writer thread
(gate, ledger, store, alerts: cloud.ingest.apply), then acks their messages in arrival order (MQTT wants
in-order PUBACKs) and feeds liveness on the event loop. So decoding the next chunks overlaps storing the
last ones, on another core. With no decoder processes the writer thread decodes too. Nothing heavy runs
on the event loop: there it fought the writer thread for the GIL (measured 2.5x slower), and the loop
stays free for the API sharing the process.
The broker stops sending once `receive_maximum` messages are unacknowledged, which bounds the pipeline.
A failed chunk drops the session without acks; the link is retried forever with jittered capped backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import aiomqtt

from cloud.gcpause import without_gc
from cloud.ingest.admit import Heartbeat, Message, Rejected, Verdict
from cloud.ingest.apply import Outcome, apply_verdicts, decode_messages, takes_columns
from cloud.ingest.counters import IngestCounters
from cloud.ingest.decoders import BrokenProcessPool, DecoderPool, auto_processes
from cloud.ingest.ledger import Ledger
from cloud.ingest.ports import AlertSink, GatewayDirectory, LivenessSink
from cloud.ingest.settings import IngestSettings
from cloud.store import SeriesStore
from gateway import topics
from gateway.backoff import Backoff
from gateway.contract import Lane
from gateway.mqtt import session_args

log = logging.getLogger(__name__)

KINDS = (topics.Kind.ALERTS, topics.Kind.STATUS, topics.Kind.TELEMETRY)


class IngestError(Exception):
    """A batch could not be applied; the worker drops its session so the broker redelivers it."""


def wall_ms() -> int:
    """Return the wall clock in UTC milliseconds."""
    return time.time_ns() // 1_000_000


@dataclass(slots=True)
class _Chunk:
    """Messages in arrival order, the ids of those to ack once they are applied, and their decoding."""

    messages: list[Message] = field(default_factory=list)
    mids: list[int] = field(default_factory=list)
    nbytes: int = 0
    opened: float = 0.0  # loop time of its first message
    decoded: asyncio.Task[list[Verdict]] | None = None  # None: the writer thread decodes it


class IngestWorker:
    """Consume `$share/{group}/gw/+/…` and apply every (gateway, seq) once; `run()` until cancelled."""

    def __init__(
        self,
        settings: IngestSettings,
        store: SeriesStore,
        directory: GatewayDirectory,
        alerts: AlertSink,
        liveness: LivenessSink,
        ledger: Ledger,
        *,
        clock: Callable[[], int] = wall_ms,
    ) -> None:
        self.settings = settings
        self.store = store
        self.directory = directory
        self.alerts = alerts
        self.liveness = liveness
        self.ledger = ledger
        self.clock = clock
        self.counters = IngestCounters()
        self.connected = False
        # Set once per session, when the subscriptions are in place (tests and the lead's health check).
        self.subscribed = asyncio.Event()
        self._tls = settings.tls.context() if settings.tls is not None else None
        self._pending = _Chunk()
        self._opened = asyncio.Event()
        self._full = asyncio.Event()
        self._chunks: deque[_Chunk] = deque()  # cut, waiting for decoding or the writer
        self._queued = asyncio.Event()
        self._applying = False
        self._decoders: DecoderPool | None = None
        self._logged: set[str] = set()
        self._down_since: float | None = None

    @property
    def idle(self) -> bool:
        """True when every received message is applied and acknowledged."""
        return not self._applying and not self._chunks and not self._pending.messages

    @property
    def decoder_pids(self) -> list[int]:
        """The decoder processes' ids, none when the writer thread decodes (benchmarks read their CPU)."""
        return self._decoders.pids if self._decoders is not None else []

    @property
    def subscriptions(self) -> list[str]:
        """The shared subscriptions of this worker's group (plain `gw/+/...` ones when it has no group)."""
        group = self.settings.group
        filters = [topics.any_gateway(kind) for kind in KINDS]
        return filters if group is None else [topics.shared(group, f) for f in filters]

    async def run(self) -> None:
        """Consume until cancelled, reconnecting with jittered, capped backoff."""
        s = self.settings
        backoff = Backoff(s.backoff_initial_s, s.backoff_max_s)
        # One writer thread: store, alert sink and ledger are never called in parallel, not even by a
        # batch still finishing after its session broke.
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"ingest-{s.client_id}")
        try:
            while True:
                handled = self.counters.messages
                try:
                    await self._start_decoders()
                    await self._session(executor)
                except* (aiomqtt.MqttError, IngestError, OSError) as group:
                    self._went_down(group.exceptions[0])
                # Only a session that got work done resets the backoff; a batch failing every time does not.
                if self.counters.messages > handled:
                    backoff.reset()
                await asyncio.sleep(backoff.next())
        finally:
            self.connected = False
            # Waits for at most the batch in flight, so the owner may close the store right after.
            executor.shutdown(wait=True)
            self._stop_decoders()

    async def _start_decoders(self) -> None:
        """Start the decoder processes once (again after one died); none when the writer decodes."""
        s = self.settings
        processes = auto_processes() if s.decode_processes is None else s.decode_processes
        if processes == 0 or self._decoders is not None:
            return
        pool = DecoderPool(processes, max_bytes=s.max_envelope_bytes, columns=takes_columns(self.store))
        try:
            await pool.start()
        except BaseException as exc:
            await asyncio.to_thread(pool.close)
            if isinstance(exc, Exception):  # a process that could not start: retried like a lost link
                raise IngestError(f"cannot start {processes} decoder processes: {exc!r}") from exc
            raise
        self._decoders = pool

    def _stop_decoders(self) -> None:
        if self._decoders is not None:
            self._decoders.close()
            self._decoders = None

    def _client(self) -> aiomqtt.Client:
        s = self.settings
        session = session_args(s.protocol, expiry_s=s.session_expiry_s, receive_maximum=s.receive_maximum)
        client = aiomqtt.Client(
            s.host,
            s.port,
            username=s.username,
            password=s.password.get_secret_value() if s.password is not None else None,
            identifier=s.client_id,
            **session,
            keepalive=s.keepalive_s,
            tls_context=self._tls,
            tls_insecure=s.tls.insecure if s.tls is not None else None,
            timeout=s.connect_timeout_s,
            socket_options=((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),),
        )
        # Before connecting: a resumed session redelivers its unacknowledged messages right after CONNACK.
        # aiomqtt 2.5 has no setting for this, so its paho client is reached directly (here and in _flush).
        client._client.manual_ack_set(True)
        return client

    async def _session(self, executor: ThreadPoolExecutor) -> None:
        client = self._client()
        self._pending = _Chunk()
        self._opened.clear()
        self._full.clear()
        async with client:
            try:
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(self._cutter())
                    tg.create_task(self._applier(client, executor))
                    # Subscribe while already reading and acking: amqtt (3.1.1) first sends a resumed session
                    # its queued messages and reads our SUBSCRIBE only once they are acked (or after 5 s).
                    tg.create_task(self._subscribe(client))
                    await self._reader(client)
            finally:
                self.connected = False
                self.subscribed.clear()
                # Chunks not applied are never acked: the broker sends them again to the next session.
                for chunk in self._chunks:
                    if chunk.decoded is not None:
                        chunk.decoded.cancel()
                self._chunks.clear()

    async def _subscribe(self, client: aiomqtt.Client) -> None:
        for subscription in self.subscriptions:
            await client.subscribe(subscription, qos=1)
        self.counters.connects += 1
        self._link_up()
        self.subscribed.set()

    async def _reader(self, client: aiomqtt.Client) -> None:
        # Receiving only: decoding here would fight the writer thread for the GIL (measured 2.5x slower).
        loop = asyncio.get_running_loop()
        limit = self.settings.batch_max_bytes
        async for message in client.messages:
            pending = self._pending
            payload = message.payload
            body = payload if isinstance(payload, bytes) else b""
            pending.messages.append(Message(message.topic.value, body, message.retain))
            pending.nbytes += len(body)
            if message.qos:
                pending.mids.append(message.mid)
            if not self._opened.is_set():
                pending.opened = loop.time()
                self._opened.set()
            if pending.nbytes >= limit:
                self._full.set()

    async def _cutter(self) -> None:
        """Close the pending chunk when full or old enough and start decoding it."""
        while True:
            await self._opened.wait()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(self._pending.opened + self.settings.batch_max_delay_s):
                    await self._full.wait()
            chunk, self._pending = self._pending, _Chunk()
            self._opened.clear()
            self._full.clear()
            if self._decoders is not None:
                chunk.decoded = asyncio.create_task(self._decoders.decode(chunk.messages))
            self._chunks.append(chunk)
            self._queued.set()

    async def _applier(self, client: aiomqtt.Client, executor: ThreadPoolExecutor) -> None:
        """Apply the oldest chunks once decoded, all that are ready in one batch, and ack them in order."""
        while True:
            await self._queued.wait()
            self._queued.clear()
            while self._chunks:
                first = self._chunks[0]
                self._applying = True
                try:
                    if first.decoded is not None:
                        await asyncio.wait([first.decoded])
                    batch = [self._chunks.popleft()]
                    while self._chunks and (self._chunks[0].decoded is None or self._chunks[0].decoded.done()):
                        batch.append(self._chunks.popleft())
                    await self._apply(client, executor, batch)
                finally:
                    self._applying = False

    async def _apply(self, client: aiomqtt.Client, executor: ThreadPoolExecutor, batch: list[_Chunk]) -> None:
        """Apply chunks as one batch in the writer thread, then acknowledge their messages in arrival order."""
        loop = asyncio.get_running_loop()
        messages = [m for chunk in batch for m in chunk.messages]
        try:
            verdicts = [await chunk.decoded if chunk.decoded is not None else None for chunk in batch]
            work = functools.partial(self._write, messages, batch, verdicts)
            outcome = await loop.run_in_executor(executor, without_gc, work)
        except Exception as exc:
            # Decoder, store, ledger, directory and sink errors alike: nothing is acked, the broker
            # redelivers after the reconnect, and the ledger drops whatever this batch did manage to record.
            self.counters.apply_errors += 1
            if isinstance(exc, BrokenProcessPool):
                self._stop_decoders()  # a decoder process died: the next session starts new ones
            raise IngestError(f"applying a batch of {len(messages)} messages failed: {exc!r}") from exc
        self._account(outcome, len(messages))
        for chunk in batch:
            for mid in chunk.mids:
                client._client.ack(mid, 1)

    def _write(self, messages: list[Message], batch: list[_Chunk], verdicts: list[list[Verdict] | None]) -> Outcome:
        """In the writer thread: decode what no process did, then gate and apply the whole batch."""
        decoded: list[Verdict] = []
        for chunk, done in zip(batch, verdicts, strict=True):
            if done is None:
                s = self.settings
                done = decode_messages(
                    chunk.messages, max_bytes=s.max_envelope_bytes, columns=takes_columns(self.store)
                )
            decoded.extend(done)
        return apply_verdicts(messages, decoded, self.directory, self.store, self.alerts, self.ledger)

    def _account(self, outcome: Outcome, messages: int) -> None:
        """Count a processed batch and feed liveness: heartbeats and Wills, devices seen, status events."""
        c = self.counters
        now = self.clock()
        c.messages += messages
        for verdict in outcome.rejected:
            self._reject(verdict)
        for live, retained in outcome.liveness:
            if isinstance(live, Heartbeat):
                c.heartbeats += 1
                env = live.envelope
                # A retained heartbeat may be old: its arrival time says nothing, its sent_ms does.
                self.liveness.heartbeat(env.gateway, env.status, now, sent_ms=env.sent_ms if retained else None)
            else:
                c.wills += 1
                self.liveness.will(live.gateway, now)
        applied = outcome.applied
        if not applied.envelopes and not applied.duplicates:
            return
        c.batches += 1
        c.envelopes += len(applied.envelopes)
        c.duplicates += applied.duplicates
        c.readings += applied.readings
        c.readings_new += applied.readings_new
        for env in applied.envelopes:
            c.alerts += len(env.alerts)
            c.edge_dropped.update(env.dropped)
            c.lag.observe(now - env.sent_ms)
            if env.lane is Lane.STATUS:
                c.status_events += 1
                self.liveness.heartbeat(env.gateway, env.status, now, sent_ms=env.sent_ms)
        for device, ts in applied.seen.items():
            self.liveness.device_seen(device, ts, now)

    def _reject(self, verdict: Rejected) -> None:
        self.counters.rejected[verdict.reason] += 1
        # Once per cause, not per message: a misbehaving gateway must not flood the log.
        if verdict.reason not in self._logged:
            self._logged.add(verdict.reason)
            log.warning(
                "ingest rejects %s messages; first from gateway %s: %s (further ones are only counted)",
                verdict.reason,
                verdict.gateway,
                verdict.detail,
            )

    def _link_up(self) -> None:
        self.connected = True
        where = f"{self.settings.host}:{self.settings.port}"
        if self._down_since is None:
            log.info("ingest %s subscribed at %s (group %s)", self.settings.client_id, where, self.settings.group)
        else:
            log.info("ingest link to %s restored after %.1f s", where, time.monotonic() - self._down_since)
            self._down_since = None

    def _went_down(self, exc: BaseException) -> None:
        # One line when the link goes, one when it is back; not one per retry.
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.warning("ingest link to %s:%s lost: %s", self.settings.host, self.settings.port, exc)
