"""The fleet registry: maintainer actions and enrolment tokens in; gateways, devices and credentials out.

Errors (`reason` is stable, for API responses):

    RegistryError
    ├── InvalidValue          a name, device id, part id or location is malformed ("invalid")
    ├── GatewayExists / GatewayUnknown / GatewayRevoked / NotEnrolled
    ├── DeviceExists / DeviceUnknown
    ├── BrokerUnavailable     the broker files could not be synced; nothing was committed ("broker")
    └── TokenError
        ├── TokenUnknown      no such token ("token_unknown")
        ├── TokenUsed         already exchanged ("token_used")
        └── TokenExpired      past its expiry ("token_expired")

Secrets: enrolment tokens are stored as sha256 digests and gateway passwords as mosquitto `$7$` hashes;
the clear values exist only in the return value of the call that created them.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import dataclass, field
from typing import Any, Final

from cloud.broker_sync import BrokerSync, BrokerSyncError
from cloud.bundles import Bundles
from cloud.db import Database, IntegrityError
from gateway import broker_auth, topics
from gateway.enrolment import BrokerEndpoint, ConfigBundle, EnrolResponse

TOKEN_TTL_MS: Final = 24 * 3600 * 1000
_DEVICE_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_PART_ID: Final = re.compile(r"\d{16}")
# Keys the registry writes itself into a device's agent entry; free-form settings may not replace them.
_DEVICE_OWN_KEYS: Final = frozenset({"id", "profile", "place"})

MIGRATIONS: Final = [
    """
    CREATE TABLE gateways (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        site TEXT NOT NULL,
        created_ms BIGINT NOT NULL,
        enrolled_ms BIGINT,
        revoked_ms BIGINT,
        password_hash TEXT,
        credentials_ms BIGINT,
        agent_version TEXT,
        hostname TEXT
    );
    CREATE TABLE enrolment_tokens (
        token_hash TEXT PRIMARY KEY,
        gateway TEXT NOT NULL REFERENCES gateways (id),
        created_ms BIGINT NOT NULL,
        expires_ms BIGINT NOT NULL,
        used_ms BIGINT
    );
    CREATE TABLE devices (
        id TEXT PRIMARY KEY,
        gateway TEXT NOT NULL REFERENCES gateways (id),
        profile TEXT NOT NULL,
        part_id TEXT,
        lat DOUBLE PRECISION,
        lon DOUBLE PRECISION,
        grid TEXT,
        settings TEXT NOT NULL,
        stale_after_ms BIGINT,
        created_ms BIGINT NOT NULL
    );
    CREATE INDEX devices_by_gateway ON devices (gateway)
    """,
]


class RegistryError(Exception):
    """A registry action is refused; `reason` names why."""

    reason = "registry"


class InvalidValue(RegistryError):
    """A name, id, part id or location is malformed."""

    reason = "invalid"


class GatewayExists(RegistryError):
    """A gateway with that id is already registered."""

    reason = "gateway_exists"


class GatewayUnknown(RegistryError):
    """No gateway has that id."""

    reason = "gateway_unknown"


class GatewayRevoked(RegistryError):
    """The gateway was revoked; issue a new enrolment token to bring it back."""

    reason = "gateway_revoked"


class NotEnrolled(RegistryError):
    """The gateway has not exchanged its enrolment token yet."""

    reason = "not_enrolled"


class DeviceExists(RegistryError):
    """A device with that id is already bound (device ids are unique district-wide)."""

    reason = "device_exists"


class DeviceUnknown(RegistryError):
    """No device has that id."""

    reason = "device_unknown"


class BrokerUnavailable(RegistryError):
    """The broker password file could not be synced; the action was rolled back."""

    reason = "broker"


class TokenError(RegistryError):
    """An enrolment token cannot be exchanged."""


class TokenUnknown(TokenError):
    """No such enrolment token."""

    reason = "token_unknown"


class TokenUsed(TokenError):
    """The enrolment token was already exchanged."""

    reason = "token_used"


class TokenExpired(TokenError):
    """The enrolment token is past its expiry."""

    reason = "token_expired"


@dataclass(frozen=True, slots=True)
class Gateway:
    """A registered gateway; its id is also its broker username and topic level."""

    id: str
    name: str
    site: str
    created_ms: int
    enrolled_ms: int | None = None
    revoked_ms: int | None = None
    credentials_ms: int | None = None
    agent_version: str | None = None
    hostname: str | None = None

    @property
    def state(self) -> str:
        """Return `pending` (not enrolled), `enrolled` or `revoked`."""
        if self.revoked_ms is not None:
            return "revoked"
        return "pending" if self.enrolled_ms is None else "enrolled"


@dataclass(frozen=True, slots=True)
class EnrolmentToken:
    """A one-time enrolment token as issued; `token` is shown once and stored only hashed."""

    gateway: str
    token: str = field(repr=False)
    expires_ms: int


@dataclass(frozen=True, slots=True)
class Credentials:
    """Per-gateway broker credentials with the bundle the gateway should run."""

    gateway: str
    username: str
    password: str = field(repr=False)
    broker: BrokerEndpoint
    bundle: ConfigBundle

    def response(self) -> EnrolResponse:
        """Return the enrol endpoint's response body."""
        return EnrolResponse(
            gateway=self.gateway,
            username=self.username,
            password=self.password,
            broker=self.broker,
            bundle=self.bundle,
        )


