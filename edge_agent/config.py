"""Agent configuration: one YAML file in, a validated AgentConfig out (unknown keys name their path)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Self

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from device_profiles import BUNDLED_DIR, ProfileError, load_profiles
from device_profiles.loader import format_validation_error
from device_profiles.schema import Duration, Measure, Profile, Rule, SerialSettings
from edge_agent.buffer import DEFAULT_FSYNC, FsyncPolicy
from edge_agent.uplink import UplinkSettings
from gateway.alerts import Location

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMG]i?B|B)?\s*$", re.IGNORECASE)
_SIZE_FACTORS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 2**10, "mib": 2**20, "gib": 2**30}


def parse_size(value: object) -> int:
    """Turn `256MiB`, `1GB`, `4096` into a number of bytes."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str) and (match := _SIZE.match(value)):
        return int(float(match.group(1)) * _SIZE_FACTORS[(match.group(2) or "B").lower()])
    raise ValueError("a size is a positive number of bytes or a string like '256MiB' or '1GB'")


ByteSize = Annotated[int, BeforeValidator(parse_size)]


class ConfigError(ValueError):
    """The agent configuration is unreadable or invalid; the message names the key path."""


class Strict(BaseModel):
    """Base of every config model: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class GatewaySection(Strict):
    """Who this gateway is and where it keeps its state."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    data_dir: Path = Path("var/agent")


class BufferSection(Strict):
    """The durable buffer's bound and fsync policy."""

    max_bytes: ByteSize = 256 * 2**20
    fsync: FsyncPolicy = DEFAULT_FSYNC


class PortSection(Strict):
    """A serial line (RS-232 or an RS-485 bus shared by several Modbus slaves)."""

    name: str
    path: str
    serial: SerialSettings = SerialSettings()


class LocalBrokerSection(Strict):
    """The local MQTT broker that field MQTT sensors publish to."""

    host: str = "127.0.0.1"
    port: int = Field(1883, gt=0, lt=65536)
    username: str | None = None
    password: str | None = None


class Hj212ListenSection(Strict):
    """The TCP listener HJ 212 stations dial in to."""

    host: str = "127.0.0.1"
    port: int = Field(9212, ge=0, lt=65536)


class Place(Strict):
    """Where a device is installed."""

    lat: float | None = Field(None, ge=-90, le=90)
    lon: float | None = Field(None, ge=-180, le=180)
    part_id: str | None = Field(None, pattern=r"^\d{16}$")
    grid: str | None = None

    def location(self) -> Location:
        """Return the contract Location of this place."""
        return Location(lat=self.lat, lon=self.lon, part_id=self.part_id, grid=self.grid)


class MeasureOverride(Strict):
    """Per-device changes to one measure of the profile."""

    scale: float | None = None
    offset: float | None = None
    device_unit: str | None = None
    valid_range: tuple[float, float] | None = None


class CalibrationSection(Strict):
    """A per-device correction: value × gain + offset."""

    gain: float = 1.0
    offset: float = 0.0


class DeviceSection(Strict):
    """A device bound to a profile, a port or topic, a slave id and a place."""

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    profile: str
    port: str | None = None
    slave: int | None = Field(None, ge=1, le=247)
    topic: str | None = None
    mn: str | None = None
    place: Place = Place()
    interval: Duration | None = None
    timezone: str | None = None
    measures: dict[str, MeasureOverride] = {}
    calibration: dict[str, CalibrationSection] = {}
    # Rule overrides by rule name: the given keys replace the profile's; `enabled: false` drops the rule.
    rules: dict[str, dict[str, Any]] = {}
    extra_rules: list[dict[str, Any]] = []


class AgentConfig(Strict):
    """The whole agent configuration."""

    gateway: GatewaySection
    uplink: UplinkSettings
    buffer: BufferSection = BufferSection()
    profiles_dirs: list[Path] = []
    ports: list[PortSection] = []
    local_broker: LocalBrokerSection | None = None
    hj212_listen: Hj212ListenSection | None = None
    devices: list[DeviceSection] = Field(min_length=1)
    config_version: str = "local"

    @model_validator(mode="after")
    def _unique_ids(self) -> Self:
        for what, names in (
            ("devices", [d.id for d in self.devices]),
            ("ports", [p.name for p in self.ports]),
        ):
            duplicates = sorted({n for n in names if names.count(n) > 1})
            if duplicates:
                raise ValueError(f"{what}: duplicate names {', '.join(duplicates)}")
        return self


