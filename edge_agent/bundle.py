"""Config bundles on the gateway: a bundle and the config pointer in; the new version or a rollback, and an ack out.

Layout next to the configuration the agent starts from (`pointer`, e.g. `agent.yaml`):

    agent.yaml -> agent.v3.yaml    a symlink, switched by an atomic rename
    agent.v3.yaml                  one file per bundle version, mode 0600 (it holds the uplink password)
    agent.v4.yaml, agent.v4.error  a version that failed to start its sources, kept with the error

Applying a bundle: validate it as the agent would at start (parse_config + resolve_devices, the bundle's
document merged with the credentials of the running config, which the cloud never sends) -> write its
version file atomically -> switch the pointer -> `try_start`; when that raises, switch back and report
`rolled_back` with the error. A version that already failed is not retried (the retained bundle comes
back on every reconnect); the active version is acknowledged again without a restart.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Final

import serial
import yaml

from device_profiles import BUNDLED_DIR, ProfileError, load_profiles
from edge_agent.config import AgentConfig, ConfigError, DeviceSpec, parse_config, resolve_devices
from gateway.broker_auth import write_private
from gateway.enrolment import AckStatus, ConfigAck, ConfigBundle

TryStart = Callable[[AgentConfig, Sequence[DeviceSpec]], Awaitable[None]]
_VERSION: Final = re.compile(r"\.v(\d+)\.ya?ml$")
# An ack carries at most this much error text (the wire model's limit).
_MAX_ERROR: Final = 4000


class BundleError(Exception):
    """The config directory cannot be read or written."""


class SourceStartError(Exception):
    """A configuration's sources cannot start (e.g. a serial port that cannot be opened)."""


def version_path(pointer: Path, version: int) -> Path:
    """Return the file of one bundle version beside the pointer (`agent.yaml` -> `agent.v7.yaml`)."""
    return pointer.with_name(f"{pointer.stem}.v{version}{pointer.suffix}")


def active_version(pointer: Path) -> int | None:
    """Return the bundle version the pointer designates (None for a hand-written config)."""
    if not pointer.is_symlink():
        return None
    match = _VERSION.search(os.readlink(pointer))
    return int(match.group(1)) if match else None


def _sync_dir(directory: Path) -> None:
    # The rename is durable only once the directory entry is on disk.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def point(pointer: Path, target: Path) -> None:
    """Make `pointer` a symlink to `target` (a sibling) in one atomic rename."""
    tmp = pointer.with_name(f".{pointer.name}.{os.getpid()}.link")
    tmp.unlink(missing_ok=True)
    os.symlink(target.name, tmp)
    os.replace(tmp, pointer)
    _sync_dir(pointer.parent)


def install(pointer: Path, version: int, document: dict[str, Any]) -> Path:
    """Write a version file for `document` and point `pointer` at it; return the version file."""
    target = version_path(pointer, version)
    write_private(target, yaml.safe_dump(document, sort_keys=False, allow_unicode=True))
    point(pointer, target)
    return target


def _merged_document(current: dict[str, Any], bundle: ConfigBundle) -> dict[str, Any]:
    """Return the bundle's document with the running config's uplink credentials (and protocol) filled in."""
    document = dict(bundle.document)
    uplink = dict(document.get("uplink") or {})
    mine = current.get("uplink") or {}
    for key in ("username", "password"):
        if key in mine:
            uplink[key] = mine[key]
    # The MQTT version is what this gateway's broker speaks (3.1.1 on amqtt): kept unless the bundle says.
    if "protocol" in mine and "protocol" not in uplink:
        uplink["protocol"] = mine["protocol"]
    document["uplink"] = uplink
    return document


def validate(pointer: Path, document: dict[str, Any], source: str) -> tuple[AgentConfig, list[DeviceSpec]]:
    """Validate a document exactly as `load_config` would at start; raise ConfigError."""
    config = parse_config(document, source)
    dirs = [BUNDLED_DIR, *(d if d.is_absolute() else pointer.parent / d for d in config.profiles_dirs)]
    try:
        profiles = load_profiles(dirs)
    except ProfileError as exc:
        raise ConfigError(f"{source}: profiles_dirs: {exc}") from exc
    try:
        return config, resolve_devices(config, profiles)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from exc


def _open_port(path: str, baudrate: int) -> None:
    with serial.Serial(path, baudrate=baudrate, timeout=0):
        pass


async def probe_sources(config: AgentConfig, specs: Sequence[DeviceSpec] = ()) -> None:
    """Open every configured serial port once; raise SourceStartError naming each that cannot open."""
    failures = []
    for port in config.ports:
        try:
            await asyncio.to_thread(_open_port, port.path, port.serial.baudrate)
        except (OSError, serial.SerialException) as exc:
            failures.append(f"port {port.name} ({port.path}): {exc}")
    if failures:
        raise SourceStartError("; ".join(failures))


def _read_current(pointer: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(pointer.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise BundleError(f"cannot read the running configuration {pointer}: {exc}") from exc
    if not isinstance(data, dict):
        raise BundleError(f"{pointer}: the running configuration is not a mapping")
    return data


def _adopt(pointer: Path, current: dict[str, Any]) -> None:
    """Turn a hand-written config file into version 0 behind a pointer, so it can be rolled back to."""
    if pointer.exists() and not pointer.is_symlink():
        install(pointer, 0, current)


def _ack(bundle: ConfigBundle, status: AckStatus, now_ms: int, error: str | None = None) -> ConfigAck:
    text = None if error is None else error[:_MAX_ERROR]
    return ConfigAck(gateway=bundle.gateway, version=bundle.version, status=status, error=text, ts_ms=now_ms)


async def apply_bundle(
    pointer: Path, bundle: ConfigBundle, now_ms: int, try_start: TryStart = probe_sources
) -> ConfigAck:
    """Apply a bundle to the config behind `pointer`; return the ack to publish on `gw/{id}/config/ack`."""
    current = _read_current(pointer)
    running_id = (current.get("gateway") or {}).get("id")
    if bundle.gateway != running_id:
        return _ack(bundle, AckStatus.REJECTED, now_ms, f"bundle for {bundle.gateway!r}, this is {running_id!r}")
    active = active_version(pointer)
    if active is not None and bundle.version == active:
        return _ack(bundle, AckStatus.APPLIED, now_ms)
    if active is not None and bundle.version < active:
        return _ack(bundle, AckStatus.REJECTED, now_ms, f"version {bundle.version} is older than active {active}")
    error_file = version_path(pointer, bundle.version).with_suffix(".error")
    if error_file.exists():
        return _ack(bundle, AckStatus.ROLLED_BACK, now_ms, error_file.read_text(encoding="utf-8"))
    document = _merged_document(current, bundle)
    try:
        config, specs = validate(pointer, document, f"bundle v{bundle.version}")
    except ConfigError as exc:
        return _ack(bundle, AckStatus.REJECTED, now_ms, str(exc))
    _adopt(pointer, current)
    previous = Path(os.readlink(pointer))
    try:
        install(pointer, bundle.version, document)
    except OSError as exc:
        raise BundleError(f"cannot write bundle v{bundle.version}: {exc}") from exc
    try:
        await try_start(config, specs)
    except Exception as exc:  # whatever made the sources fail, the previous version must come back
        point(pointer, pointer.with_name(previous.name))
        error = f"{type(exc).__name__}: {exc}"
        write_private(error_file, error)
        return _ack(bundle, AckStatus.ROLLED_BACK, now_ms, error)
    return _ack(bundle, AckStatus.APPLIED, now_ms)
