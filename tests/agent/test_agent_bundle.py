"""Bundle application on the gateway: validate, switch atomically, probe the sources, roll back and acknowledge."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge_agent.bundle import active_version, apply_bundle, install, probe_sources, version_path
from edge_agent.config import AgentConfig, DeviceSpec, load_config
from gateway.enrolment import AckStatus, ConfigBundle

T0 = 1_718_000_000_000
GW = "gw-a"


@pytest.fixture
def pty_path() -> Iterator[str]:
    """The path of a real pseudo-terminal, a serial port that opens."""
    controller, follower = os.openpty()
    try:
        yield os.ttyname(follower)
    finally:
        os.close(follower)
        os.close(controller)


def _document(serial_path: str, **extra: Any) -> dict[str, Any]:
    """Return a cloud-side document (no password) with one GNSS receiver on `serial_path`."""
    return {
        "gateway": {"id": GW},
        "uplink": {"host": "127.0.0.1", "port": 1883, "username": GW},
        "ports": [{"name": "gnss", "path": serial_path}],
        "devices": [{"id": "gnss-1", "profile": "gnss-nmea", "port": "gnss", "place": {"grid": "41010210100101"}}],
        **extra,
    }


def _bundle(version: int, document: dict[str, Any], gateway: str = GW) -> ConfigBundle:
    return ConfigBundle(
        gateway=gateway, version=version, document={**document, "config_version": str(version)}, created_ms=T0
    )


def _enrolled(tmp_path: Path, serial_path: str) -> Path:
    """Install version 1 as enrolment does: the document with the uplink password filled in."""
    document = _bundle(1, _document(serial_path)).document
    document["uplink"] = {**document["uplink"], "password": "s3cret-from-enrolment"}
    pointer = tmp_path / "agent.yaml"
    install(pointer, 1, document)
    return pointer


class Starts:
    """A try_start that records its calls and probes the sources like the real agent start would."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def __call__(self, config: AgentConfig, specs: Sequence[DeviceSpec]) -> None:
        self.calls.append(config.config_version)
        await probe_sources(config, specs)


async def test_good_bundle_becomes_active_and_keeps_the_credentials(tmp_path: Path, pty_path: str) -> None:
    """A valid bundle whose ports open is written as v2, the pointer moves to it, and the password carries over."""
    pointer = _enrolled(tmp_path, pty_path)
    starts = Starts()
    ack = await apply_bundle(pointer, _bundle(2, _document(pty_path)), T0 + 1, starts)
    assert (ack.status, ack.version, ack.error, ack.ts_ms) == (AckStatus.APPLIED, 2, None, T0 + 1)
    assert starts.calls == ["2"]
    assert active_version(pointer) == 2
    config, _ = load_config(pointer)
    assert config.config_version == "2"
    assert config.uplink.password is not None
    assert config.uplink.password.get_secret_value() == "s3cret-from-enrolment"
    assert oct(version_path(pointer, 2).stat().st_mode & 0o777) == "0o600"


async def test_a_gateway_on_an_mqtt_3_broker_keeps_its_protocol_across_bundles(tmp_path: Path, pty_path: str) -> None:
    """The broker's MQTT version is the gateway's own: a bundle without one keeps 3.1.1; one that sets it wins."""
    document = _bundle(1, _document(pty_path)).document
    document["uplink"] = {**document["uplink"], "password": "pw", "protocol": "3.1.1"}
    pointer = tmp_path / "agent.yaml"
    install(pointer, 1, document)
    await apply_bundle(pointer, _bundle(2, _document(pty_path)), T0, Starts())
    assert load_config(pointer)[0].uplink.protocol == "3.1.1"
    pushed = _document(pty_path)
    pushed["uplink"] = {**pushed["uplink"], "protocol": "5"}
    await apply_bundle(pointer, _bundle(3, pushed), T0, Starts())
    assert load_config(pointer)[0].uplink.protocol == "5"