@dataclass(frozen=True, slots=True)
class Device:
    """A device bound to a gateway, a profile, a part id (部件标识码), a location and a grid.

    `settings` are the agent-side keys of its entry (port, slave, topic, mn, interval, rules, ...);
    `stale_after_ms` is its liveness window (None: the fleet default).
    """

    id: str
    gateway: str
    profile: str
    part_id: str | None = None
    lat: float | None = None
    lon: float | None = None
    grid: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    stale_after_ms: int | None = None

    def validate(self) -> Device:
        """Return self, or raise InvalidValue naming the malformed field."""
        if not _DEVICE_ID.fullmatch(self.id):
            raise InvalidValue(f"device id {self.id!r}: use 1-64 of [A-Za-z0-9_.-]")
        if not self.profile:
            raise InvalidValue(f"device {self.id}: profile is empty")
        if self.part_id is not None and not _PART_ID.fullmatch(self.part_id):
            raise InvalidValue(f"device {self.id}: part id {self.part_id!r} is not 16 digits")
        if self.lat is not None and not -90 <= self.lat <= 90:
            raise InvalidValue(f"device {self.id}: latitude {self.lat} out of range")
        if self.lon is not None and not -180 <= self.lon <= 180:
            raise InvalidValue(f"device {self.id}: longitude {self.lon} out of range")
        if self.stale_after_ms is not None and self.stale_after_ms <= 0:
            raise InvalidValue(f"device {self.id}: stale_after_ms must be positive")
        own = sorted(_DEVICE_OWN_KEYS & set(self.settings))
        if own:
            raise InvalidValue(f"device {self.id}: settings may not set {', '.join(own)}")
        return self

    def agent_entry(self) -> dict[str, Any]:
        """Return the device's entry in an agent configuration's `devices` list."""
        place = {"lat": self.lat, "lon": self.lon, "part_id": self.part_id, "grid": self.grid}
        return {
            "id": self.id,
            "profile": self.profile,
            **self.settings,
            "place": {k: v for k, v in place.items() if v is not None},
        }


def new_token() -> str:
    """Return 32 random url-safe bytes as text that never starts with "-"."""
    # Maintainers paste it as `gridwatch agent enroll TOKEN`, where a leading "-" reads as an option
    # (one token in 64 did: a flaky end-to-end test showed it).
    while (token := secrets.token_urlsafe(32)).startswith("-"):
        pass
    return token


def token_digest(token: str) -> str:
    """Return the stored form of an enrolment token."""
    return hashlib.sha256(token.encode()).hexdigest()


def gateway_id(name: str) -> str:
    """Derive a gateway id from a maintainer's NAME (lowercase, spaces to dashes) or raise InvalidValue."""
    candidate = "-".join(name.strip().lower().split())
    try:
        return topics.validate_gateway(candidate)
    except topics.TopicError as exc:
        raise InvalidValue(f"gateway name {name!r} does not give a valid id ([a-z0-9][a-z0-9_-]{{0,63}})") from exc


_GATEWAY_COLUMNS: Final = "id, name, site, created_ms, enrolled_ms, revoked_ms, credentials_ms, agent_version, hostname"
_DEVICE_COLUMNS: Final = "id, gateway, profile, part_id, lat, lon, grid, settings, stale_after_ms"


def _device(row: tuple[Any, ...]) -> Device:
    device, gateway, profile, part_id, lat, lon, grid, settings, stale_after_ms = row
    return Device(device, gateway, profile, part_id, lat, lon, grid, json.loads(settings), stale_after_ms)