class DeviceSpec(BaseModel):
    """A device resolved against its profile: effective measures and rules, ready to run."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    device: DeviceSection
    profile: Profile
    measures: tuple[Measure, ...]
    rules: tuple[Rule, ...]


class _RuleList(BaseModel):
    """Validates a list of rules with the profile schema's tagged union."""

    model_config = ConfigDict(extra="forbid")
    rules: list[Rule]


def _merged_measures(device: DeviceSection, profile: Profile, where: str) -> tuple[Measure, ...]:
    """Apply a device's measure overrides to its profile's measures."""
    known = {m.quantity for m in profile.measures}
    unknown = sorted(set(device.measures) - known) + sorted(set(device.calibration) - known)
    if unknown:
        raise ConfigError(f"{where}: profile {profile.name!r} does not measure {', '.join(unknown)}")
    merged = []
    for measure in profile.measures:
        override = device.measures.get(measure.quantity)
        if override is None:
            merged.append(measure)
            continue
        changes = override.model_dump(exclude_none=True)
        try:
            merged.append(Measure.model_validate({**measure.model_dump(by_alias=True), **changes}))
        except ValidationError as exc:
            raise ConfigError(format_validation_error(f"{where}.measures.{measure.quantity}", exc)) from exc
    return tuple(merged)


def _merged_rules(device: DeviceSection, profile: Profile, where: str) -> tuple[Rule, ...]:
    """Apply a device's rule overrides and extra rules to its profile's default rules."""
    known = {r.name for r in profile.rules}
    unknown = sorted(set(device.rules) - known)
    if unknown:
        raise ConfigError(f"{where}.rules: profile {profile.name!r} has no rule {', '.join(unknown)}")
    documents: list[dict[str, Any]] = []
    for rule in profile.rules:
        changes = dict(device.rules.get(rule.name, {}))
        if changes.pop("enabled", True) is False:
            continue
        documents.append({**rule.model_dump(by_alias=True), **changes})
    documents.extend(device.extra_rules)
    try:
        rules = _RuleList.model_validate({"rules": documents}).rules
    except ValidationError as exc:
        raise ConfigError(format_validation_error(f"{where}", exc)) from exc
    quantities = {m.quantity for m in profile.measures}
    for rule in rules:
        needed = getattr(rule, "quantity", None)
        if needed is not None and needed not in quantities:
            raise ConfigError(f"{where}.rules.{rule.name}: profile {profile.name!r} does not measure {needed}")
    return tuple(rules)


def resolve_devices(config: AgentConfig, profiles: Mapping[str, Profile]) -> list[DeviceSpec]:
    """Check every device's cross-references and merge its overrides into effective specs."""
    ports = {p.name for p in config.ports}
    specs = []
    for index, device in enumerate(config.devices):
        where = f"devices[{index}]"
        profile = profiles.get(device.profile)
        if profile is None:
            raise ConfigError(f"{where}.profile: unknown profile {device.profile!r}")
        transport = profile.read.transport
        if transport in ("serial", "modbus") and device.port not in ports:
            raise ConfigError(f"{where}.port: {transport} device needs one of the ports {sorted(ports)}")
        if transport == "modbus" and device.slave is None:
            raise ConfigError(f"{where}.slave: a Modbus device needs its slave id")
        if transport == "mqtt" and (device.topic is None or config.local_broker is None):
            raise ConfigError(f"{where}.topic: an MQTT device needs a topic and a local_broker section")
        if transport == "tcp" and (device.mn is None or config.hj212_listen is None):
            raise ConfigError(f"{where}.mn: a TCP station needs its MN and an hj212_listen section")
        specs.append(
            DeviceSpec(
                device=device,
                profile=profile,
                measures=_merged_measures(device, profile, where),
                rules=_merged_rules(device, profile, where),
            )
        )
    return specs


def parse_config(data: object, source: str) -> AgentConfig:
    """Validate a config document; raise ConfigError naming `source` and the key path."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: the configuration is a mapping of keys")
    try:
        return AgentConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(source, exc)) from exc


def load_config(path: Path) -> tuple[AgentConfig, list[DeviceSpec]]:
    """Load, validate and resolve an agent configuration file."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read configuration: {exc}") from exc
    config = parse_config(data, str(path))
    base = path.parent
    dirs = [BUNDLED_DIR, *(d if d.is_absolute() else base / d for d in config.profiles_dirs)]
    try:
        profiles = load_profiles(dirs)
    except ProfileError as exc:
        raise ConfigError(f"{path}: profiles_dirs: {exc}") from exc
    try:
        specs = resolve_devices(config, profiles)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    return config, specs
