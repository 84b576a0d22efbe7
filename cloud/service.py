"""The cloud service: settings in; database, registry, series, ingest, liveness, incidents and config push wired."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiomqtt

from cloud.auth import Auth, Role
from cloud.broker_sync import BrokerSync
from cloud.bundles import BundleError
from cloud.categories import load_categories
from cloud.db import Database
from cloud.fleet import Liveness, LivenessEvent
from cloud.grid import GridIndex, default_directory, default_district, default_router
from cloud.incidents.engine import Incidents
from cloud.incidents.policies import StandardsPolicies
from cloud.incidents.standards import Standards
from cloud.incidents.store import CaseStore
from cloud.ingest import IngestWorker, SqlLedger
from cloud.live.attach import attach_live
from cloud.registry import GatewayUnknown, Registry
from cloud.settings import CloudSettings
from cloud.store import SeriesStore
from cloud.store.lineprotocol import LineProtocolStore
from cloud.store.locked import LockedStore
from cloud.store.sqlite import Retention, SqliteSeriesStore
from cloud.worktime import default_calendar
from gateway import topics
from gateway.aio import run_together
from gateway.backoff import Backoff
from gateway.enrolment import BrokerEndpoint

log = logging.getLogger(__name__)

DAY_MS = 86_400_000
# How often liveness windows are checked and how often old raw points are pruned.
LIVENESS_TICK_S = 1.0
PRUNE_EVERY_S = 3600.0


def wall_ms() -> int:
    """Return the wall clock in UTC milliseconds."""
    return time.time_ns() // 1_000_000


class RegistryDirectory:
    """Ingest's view of the registry: a gateway may send only while enrolled and not revoked."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def is_active(self, gateway: str) -> bool:
        """Whether `gateway` is enrolled and not revoked (asked per message, so a revoke acts at once)."""
        try:
            return self.registry.gateway(gateway).state == "enrolled"
        except GatewayUnknown:
            return False


def open_store(settings: CloudSettings) -> SeriesStore:
    """Open the configured series store."""
    series = settings.series
    if series.backend == "lineprotocol":
        token = series.token.get_secret_value() if series.token is not None else ""
        return LineProtocolStore(series.url, bucket=series.bucket, org=series.org, token=token)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return SqliteSeriesStore(settings.data_dir / "series.db", Retention(raw_ms=series.raw_retention_days * DAY_MS))


