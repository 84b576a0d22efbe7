"""Versioned config bundles: a gateway and a document in; stored bundles, retained payloads and acks out.

Versions start at 1 and increase per gateway; a bundle is never changed once stored. Each bundle's
document gets `config_version: "<version>"`, so the agent's heartbeat reports which bundle it runs.
The payload for the retained `gw/{id}/config` topic is the bundle's JSON (no secrets: the agent keeps
its own credentials). Acks from `gw/{id}/config/ack` are recorded on the bundle they name.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from cloud.db import Database, IntegrityError
from gateway import topics
from gateway.enrolment import AckStatus, ConfigAck, ConfigBundle, EnrolmentWireError, decode_ack, encode

__all__ = ["BundleError", "BundleRecord", "Bundles", "ConfigBundle", "Publication"]

MIGRATIONS: Final = [
    """
    CREATE TABLE bundles (
        gateway TEXT NOT NULL REFERENCES gateways (id),
        version INTEGER NOT NULL,
        document TEXT NOT NULL,
        created_ms BIGINT NOT NULL,
        ack_status TEXT,
        ack_error TEXT,
        ack_ms BIGINT,
        PRIMARY KEY (gateway, version)
    )
    """,
]
_COLUMNS: Final = "gateway, version, document, created_ms, ack_status, ack_error, ack_ms"


class BundleError(Exception):
    """A bundle or ack is refused; `reason` is stable (unknown_gateway, unknown_version, spoofed, invalid)."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Publication:
    """What to publish for a bundle: retained, QoS 1."""

    topic: str
    payload: bytes
    bundle: ConfigBundle
    retain: bool = True
    qos: int = 1


@dataclass(frozen=True, slots=True)
class BundleRecord:
    """A stored bundle with the last ack the gateway sent for it."""

    bundle: ConfigBundle
    ack_status: AckStatus | None
    ack_error: str | None
    ack_ms: int | None


def publication(bundle: ConfigBundle) -> Publication:
    """Return the retained `gw/{id}/config` message of a bundle."""
    return Publication(topic=topics.config(bundle.gateway), payload=encode(bundle), bundle=bundle)


class Bundles:
    """The bundle store; create it after the registry schema (its rows reference gateways)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        db.migrate("bundles", MIGRATIONS)

    def create(self, gateway: str, document: Mapping[str, Any], now: int) -> ConfigBundle:
        """Store `document` as the gateway's next bundle version and return it."""
        topics.validate_gateway(gateway)
        with self.db.transaction():
            row = self.db.fetchone("SELECT MAX(version) FROM bundles WHERE gateway = ?", (gateway,))
            version = 1 + (int(row[0]) if row and row[0] is not None else 0)
            doc = {**document, "config_version": str(version)}
            bundle = ConfigBundle(gateway=gateway, version=version, document=doc, created_ms=now)
            try:
                self.db.execute(
                    "INSERT INTO bundles (gateway, version, document, created_ms) VALUES (?, ?, ?, ?)",
                    (gateway, version, json.dumps(doc, sort_keys=True), now),
                )
            except IntegrityError as exc:
                raise BundleError(f"unknown gateway {gateway!r}", reason="unknown_gateway") from exc
        return bundle

    def publish_bundle(self, gateway: str, document: Mapping[str, Any], now: int) -> Publication:
        """Store the next bundle and return its retained message for `gw/{id}/config`."""
        return publication(self.create(gateway, document, now))

    def _record(self, row: tuple[Any, ...]) -> BundleRecord:
        gateway, version, document, created_ms, status, error, ack_ms = row
        bundle = ConfigBundle(gateway=gateway, version=version, document=json.loads(document), created_ms=created_ms)
        return BundleRecord(bundle, None if status is None else AckStatus(status), error, ack_ms)

    def get(self, gateway: str, version: int) -> BundleRecord | None:
        """Return one bundle version of a gateway with its ack, or None."""
        row = self.db.fetchone(f"SELECT {_COLUMNS} FROM bundles WHERE gateway = ? AND version = ?", (gateway, version))
        return None if row is None else self._record(row)

    def latest(self, gateway: str) -> BundleRecord | None:
        """Return the newest bundle of a gateway, or None."""
        row = self.db.fetchone(
            f"SELECT {_COLUMNS} FROM bundles WHERE gateway = ? ORDER BY version DESC LIMIT 1", (gateway,)
        )
        return None if row is None else self._record(row)

    def history(self, gateway: str) -> list[BundleRecord]:
        """Return every bundle of a gateway, oldest first."""
        rows = self.db.fetchall(f"SELECT {_COLUMNS} FROM bundles WHERE gateway = ? ORDER BY version", (gateway,))
        return [self._record(r) for r in rows]

    def applied(self, gateway: str) -> BundleRecord | None:
        """Return the newest bundle the gateway acknowledged as applied, or None."""
        row = self.db.fetchone(
            f"SELECT {_COLUMNS} FROM bundles WHERE gateway = ? AND ack_status = ? ORDER BY version DESC LIMIT 1",
            (gateway, AckStatus.APPLIED.value),
        )
        return None if row is None else self._record(row)

    def record_ack(self, topic_gateway: str, payload: bytes, now: int) -> ConfigAck:
        """Record an ack received on `gw/{topic_gateway}/config/ack`; refuse spoofed or unknown ones."""
        try:
            ack = decode_ack(payload)
        except EnrolmentWireError as exc:
            raise BundleError(str(exc), reason="invalid") from exc
        if ack.gateway != topic_gateway:
            raise BundleError(f"ack for {ack.gateway!r} arrived on {topic_gateway!r}'s topic", reason="spoofed")
        changed = self.db.execute(
            "UPDATE bundles SET ack_status = ?, ack_error = ?, ack_ms = ? WHERE gateway = ? AND version = ?",
            (ack.status.value, ack.error, now, ack.gateway, ack.version),
        )
        if changed != 1:
            raise BundleError(f"{ack.gateway!r} has no bundle v{ack.version}", reason="unknown_version")
        return ack