class Registry:
    """Gateways, their enrolment, broker credentials and devices, in one Database."""

    def __init__(
        self,
        db: Database,
        broker_endpoint: BrokerEndpoint,
        *,
        broker: BrokerSync | None = None,
        token_ttl_ms: int = TOKEN_TTL_MS,
        reserved: tuple[str, ...] = broker_auth.DEFAULT_CLOUD_USERS,
    ) -> None:
        self.db = db
        self.broker_endpoint = broker_endpoint
        self.broker = broker
        self.token_ttl_ms = token_ttl_ms
        # Broker users of the cloud itself: a gateway with such an id would get the cloud's ACL.
        self.reserved = frozenset(reserved) | (frozenset(broker.cloud_users) if broker else frozenset())
        db.migrate("registry", MIGRATIONS)
        self.bundles = Bundles(db)

    def gateway(self, gateway: str) -> Gateway:
        """Return a registered gateway or raise GatewayUnknown."""
        row = self.db.fetchone(f"SELECT {_GATEWAY_COLUMNS} FROM gateways WHERE id = ?", (gateway,))
        if row is None:
            raise GatewayUnknown(f"unknown gateway {gateway!r}")
        return Gateway(*row)

    def gateways(self) -> list[Gateway]:
        """Return every registered gateway by id."""
        return [Gateway(*r) for r in self.db.fetchall(f"SELECT {_GATEWAY_COLUMNS} FROM gateways ORDER BY id")]

    def register_gateway(self, name: str, site: str, now: int) -> tuple[Gateway, EnrolmentToken]:
        """Register a gateway by NAME at a site and issue its one-time enrolment token."""
        gw = gateway_id(name)
        if gw in self.reserved:
            raise InvalidValue(f"gateway id {gw!r} is reserved for a cloud broker user")
        with self.db.transaction():
            try:
                self.db.execute(
                    "INSERT INTO gateways (id, name, site, created_ms) VALUES (?, ?, ?, ?)",
                    (gw, name.strip(), site, now),
                )
            except IntegrityError as exc:
                raise GatewayExists(f"gateway {gw!r} is already registered") from exc
            token = self.issue_token(gw, now)
        return self.gateway(gw), token

    def issue_token(self, gateway: str, now: int) -> EnrolmentToken:
        """Issue a fresh enrolment token for a registered gateway; its unused older tokens stop working."""
        with self.db.transaction():
            self.gateway(gateway)
            token = new_token()
            expires = now + self.token_ttl_ms
            self.db.execute("DELETE FROM enrolment_tokens WHERE gateway = ? AND used_ms IS NULL", (gateway,))
            self.db.execute(
                "INSERT INTO enrolment_tokens (token_hash, gateway, created_ms, expires_ms) VALUES (?, ?, ?, ?)",
                (token_digest(token), gateway, now, expires),
            )
        return EnrolmentToken(gateway=gateway, token=token, expires_ms=expires)

    def enrol(self, token: str, now: int, *, agent_version: str = "", hostname: str = "") -> Credentials:
        """Exchange a one-time token for broker credentials and the gateway's current bundle."""
        digest = token_digest(token)
        with self.db.transaction():
            row = self.db.fetchone(
                "SELECT gateway, expires_ms, used_ms FROM enrolment_tokens WHERE token_hash = ?", (digest,)
            )
            if row is None:
                raise TokenUnknown("unknown enrolment token")
            gw, expires_ms, used_ms = row
            if used_ms is not None:
                raise TokenUsed(f"enrolment token of {gw!r} was already used")
            if now >= expires_ms:
                raise TokenExpired(f"enrolment token of {gw!r} expired")
            self.db.execute("UPDATE enrolment_tokens SET used_ms = ? WHERE token_hash = ?", (now, digest))
            self.db.execute(
                "UPDATE gateways SET enrolled_ms = ?, revoked_ms = NULL, agent_version = ?, hostname = ? WHERE id = ?",
                (now, agent_version, hostname, gw),
            )
            return self._new_credentials(gw, now)

    def rotate(self, gateway: str, now: int) -> Credentials:
        """Issue a new broker password for an enrolled gateway; the old one stops working."""
        with self.db.transaction():
            gw = self.gateway(gateway)
            if gw.revoked_ms is not None:
                raise GatewayRevoked(f"gateway {gateway!r} is revoked")
            if gw.enrolled_ms is None:
                raise NotEnrolled(f"gateway {gateway!r} has not enrolled")
            return self._new_credentials(gateway, now)

    def revoke(self, gateway: str, now: int) -> Gateway:
        """Revoke a gateway: its broker user goes (live sessions are cut) and its unused tokens die."""
        with self.db.transaction():
            self.gateway(gateway)
            self.db.execute(
                "UPDATE gateways SET revoked_ms = ?, password_hash = NULL, credentials_ms = ? WHERE id = ?",
                (now, now, gateway),
            )
            self.db.execute("DELETE FROM enrolment_tokens WHERE gateway = ? AND used_ms IS NULL", (gateway,))
            self.sync_broker()
        return self.gateway(gateway)

    def check_password(self, gateway: str, password: str) -> bool:
        """Tell whether `password` is the gateway's current broker password."""
        row = self.db.fetchone("SELECT password_hash FROM gateways WHERE id = ?", (gateway,))
        return row is not None and row[0] is not None and broker_auth.verify_password(row[0], password)

    def _new_credentials(self, gateway: str, now: int) -> Credentials:
        """Store a new password hash, sync the broker and return the credentials (inside a transaction)."""
        password = secrets.token_urlsafe(32)
        self.db.execute(
            "UPDATE gateways SET password_hash = ?, credentials_ms = ? WHERE id = ?",
            (broker_auth.hash_password(password), now, gateway),
        )
        latest = self.bundles.latest(gateway)
        bundle = latest.bundle if latest else self.bundles.create(gateway, self.default_document(gateway), now)
        # Synced last: a failure rolls the whole transaction back, so the token stays usable.
        self.sync_broker()
        return Credentials(gateway, gateway, password, self.broker_endpoint, bundle)

    def sync_broker(self) -> None:
        """Make the broker password file match the registry and reload the broker (no-op without one)."""
        if self.broker is None:
            return
        rows = self.db.fetchall("SELECT id, password_hash FROM gateways")
        active = {gw: hashed for gw, hashed in rows if hashed is not None}
        try:
            self.broker.apply({gw for gw, _ in rows}, active)
        except BrokerSyncError as exc:
            raise BrokerUnavailable(f"broker sync failed: {exc}") from exc

    def default_document(self, gateway: str) -> dict[str, Any]:
        """Return a bundle document for a gateway: its id, the broker endpoint and its bound devices."""
        return {
            "gateway": {"id": gateway},
            "uplink": {"host": self.broker_endpoint.host, "port": self.broker_endpoint.port, "username": gateway},
            "devices": [d.agent_entry() for d in self.devices(gateway)],
        }

    def bind_device(self, device: Device, now: int) -> Device:
        """Bind a new device to its gateway; device ids are unique district-wide."""
        device.validate()
        with self.db.transaction():
            self.gateway(device.gateway)
            try:
                self.db.execute(
                    f"INSERT INTO devices ({_DEVICE_COLUMNS}, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        device.id,
                        device.gateway,
                        device.profile,
                        device.part_id,
                        device.lat,
                        device.lon,
                        device.grid,
                        json.dumps(device.settings, sort_keys=True),
                        device.stale_after_ms,
                        now,
                    ),
                )
            except IntegrityError as exc:
                raise DeviceExists(f"device {device.id!r} is already bound") from exc
        return device

    def unbind_device(self, device: str) -> None:
        """Remove a device from the registry."""
        if self.db.execute("DELETE FROM devices WHERE id = ?", (device,)) != 1:
            raise DeviceUnknown(f"unknown device {device!r}")

    def device(self, device: str) -> Device:
        """Return a bound device or raise DeviceUnknown."""
        row = self.db.fetchone(f"SELECT {_DEVICE_COLUMNS} FROM devices WHERE id = ?", (device,))
        if row is None:
            raise DeviceUnknown(f"unknown device {device!r}")
        return _device(row)

    def devices(self, gateway: str | None = None) -> list[Device]:
        """Return the devices of one gateway (or all), by id."""
        if gateway is None:
            rows = self.db.fetchall(f"SELECT {_DEVICE_COLUMNS} FROM devices ORDER BY id")
        else:
            rows = self.db.fetchall(f"SELECT {_DEVICE_COLUMNS} FROM devices WHERE gateway = ? ORDER BY id", (gateway,))
        return [_device(r) for r in rows]
