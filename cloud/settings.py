"""Cloud settings: a YAML file and GRIDWATCH_* environment variables in, validated CloudSettings out."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from cloud.ingest.settings import IngestSettings
from cloud.live.settings import LiveSettings

ENV_PREFIX = "GRIDWATCH_"


class SettingsError(ValueError):
    """The settings are unreadable or invalid; the message names the key path and never a secret."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SeriesSettings(_Strict):
    """Where series go: the embedded SQLite store, or InfluxDB line protocol (InfluxDB 2/3, VictoriaMetrics)."""

    backend: Literal["sqlite", "lineprotocol"] = "sqlite"
    url: str = "http://127.0.0.1:8428"
    token: SecretStr | None = None
    org: str = "gridwatch"
    bucket: str = "gridwatch"
    raw_retention_days: int = Field(30, ge=1)


class BrokerAdminSettings(_Strict):
    """How the cloud manages the broker's gateway accounts: the files mosquitto reads and how to reload it."""

    password_file: Path | None = None
    acl_file: Path | None = None
    # The process to SIGHUP after the files change (mosquitto re-reads them); None = no broker to manage.
    pid_file: Path | None = None


class GatewayBrokerSettings(_Strict):
    """The broker address handed to gateways at enrolment (as they reach it, not as the cloud does)."""

    host: str = "127.0.0.1"
    port: int = Field(1883, gt=0, lt=65536)


class LivenessSettings(_Strict):
    """Windows after which a silent gateway is offline and a silent device is stale."""

    heartbeat_window_s: float = Field(90.0, gt=0)
    device_window_s: float = Field(900.0, gt=0)


class MapSettings(_Strict):
    """The command-center map: grid polygons always; a raster base map only when a tile server is set."""

    # An XYZ (Web Mercator) tile URL such as https://tiles.example/{z}/{x}/{y}.png; None = polygons only
    # (the default: the page must work with no internet).
    tile_url: str | None = None
    tile_attribution: str = ""
    tile_max_zoom: int = Field(18, ge=0, le=22)

    @field_validator("tile_url")
    @classmethod
    def _tile_url(cls, url: str | None) -> str | None:
        if url is None:
            return None
        missing = [part for part in ("{z}", "{x}", "{y}") if part not in url]
        if missing:
            raise ValueError(f"the tile URL needs {', '.join(missing)}")
        if not url.startswith(("http://", "https://", "/")):
            raise ValueError("the tile URL is http(s):// or a path on this server")
        return url


class CloudSettings(_Strict):
    """Everything `gridwatch cloud` needs; defaults run on one machine with zero setup."""

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, lt=65536)
    data_dir: Path = Path("var/cloud")
    # SQLite path or postgresql:// URL for the registry and the incidents; default data_dir/cloud.db.
    database: str | None = None
    series: SeriesSettings = SeriesSettings()
    ingest: IngestSettings = IngestSettings(username="ingest")
    ingest_workers: int = Field(1, ge=0, le=16)
    broker_admin: BrokerAdminSettings = BrokerAdminSettings()
    gateway_broker: GatewayBrokerSettings = GatewayBrokerSettings()
    liveness: LivenessSettings = LivenessSettings()
    # The first admin account, created at start if missing; its password comes from the environment.
    admin_user: str = "admin"
    admin_password: SecretStr | None = None
    enrol_token_ttl_s: int = Field(24 * 3600, ge=60)
    live: LiveSettings = LiveSettings()
    # Device profiles the rule categories are read from (default: the bundled ones).
    profiles_dir: Path | None = None
    public_url: str = "http://127.0.0.1:8000"
    map: MapSettings = MapSettings()

    @model_validator(mode="after")
    def _one_plain_subscriber(self) -> Self:
        if self.ingest.group is None and self.ingest_workers > 1:
            # Without a shared group every worker would receive, and apply, every message.
            raise ValueError("ingest_workers: more than one worker needs a shared ingest.group (MQTT 5 $share)")
        return self

    def database_url(self) -> str:
        """Return the registry database location."""
        return self.database or str(self.data_dir / "cloud.db")


def _env_overlay(environ: Mapping[str, str]) -> dict[str, Any]:
    """Turn GRIDWATCH_SECTION__KEY=value variables into a nested document (YAML scalars)."""
    doc: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name == f"{ENV_PREFIX}CONFIG":
            continue
        path = name.removeprefix(ENV_PREFIX).lower().split("__")
        node = doc
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = yaml.safe_load(value) if value else value
    return doc


def _merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge `top` over `base`."""
    out = dict(base)
    for key, value in top.items():
        out[key] = _merge(out[key], value) if isinstance(value, Mapping) and isinstance(out.get(key), dict) else value
    return out


def load_settings(path: Path | None = None, environ: Mapping[str, str] | None = None) -> CloudSettings:
    """Load settings from `path` (optional) overlaid with the environment; raise SettingsError on mistakes."""
    environ = os.environ if environ is None else environ
    doc: dict[str, Any] = {}
    source = "environment"
    if path is not None:
        source = str(path)
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise SettingsError(f"{path}: cannot read settings: {exc}") from exc
        if not isinstance(loaded, dict):
            raise SettingsError(f"{path}: settings are a mapping of keys")
        doc = loaded
    doc = _merge(doc, _env_overlay(environ))
    try:
        return CloudSettings.model_validate(doc)
    except ValidationError as exc:
        lines = []
        for err in exc.errors(include_input=False):
            loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
            msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
            lines.append(f"{source}: {loc}: {msg}")
        raise SettingsError("\n".join(lines)) from exc