async def test_bundle_whose_serial_port_cannot_open_rolls_back_and_is_not_retried(
    tmp_path: Path, pty_path: str
) -> None:
    """A missing serial port fails the start: the pointer returns to v1, the ack says why, redelivery does not retry."""
    pointer = _enrolled(tmp_path, pty_path)
    starts = Starts()
    bad = _bundle(2, _document(str(tmp_path / "ttyNOPE")))
    ack = await apply_bundle(pointer, bad, T0, starts)
    assert ack.status is AckStatus.ROLLED_BACK
    assert ack.error is not None
    assert "port gnss" in ack.error
    assert "ttyNOPE" in ack.error
    assert active_version(pointer) == 1
    assert load_config(pointer)[0].config_version == "1"
    again = await apply_bundle(pointer, bad, T0 + 5, starts)
    assert (again.status, again.error) == (AckStatus.ROLLED_BACK, ack.error)
    assert starts.calls == ["2"]
    # A later good version still applies.
    assert (await apply_bundle(pointer, _bundle(3, _document(pty_path)), T0, starts)).status is AckStatus.APPLIED


async def test_any_start_failure_rolls_back(tmp_path: Path, pty_path: str) -> None:
    """Whatever try_start raises, the previous version is restored and the error text reported."""
    pointer = _enrolled(tmp_path, pty_path)

    async def explode(config: AgentConfig, specs: Sequence[DeviceSpec]) -> None:
        raise RuntimeError("modbus line rs485-1 did not answer")

    ack = await apply_bundle(pointer, _bundle(2, _document(pty_path)), T0, explode)
    assert (ack.status, ack.error) == (AckStatus.ROLLED_BACK, "RuntimeError: modbus line rs485-1 did not answer")
    assert active_version(pointer) == 1


@pytest.mark.parametrize(
    ("document", "fragment"),
    [
        ({"colour": "red"}, "colour: unknown key"),
        ({"devices": [{"id": "d1", "profile": "no-such-profile"}]}, "unknown profile"),
        ({"ports": [{"name": "gnss"}]}, "ports[0].path"),
    ],
)
async def test_invalid_bundle_is_rejected_without_touching_the_config(
    tmp_path: Path, pty_path: str, document: dict[str, Any], fragment: str
) -> None:
    """A bundle that fails validation is rejected with the key path; nothing is written, nothing started."""
    pointer = _enrolled(tmp_path, pty_path)
    starts = Starts()
    ack = await apply_bundle(pointer, _bundle(2, _document(pty_path) | document), T0, starts)
    assert ack.status is AckStatus.REJECTED
    assert ack.error is not None
    assert fragment in ack.error
    assert starts.calls == []
    assert active_version(pointer) == 1
    assert not version_path(pointer, 2).exists()


async def test_redelivered_older_and_foreign_bundles(tmp_path: Path, pty_path: str) -> None:
    """The active version is re-acked without a restart; an older one and another gateway's are rejected."""
    pointer = _enrolled(tmp_path, pty_path)
    starts = Starts()
    await apply_bundle(pointer, _bundle(3, _document(pty_path)), T0, starts)
    same = await apply_bundle(pointer, _bundle(3, _document(pty_path)), T0, starts)
    older = await apply_bundle(pointer, _bundle(2, _document(pty_path)), T0, starts)
    foreign = await apply_bundle(pointer, _bundle(4, _document(pty_path), gateway="gw-b"), T0, starts)
    assert [same.status, older.status, foreign.status] == [AckStatus.APPLIED, AckStatus.REJECTED, AckStatus.REJECTED]
    assert (same.version, older.version, foreign.gateway) == (3, 2, "gw-b")
    assert starts.calls == ["3"]
    assert active_version(pointer) == 3


async def test_hand_written_config_is_adopted_as_version_0_and_restored_on_rollback(
    tmp_path: Path, pty_path: str
) -> None:
    """A plain agent.yaml becomes agent.v0.yaml behind the pointer, and a failed bundle returns to it."""
    pointer = tmp_path / "agent.yaml"
    original = _document(pty_path) | {"uplink": {"host": "127.0.0.1", "username": GW, "password": "hand"}}
    pointer.write_text(yaml.safe_dump(original), encoding="utf-8")
    ack = await apply_bundle(pointer, _bundle(1, _document(str(tmp_path / "missing"))), T0, Starts())
    assert ack.status is AckStatus.ROLLED_BACK
    assert pointer.is_symlink()
    assert active_version(pointer) == 0
    assert yaml.safe_load(pointer.read_text(encoding="utf-8")) == original