class CloudService:
    """Everything behind the API, opened once; `run()` drives ingest, liveness, config acks and pruning."""

    def __init__(
        self, settings: CloudSettings, *, store: SeriesStore | None = None, profiles_dir: Path | None = None
    ) -> None:
        self.settings = settings
        self.db = Database.open(settings.database_url())
        self.auth = Auth(self.db)
        admin = settings.broker_admin
        broker = (
            BrokerSync(admin.password_file, pid_file=admin.pid_file, acl_file=admin.acl_file)
            if admin.password_file is not None
            else None
        )
        endpoint = BrokerEndpoint(host=settings.gateway_broker.host, port=settings.gateway_broker.port)
        self.registry = Registry(self.db, endpoint, broker=broker, token_ttl_ms=settings.enrol_token_ttl_s * 1000)
        self.liveness = Liveness(
            heartbeat_window_ms=int(settings.liveness.heartbeat_window_s * 1000),
            device_window_ms=int(settings.liveness.device_window_s * 1000),
        )
        self.liveness.bind_devices(self.registry.devices())
        self.store = LockedStore(store if store is not None else open_store(settings))
        # The incident layer on the same database: the bundled district, directory, routing, standards and
        # work calendar; rule categories come from the device profiles (read as data).
        self.district = default_district()
        self.directory = default_directory()
        self.standards = Standards.load()
        self.grid_index = GridIndex(self.district)
        self.incidents = Incidents(
            CaseStore(self.db),
            self.district,
            StandardsPolicies(self.standards),
            default_router(),
            load_categories(profiles_dir or settings.profiles_dir),
            calendar=default_calendar(),
            locator=self.grid_index,
        )
        self.escalations = 0
        self.ledger = SqlLedger(self.db)
        self.workers = [
            IngestWorker(
                settings.ingest.model_copy(update={"client_id": f"{settings.ingest.client_id}-{n}"}),
                self.store,
                RegistryDirectory(self.registry),
                self.incidents,
                self.liveness,
                self.ledger,
            )
            for n in range(settings.ingest_workers)
        ]
        self.config_acks = 0
        # Live stream: taps the engine's case writes, alerts and liveness events; fans out through the
        # broker when ingest has one, so every API process sees every event.
        self.live = attach_live(
            self.incidents,
            self.district,
            wall_ms,
            settings=settings.live,
            broker=settings.ingest if settings.ingest_workers > 0 else None,
            locator=self.grid_index,
        )
        if settings.admin_password is not None:
            self.auth.ensure_user(
                settings.admin_user, settings.admin_password.get_secret_value(), Role.ADMIN, wall_ms()
            )

    async def run(self) -> None:
        """Run every background task until cancelled (stopped for sure: see gateway.aio.run_together)."""
        await run_together(
            *(worker.run() for worker in self.workers),
            self._liveness(),
            self._config_acks(),
            self._prune(),
            self.live.run(),
        )

    async def _liveness(self) -> None:
        """Evaluate liveness windows and case deadlines on the clock, not only when messages arrive."""
        while True:
            now = wall_ms()
            events = self.liveness.tick(now)
            await asyncio.to_thread(self.clock_tick, events, now)
            await asyncio.sleep(LIVENESS_TICK_S)

    def clock_tick(self, events: Sequence[LivenessEvent], now: int) -> None:
        """Hand one tick's liveness changes to the incidents and run their scheduler at `now`."""
        if events:
            self.incidents.liveness_events(events)
        self.escalations += len(self.incidents.tick(now))

    async def _prune(self) -> None:
        """Apply series retention once an hour."""
        while True:
            await asyncio.to_thread(self.store.prune, wall_ms())
            await asyncio.sleep(PRUNE_EVERY_S)

    def _mqtt(self, suffix: str) -> aiomqtt.Client:
        """A client of the cloud's broker account (reads every gateway, writes configs)."""
        return self.settings.ingest.client(suffix)

    async def publish_config(self, gateway: str, document: dict[str, Any]) -> int:
        """Store the gateway's next config bundle and publish it retained on `gw/{id}/config`; return its version."""
        publication = self.registry.bundles.publish_bundle(gateway, document, wall_ms())
        async with self._mqtt("config") as client:
            await client.publish(publication.topic, publication.payload, qos=1, retain=True)
        return publication.bundle.version

    async def _config_acks(self) -> None:
        """Record every gateway's answer to its config bundles."""
        backoff = Backoff(self.settings.ingest.backoff_initial_s, self.settings.ingest.backoff_max_s)
        while True:
            try:
                async with self._mqtt("acks") as client:
                    await client.subscribe(topics.any_gateway(topics.Kind.CONFIG_ACK), qos=1)
                    backoff.reset()
                    async for message in client.messages:
                        self._record_ack(str(message.topic), message.payload)
            except aiomqtt.MqttError as exc:
                log.debug("config ack listener: %s", exc)
            await asyncio.sleep(backoff.next())

    def _record_ack(self, topic: str, payload: Any) -> None:
        """Record one ack; a spoofed or unknown one is logged and dropped."""
        with contextlib.suppress(topics.TopicError):
            gateway, _ = topics.parse(topic)
            if isinstance(payload, bytes):
                try:
                    self.registry.bundles.record_ack(gateway, payload, wall_ms())
                    self.config_acks += 1
                except BundleError as exc:
                    log.warning("config ack from %s refused: %s", gateway, exc)

    def close(self) -> None:
        """Release the store and the database."""
        self.store.close()
        self.db.close()
